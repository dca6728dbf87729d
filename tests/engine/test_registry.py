"""Every registered analysis, driven by its declaration: it runs on tiny nets (plain, residual and every
variant), returns exactly its declared tables and columns, and leaves the model bit-identical."""

import pandas as pd
import pytest
import torch

from analysis.core.common import random_sample, same_state, state_fingerprint
from analysis.engine.registry import Analysis, Context, Table, check_tables, load_all, register, run_one, select
from conftest import HAVE_DATA, tiny

REGISTRY = load_all()
MODEL_ANALYSES = [a for a in REGISTRY.values() if a.scope == "model"]
ARCHS = ["plain14", "resnet14", "resnet14-preact", "resnet14-bnafter", "resnet14-scale0.5f", "resnet14-conv1x1",
         "resnet14-gate-6", "resnet14-shortgate-6", "resnet14-dropout", "resnet29-bottleneck", "resnet29-bottleneck-preact",
         "plain29-bottleneck"]


def test_the_registry_holds_every_analysis_once_with_tables_and_pages():
    names = [t for a in REGISTRY.values() for t in (x.name for x in a.tables)]
    assert len(names) == len(set(names)), "two analyses declare the same table"
    for a in REGISTRY.values():
        assert a.tables and a.title and a.page.startswith("pages/"), a.name
        assert set(a.quick) <= set(a.defaults), a.name
    assert {"responses", "gradients", "deletion_single", "paths", "landscape", "training"} <= set(REGISTRY)


@pytest.mark.parametrize("arch", ARCHS)
@pytest.mark.parametrize("analysis", MODEL_ANALYSES, ids=lambda a: a.name)
def test_every_analysis_runs_on_a_tiny_net_and_leaves_it_bit_identical(analysis: Analysis, arch: str):
    m = tiny(name=arch)
    saved = state_fingerprint(m)
    b = random_sample(12, 0, torch.device("cpu"))
    ctx = Context(name="t", model=m, arch=arch, seed=0, samples=12, batch=b, params=analysis.params(**analysis.quick))
    if not analysis.applies_to(m):
        assert analysis.residual_only and not m.residual
        return
    out = run_one(analysis, ctx)
    assert out and all(len(df) > 0 for df in out.values()), analysis.name
    assert set(out) <= {t.name for t in analysis.tables}
    if analysis.combine is not None:
        check_tables(analysis, analysis.combine(out))
    assert same_state(m, saved) and not m.training
    assert all(not mod._forward_hooks and not mod._forward_pre_hooks and not mod._backward_hooks
               for mod in m.modules())
    assert all(p.grad is None for p in m.parameters())


@pytest.mark.parametrize("analysis", [a for a in REGISTRY.values() if a.scope == "zoo"], ids=lambda a: a.name)
def test_zoo_analyses_run_on_shipped_models(analysis):
    if analysis.needs_data and not HAVE_DATA:
        pytest.skip("CIFAR-10 not found")
    from analysis.core.zoo import available, read_card

    constructed = tuple(n for n in available() if read_card(n).constructed)
    names = constructed if analysis.name == "construction" else ("resnet20", "resnet56-preact")
    assert names, "the zoo ships constructed nets (plain56-from-plain20, resnet56-from-resnet20)"
    out = run_one(analysis, Context(name="all", names=names, samples=32, params=analysis.params(**analysis.quick)))
    first = out[analysis.tables[0].name]
    if analysis.name == "unit_cost":  # it builds its own nets: the bottleneck one, basic at equal depth and parameters
        assert list(first["model"])[:2] == [analysis.quick["bottleneck"], "resnet26"]
        return
    assert len(first) and set(", ".join(first["models"]).split(", ") if "models" in first else first["model"]) \
        <= set(names)


def test_declarations_are_enforced():
    bad = Analysis(name="t_bad", title="t", run=lambda ctx: {"x": pd.DataFrame({"a": [1]})},
                   tables=(Table("x", ("a", "b")),), page="pages/x.py")
    with pytest.raises(ValueError, match="lacks the columns"):
        run_one(bad, Context(name="t"))
    with pytest.raises(ValueError, match="undeclared table"):
        check_tables(bad, {"y": pd.DataFrame()})
    with pytest.raises(ValueError, match="has no parameter"):
        REGISTRY["deletion_random"].params(trails=3)
    with pytest.raises(ValueError, match="unknown analyses"):
        select(["nonsense"])
    assert [a.name for a in select(["deletion"])] == ["deletion_single", "deletion_random", "reorder"]
    # a switch given on the command line as text means what it says ("false" is not a true string)
    from analysis.cli import parse_params

    given = parse_params(["gradients.weight_grads=false", "gradients.random_input=yes"])["gradients"]
    p = REGISTRY["gradients"].params(**given)
    assert p["weight_grads"] is False and p["random_input"] is True
    assert REGISTRY["gradients"].params(weight_grads=False)["weight_grads"] is False
    with pytest.raises(ValueError, match="weight_grads is true or false"):
        REGISTRY["gradients"].params(weight_grads="maybe")


def test_a_new_analysis_reaches_the_report_without_touching_it(tmp_path, monkeypatch):
    """Registering is all it takes: the report runs it and writes its table."""
    from analysis.engine import registry
    from analysis.engine.report import compute, write_report

    def run(ctx):
        return {"block_count": pd.DataFrame({"model": [ctx.name], "blocks": [ctx.model.num_blocks]})}

    monkeypatch.setattr(registry, "_REGISTRY", dict(registry._REGISTRY))
    register(Analysis(name="block_count", title="blocks", run=run, tables=(Table("block_count", ("model", "blocks")),),
                      needs_data=False, page="pages/x.py", order=999))
    tables, manifest = compute(["resnet20", "resnet56"], only=["block_count"], device="cpu")
    write_report(tables, manifest, tmp_path)
    got = pd.read_csv(tmp_path / "block_count.csv")
    assert dict(zip(got["model"], got["blocks"])) == {"resnet20": 9, "resnet56": 27}
