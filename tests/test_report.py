"""The headless report writes every CSV with its named columns, plus the manifest."""

import json

import pandas as pd

from analysis.__main__ import main
from conftest import needs_data

COLUMNS = {
    "responses": ["model", "layer", "block", "stage", "std"],
    "residual_ratio": ["model", "block", "ratio"],
    "response_comparison": ["depth", "plain", "residual", "measure", "plain_value", "residual_value",
                            "share_residual_below"],
    "gradients": ["model", "state", "lambda", "block", "grad_input_l2", "grad_weight_l2"],
    "deletion_single": ["model", "block", "downsample", "error_pct"],
    "deletion_random": ["model", "k", "trial", "blocks", "error_pct"],
    "reorder": ["model", "trial", "kendall_tau", "error_pct"],
    "paths": ["model", "length", "n_paths", "fraction", "grad_norm", "total_grad"],
    "attributions": ["model", "method", "image", "label", "predicted", "prob", "infidelity"],
    "conductance": ["model", "block", "conductance"],
    "landscape": ["model", "alpha", "beta", "loss", "error_pct"],
    "training": ["model", "epoch", "train_error_pct", "test_error_pct"],
}


@needs_data
def test_report_cli_writes_every_csv(tmp_path, capsys):
    out = tmp_path / "rep"
    assert main(["report", "--models", "plain20,resnet20", "--samples", "64", "--out", str(out), "--seed", "3"]) == 0
    for name, cols in COLUMNS.items():
        df = pd.read_csv(out / f"{name}.csv")
        assert len(df) > 0 and set(cols) <= set(df.columns), name
    c = pd.read_csv(out / "response_comparison.csv")
    assert set(c["depth"]) == {20} and sorted(c["measure"]) == ["ratio", "std", "std_all"]
    g = pd.read_csv(out / "gradients.csv")
    assert set(g["state"]) == {"trained", "init"} and sorted(g["lambda"].unique()) == [0.0, 0.5, 0.9, 1.0, 1.1, 1.5]
    assert set(pd.read_csv(out / "paths.csv")["model"]) == {"resnet20"}  # paths exist in residual nets only
    r = pd.read_csv(out / "deletion_random.csv")
    assert (r["k"] == 0).sum() == 2 and r["k"].max() == 6
    m = json.loads((out / "manifest.json").read_text())
    assert m["seed"] == 3 and m["samples"] == 64 and "torch" in m["versions"] and m["data_source"]
    assert set(m["wall_time_s"]) == {f"{a}:{n}" for a in ("responses", "gradients", "deletion", "paths", "attributions",
                                                           "landscape") for n in ("plain20", "resnet20")} | {"training:all", "variants:all"}


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
