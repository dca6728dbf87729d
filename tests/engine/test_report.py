"""The headless report writes every CSV with its named columns, plus the manifest."""

import json

import pandas as pd
import pytest

from analysis.cli import main
from analysis.engine.registry import load_all
from conftest import needs_data


@pytest.mark.slow
@needs_data
def test_report_cli_writes_every_csv(tmp_path, capsys):
    out = tmp_path / "rep"
    light = ["--param", "hessian.max_iter=3", "--param", "hessian.trace_iter=3", "--param", "hessian.lanczos_steps=4",
             "--param", "shattering.points=8"]
    assert main(["report", "--models", "plain20,resnet20", "--samples", "64", "--out", str(out), "--seed", "3"] + light) == 0
    # tables a default report leaves out: maps and Grad-CAM (parameters off by default); the identity-net
    # comparison has no rows when no variant was asked for
    optional = {"attribution_maps", "gradcam", "variant_comparison", "variant_findings"}
    written = set()
    for a in load_all().values():  # every registered table that a default report writes, with its columns
        for t in a.tables:
            if (out / f"{t.name}.csv").is_file():
                df = pd.read_csv(out / f"{t.name}.csv")
                assert (len(df) > 0 or t.name in optional) and set(t.columns) <= set(df.columns), t.name
                written.add(t.name)
    assert {t.name for a in load_all().values() for t in a.tables} - written <= optional
    c = pd.read_csv(out / "response_comparison.csv")
    assert set(c["depth"]) == {20} and sorted(c["measure"]) == ["ratio", "std", "std_all"]
    g = pd.read_csv(out / "gradients.csv")
    # the declared λ at initialisation (0.5, 1, 1.5) for the residual net; the plain net's own λ is 0
    assert set(g["state"]) == {"trained", "init"} and sorted(g["lambda"].unique()) == [0.0, 0.5, 1.0, 1.5]
    init = g[(g["model"] == "resnet20") & (g["state"] == "init")]
    assert sorted(init["lambda"].unique()) == [0.5, 1.0, 1.5] and (init.groupby("lambda").size() == 9).all()
    assert set(pd.read_csv(out / "paths.csv")["model"]) == {"resnet20"}  # paths exist in residual nets only
    r = pd.read_csv(out / "deletion_random.csv")
    assert (r["k"] == 0).sum() == 2 and r["k"].max() == 6
    h = pd.read_csv(out / "hessian.csv")
    eig = h[h["quantity"] == "eigenvalue"]
    # one Lanczos run gives the eigenvalues and the density: max(max_iter = 3, lanczos_steps = 4) steps
    assert set(h["model"]) == {"plain20", "resnet20"} and (eig["iterations"] == 4).all()
    assert eig["algorithm"].eq("Lanczos, 4 steps").all()
    assert (pd.read_csv(out / "shattering.csv")["points"] == 8).all()
    m = json.loads((out / "manifest.json").read_text())
    assert m["parameters"]["hessian"]["max_iter"] == 3 and m["parameters"]["deletion_random"]["trials"] == 5
    assert m["seed"] == 3 and m["samples"] == 64 and "torch" in m["versions"] and m["data_source"]
    expected = {f"{a.name}:{n}" for a in load_all().values() if a.scope == "model" for n in ("plain20", "resnet20")
                if not (a.residual_only and n == "plain20")}
    assert set(m["wall_time_s"]) == expected | {f"{a.name}:all" for a in load_all().values() if a.scope == "zoo"}


@needs_data
def test_report_takes_variant_names(tmp_path):
    out = tmp_path / "var"
    assert main(["report", "--models", "resnet56-scale0.5,resnet56-preact", "--samples", "32", "--out", str(out),
                 "--only", "responses,gradients,deletion,variants"]) == 0
    g = pd.read_csv(out / "gradients.csv")
    trained = g[g["state"] == "trained"].groupby("model")["lambda"].first()
    assert trained["resnet56-scale0.5"] == 0.5 and trained["resnet56-preact"] == 1.0  # each net's own lambda
    r = pd.read_csv(out / "responses.csv")
    assert r[r["model"] == "resnet56-preact"]["layer"].str.endswith(".conv2").sum() == 27  # no BN after conv2
    v = pd.read_csv(out / "variants.csv").set_index("model")
    assert v.loc["resnet56-preact", "unit"] == "full-preact" and v.loc["resnet56-scale0.5", "shortcut"] == "scale0.5"
    assert (v["iterations"] == 64000).all() and v["full_recipe"].all()
    c = pd.read_csv(out / "variant_comparison.csv")
    assert len(c) == 0  # resnet56 itself was not asked for: nothing to compare with
    d = pd.read_csv(out / "deletion_single.csv")
    assert set(d["model"]) == {"resnet56-scale0.5", "resnet56-preact"} and len(d) == 2 * 27


def test_report_parameters_are_checked_before_any_work(tmp_path, capsys):
    assert main(["report", "--models", "resnet20", "--out", str(tmp_path), "--param", "hessian.iters=3"]) == 2
    assert "hessian has no parameter iters" in capsys.readouterr().err
    assert main(["report", "--models", "resnet20", "--out", str(tmp_path), "--param", "nonsense"]) == 2
    assert main(["report", "--models", "resnet20", "--out", str(tmp_path), "--only", "gradients,nope"]) == 2
    assert not any(tmp_path.iterdir())
