"""AppTest: every page runs without an exception, and its main control changes the plotted data."""

import pandas as pd
import pytest
import torch
from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df
from streamlit.testing.v1 import AppTest

from conftest import ROOT, needs_data

MODELS = ["plain20", "resnet20"]


def app(page: str | None = None, samples: int = 100, models=MODELS) -> AppTest:
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["models"] = list(models)
    at.session_state["samples"] = samples
    at.run()
    assert not at.exception, at.exception
    if page:
        at.switch_page(f"pages/{page}").run()
        assert not at.exception, at.exception
    return at


def charts(at: AppTest):
    out = []
    for c in at.get("vega_lite_chart"):  # a layered chart's largest data set (a baseline layer has a few rows)
        frames = [convert_arrow_bytes_to_pandas_df(d.data.data) for d in c.proto.datasets]
        out.append(max(frames, key=len) if frames else None)
    return out


def test_home_shows_zoo_curves_and_follows_the_model_choice():
    at = app()
    assert "ResLens" in at.title[0].value
    assert any("resnet20" in str(df.values) for df in [d.value for d in at.dataframe])
    before = charts(at)[0]
    assert set(before["model"]) == set(MODELS)
    at.multiselect(key="models").set_value(["plain56", "resnet56"]).run()
    assert not at.exception
    after = charts(at)[0]
    assert set(after["model"]) == {"plain56", "resnet56"}
    # the degradation figure's numbers are the cards' own
    last = after[(after["model"] == "plain56") & (after["curve"] == "test")]["error_pct"].iloc[-1]
    from analysis.core.zoo import read_card
    assert last == pytest.approx(read_card("plain56").raw["history"][-1]["test_error_pct"])


def test_the_sidebar_settings_survive_a_page_switch():
    """AppTest runs a page's file without app.py after ``switch_page``; the sidebar must still keep its values there
    (before this test it fell back to each widget's first choice: the page tests and benchmarks computed on 100 test
    images where a browser keeps 500; ``tests/dashboard/test_browser.py`` checks the browser side)."""
    import ui

    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.run()
    assert at.select_slider(key="samples").value == ui.DEFAULT_SAMPLES == 500
    at.switch_page("pages/6_Reports.py").run()
    assert not at.exception and at.select_slider(key="samples").value == 500
    at.select_slider(key="samples").set_value(250).run()
    at.number_input(key="seed").set_value(3).run()
    at.switch_page("pages/9_Claims.py").run()
    assert not at.exception
    assert (at.select_slider(key="samples").value, at.number_input(key="seed").value) == (250, 3)
    assert (at.query_params["samples"], at.query_params["seed"]) == ("250", "3")  # the link carries them too


@needs_data
def test_responses_page_changes_with_sample_size():
    at = app("1_Responses.py")
    a = charts(at)
    assert len(a) == 2 and set(a[0]["model"]) == set(MODELS) and (a[0]["images"] == 100).all()
    at.sidebar.select_slider(key="samples").set_value(250).run()
    assert not at.exception
    b = charts(at)
    assert (b[0]["images"] == 250).all() and not a[0]["std"].equals(b[0]["std"])
    # the pair's comparison is written out, and the other reading of "std of a layer" is one click away
    text = " ".join(m.value for m in at.markdown)
    assert "resnet20 vs plain20, per-channel std" in text and "std over all values" in text
    at.radio(key="agg").set_value("over all values").run()
    assert not at.exception
    c = charts(at)[0]
    assert "std_all" in c.columns and "std" not in c.columns and (c["std_all"] > 0).all()


@needs_data
def test_gradient_page_lambda_choice_and_its_words():
    at = app("2_Gradient_flow.py")
    lam = charts(at)[1]
    assert set(lam["lambda"]) == {0.5, 1.0, 1.5}
    at.multiselect(key="lams").set_value([0.0, 1.0, 1.5]).run()
    assert not at.exception
    lam2 = charts(at)[1]
    assert set(lam2["lambda"]) == {0.0, 1.0, 1.5}
    big = lam2[(lam2["lambda"] == 1.5)].sort_values("block_index")["grad_input_l2"]
    one = lam2[(lam2["lambda"] == 1.0)].sort_values("block_index")["grad_input_l2"]
    assert big.iloc[0] > one.iloc[0]  # lambda > 1 amplifies the gradient reaching the first block
    # the caption's sentence is computed from the plotted numbers, not written by hand
    from analysis.analyses.gradients import describe_lambda, gradient_summary

    words = describe_lambda(gradient_summary(lam2))
    assert words and all(any(w in c.value for c in at.caption) for w in words)
    # the trained lambda variants are shown with the lambda they were trained with
    trained = charts(at)[2]
    assert dict(trained.groupby("model")["lambda"].first()) == {"resnet56": 1.0, "resnet56-scale0.5": 0.5,
                                                                 "resnet56-scale0.5f": 0.5}


@needs_data
def test_gradient_page_input_view_shares_the_lambda_charts_results_and_the_weight_view_is_float32():
    at = app("2_Gradient_flow.py")
    first, lam = charts(at)[0], charts(at)[1]
    assert set(first["precision"]) == {"bfloat16 autocast, input gradients only"}
    assert "within 1 % of float32" in at.caption[0].value
    # λ = 1 at initialisation is the "init" state of the first chart: one result, the same numbers
    init = first[(first["model"] == "resnet20") & (first["state"] == "init")].sort_values("block_index")
    one = lam[lam["lambda"] == 1.0].sort_values("block_index")
    assert list(one["grad_input_l2"]) == list(init["grad_input_l2"])
    at.radio(key="metric").set_value("grad_weight_l2").run()
    assert not at.exception
    weight = charts(at)[0]
    assert set(weight["precision"]) == {"float32"} and (weight["grad_weight_l2"] > 0).all()
    assert "float32" in at.caption[0].value and "within 1 %" not in at.caption[0].value


@needs_data
def test_identity_mappings_page_follows_the_chosen_variants():
    at = app("7_Identity_mappings.py")
    table = at.dataframe[0].value
    assert {"resnet56-preact", "resnet56-bnafter", "resnet56-relubefore", "resnet56-relupreact", "resnet56-scale0.5",
            "resnet56-scale0.5f", "resnet56-conv1x1", "resnet56b"} <= set(table["model"])
    text = " ".join(m.value for m in at.markdown).replace("\\", "")  # the sentences are shown escaped (ui.escape_md)
    assert "resnet56-scale0.5 (shortcut scaled by 0.5, F unscaled) ends with a higher training error than resnet56" in text
    # basic vs bottleneck: the three nets with their parameter counts, as built
    from analysis.core.models import build_model, count_params

    cost = next(d.value for d in at.dataframe if "compared as" in d.value.columns)
    assert list(cost["model"]) == ["resnet164-bottleneck", "resnet164", "resnet104"]
    assert list(cost["params"]) == [count_params(build_model(n)) for n in cost["model"]]
    assert cost["every conv = H·W·C_in·C_out·k²"].all()
    assert "At equal depth (164 layers) resnet164-bottleneck has 1,661,274 parameters against 2,602,906" in text
    first = charts(at)
    assert set(first[0]["model"]) == {"resnet56", "resnet56-scale0.5", "resnet56-preact", "resnet56-bnafter"}
    at.multiselect(key="im_variants").set_value(["resnet56", "resnet56-relubefore"]).run()
    assert not at.exception
    second = charts(at)
    for df in second:
        assert set(df["model"]) == {"resnet56", "resnet56-relubefore"}
    g = second[1]
    assert set(g["state"]) == {"trained", "init"}
    # the residual ratios alone, in bfloat16, with the bound the caption states
    from analysis.analyses.responses import RATIO_BF16_ABS

    ratio = second[2]
    assert set(ratio["precision"]) == {"bfloat16 autocast"} and (ratio["ratio"] >= 0).all()
    assert any(f"within {RATIO_BF16_ABS:g} of float32" in c.value for c in at.caption)
    # the curves are the cards' own numbers
    from analysis.core.zoo import read_card

    c = second[0]
    last = c[(c["model"] == "resnet56-relubefore") & (c["curve"] == "test")].sort_values("epoch")["error_pct"].iloc[-1]
    assert last == pytest.approx(read_card("resnet56-relubefore").raw["history"][-1]["test_error_pct"])


@needs_data
def test_block_deletion_slider_changes_the_curve():
    import ui
    from analysis.core.common import eval_sample
    from analysis.analyses.deletion import delete_random
    from analysis.core.zoo import load_pretrained

    at = app("3_Block_deletion.py")
    single, random_k = charts(at)[0], charts(at)[1]
    assert len(single) == 2 * 9
    assert random_k["k"].max() == 6
    # the slider's next step (k = 7) is being computed in the background...
    key = ui.prefetch_key("deletion_random", "resnet20", ui.Settings(("resnet20",), 100, 0, "cpu"), ks=(7,),
                          trials=ui.defaults("deletion_random")["trials"])
    assert key in ui.prefetcher()._jobs
    at.slider(key="k").set_value(2).run()
    assert not at.exception
    assert charts(at)[1]["k"].max() == 2
    assert at.slider(key="k").max == 7  # the slider ends at the 7 non-downsampling blocks of a 20-layer net
    at.slider(key="k").set_value(7).run()
    summ = charts(at)[1]
    assert summ["k"].max() == 7
    # the band is an interval of error rates: inside 0-100 %, and the layered chart keeps its model legend
    assert (summ["ci95_low"] >= 0).all() and (summ["ci95_high"] <= 100).all()
    assert (summ["ci95_low"] <= summ["mean_error_pct"]).all() and (summ["mean_error_pct"] <= summ["ci95_high"]).all()
    import json

    spec = json.loads(at.get("vega_lite_chart")[1].proto.spec)
    colors = [l["encoding"]["color"] for l in spec["layer"]]
    assert all(c.get("legend", {}) is not None for c in colors), colors
    res = summ[summ["model"] == "resnet20"].set_index("k")["mean_error_pct"]
    plain = summ[summ["model"] == "plain20"].set_index("k")["mean_error_pct"]
    assert res.loc[1] < plain.loc[1]
    # ...was collected by that step, and equals the same draws computed on demand
    assert key not in ui.prefetcher()._jobs
    direct = delete_random(load_pretrained("resnet20", device="cpu"), eval_sample(100, 0, torch.device("cpu")),
                           "resnet20", [7], 3, 7)
    assert res.loc[7] == pytest.approx(direct["error_pct"].mean())


def test_prefetcher_hands_each_result_over_once():
    from ui import Prefetcher

    pf = Prefetcher()
    assert pf.submit(("a",), lambda x: x * 2, 21)
    assert not pf.submit(("a",), lambda x: x * 3, 21)  # already queued: not computed twice
    assert pf.take(("a",)) == 42 and pf.take(("a",)) is None
    assert not pf.submit(("a",), lambda x: x, 1)  # already computed (and cached by the caller)

    def boom():
        raise torch.cuda.OutOfMemoryError("no memory")

    assert pf.submit(("b",), boom) and pf.take(("b",)) is None  # a failed job is redone in the foreground
    assert pf.take(("never",)) is None
    small = Prefetcher(max_jobs=2)  # a full queue makes room by dropping the oldest uncollected result
    assert small.submit(("x",), int, 1) and small.submit(("y",), int, 2)
    small._jobs[("x",)].result(), small._jobs[("y",)].result()
    assert small.submit(("z",), int, 3) and ("x",) not in small._jobs and small.take(("z",)) == 3


def test_prefetched_jobs_wait_for_the_pages_own_computation_unless_asked_for():
    import threading

    from ui import Prefetcher

    pf = Prefetcher()
    started = threading.Event()
    with pf.foreground():  # a page computing: the job is queued, not started
        assert pf.submit(("later",), lambda: started.set() or 1)
        assert not started.wait(0.3)
    assert started.wait(5) and pf.take(("later",)) == 1  # the foreground done: it ran
    with pf.foreground():  # asked for by the foreground itself: it runs at once, no waiting on itself
        assert pf.submit(("now",), lambda: 2)
        assert pf.take(("now",)) == 2
    assert not pf._wanted


@needs_data
def test_attributions_page_image_choice():
    at = app("4_Attributions.py")
    a = charts(at)[0]
    assert set(a["method"]) == {"Saliency", "IntegratedGradients", "DeepLift"} and set(a["image"]) == {"test/0"}
    at.number_input(key="img_index").set_value(5).run()
    assert not at.exception
    b = charts(at)[0]
    assert set(b["image"]) == {"test/5"} and not a["attr_abs_sum"].equals(b["attr_abs_sum"])
    cond = charts(at)[1]
    share = cond.groupby("model")["branch_share"].mean()
    # a plain block's branch is the only route (share 1 up to the 20-step integral's error);
    # in the residual net most of the signal goes around the branches
    assert 0.7 < share["plain20"] < 1.3 and share["resnet20"] < share["plain20"] - 0.3, share


@needs_data
def test_landscape_page_grid_slider():
    at = app("5_Loss_landscape.py")
    a = charts(at)[0]
    assert len(a) == 2 * 21
    at.slider(key="steps_1d").set_value(7).run()
    assert not at.exception
    b = charts(at)[0]
    assert len(b) == 2 * 7
    centre = b[b["alpha"].abs() < 1e-9]
    assert (centre["loss"] < b.groupby("model")["loss"].transform("max").loc[centre.index]).all()


@needs_data
def test_landscape_page_2d_contours_on_one_colour_scale():
    at = app("5_Loss_landscape.py", samples=100)
    at.radio(key="dims").set_value(2).run()
    at.slider(key="steps_2d").set_value(7).run()
    assert not at.exception, at.exception
    segs = charts(at)  # the contour view is the default: one chart per model, its data the segments drawn
    assert len(segs) == 2 and all({"level", "segment", "alpha", "beta"} <= set(df.columns) for df in segs)
    levels = [set(df["level"]) for df in segs]
    assert all(len(lv) >= 3 for lv in levels)
    scales = [c.spec for c in at.get("vega_lite_chart")]
    assert len({s.count('"domain"') for s in scales}) == 1  # both charts carry an explicit domain...
    import json
    doms = [json.loads(sp)["layer"][0]["encoding"]["color"]["scale"]["domain"] for sp in scales]
    assert doms[0] == doms[1]  # ...and it is the same one: one colour means one loss
    at.radio(key="view2d").set_value("heatmap").run()
    grid = charts(at)
    assert all(len(df) == 49 for df in grid)
    lo = min(df["loss"].min() for df in grid)
    assert doms[0][0] == pytest.approx(lo)
    # every contour level lies between the lowest and highest loss of the grid
    hi = max(df["loss"].max() for df in grid)
    assert all(lo < lv < hi for lvs in levels for lv in lvs)


@needs_data
def test_reports_page_builds_a_zip():
    import io
    import zipfile

    at = app("6_Reports.py")
    at.multiselect(key="analyses").set_value(["responses", "training"]).run()
    at.button(key="run_report").click().run()
    assert not at.exception
    assert "responses.csv" in at.success[0].value and "training.csv" in at.success[0].value
    blob, counts = at.session_state["report"]
    names = zipfile.ZipFile(io.BytesIO(blob)).namelist()
    assert {"responses.csv", "residual_ratio.csv", "training.csv", "manifest.json"} <= set(names)


def test_pages_without_data_say_where_to_put_it(monkeypatch, tmp_path):
    monkeypatch.setenv("RESLENS_DATA", str(tmp_path / "missing"))
    at = app()
    assert any("RESLENS_DATA" in w.value for w in at.sidebar.warning)
    at.switch_page("pages/3_Block_deletion.py").run()
    assert not at.exception and any("RESLENS_DATA" in i.value for i in at.info)
    at.switch_page("pages/2_Gradient_flow.py").run()
    assert not at.exception
    g = charts(at)
    assert g and set(g[0]["state"]) == {"init"} and g[0]["input"].str.contains("random").all()


@needs_data
def test_two_sessions_do_not_interfere_and_the_cached_model_is_unchanged():
    import ui
    from analysis.core.zoo import load_pretrained

    a = app("3_Block_deletion.py")
    b = app("3_Block_deletion.py")
    a.slider(key="k").set_value(5).run()
    b.slider(key="k").set_value(1).run()
    assert charts(a)[1]["k"].max() == 5 and charts(b)[1]["k"].max() == 1
    a.number_input(key="trials").set_value(4).run()
    assert (charts(b)[1].query("k > 0")["trials"] == ui.defaults("deletion_random")["trials"]).all()
    from ui.session import _zoo_model

    cached = _zoo_model("resnet20", "cpu")
    fresh = load_pretrained("resnet20", device="cpu")
    cs, fs = cached.state_dict(), fresh.state_dict()
    assert all(torch.equal(cs[k], fs[k]) for k in fs) and not cached.training


@pytest.mark.slow
@needs_data
def test_curvature_page_measures_and_follows_the_models():
    at = app("8_Curvature.py")
    assert not charts(at)  # nothing heavy runs before it is asked for
    at.select_slider(key="h_images").set_value(25)
    at.number_input(key="h_k").set_value(1)
    at.number_input(key="h_iter").set_value(5)
    at.toggle(key="h_run").set_value(True).run()
    assert not at.exception, at.exception
    eig = charts(at)[0]
    assert set(eig["model"]) == set(MODELS) and (eig["images"] == 25).all() and set(eig["k"]) == {1}
    text = " ".join(m.value for m in at.markdown)
    assert "20 layers: top eigenvalue resnet20" in text
    assert eig["algorithm"].str.startswith("Lanczos").all()
    trace = charts(at)[1]  # deflated by the Lanczos basis, which the eigenvalues came from
    assert trace["algorithm"].str.contains("deflated by").all() and (trace["hvps"] <= 16 + 5).all()
    at.selectbox(key="h_eigen").set_value("power").run()  # PyHessian's algorithm, for comparison
    assert not at.exception, at.exception
    assert charts(at)[0]["algorithm"].str.startswith("power").all() and "Power iteration" in " ".join(
        c.value for c in at.caption)
    at.multiselect(key="models").set_value(["resnet20"]).run()
    assert not at.exception
    assert set(charts(at)[0]["model"]) == {"resnet20"}


@pytest.mark.slow
@needs_data
def test_gradient_page_shattering_and_landscape_hessian_direction():
    at = app("2_Gradient_flow.py")
    assert not any("correlation_length" in df.columns for df in charts(at))  # nothing before it is asked for
    at.toggle(key="shatter").set_value(True).run()  # 32 points
    at.select_slider(key="shatter_points").set_value(16).run()
    assert not at.exception, at.exception
    sh = next(df for df in charts(at) if "correlation_length" in df.columns)
    split = next(df for df in charts(at) if "shortcut_share" in df.columns)  # the identity term, per block
    assert (split.loc[split["model"] == "plain20", "shortcut_share"] == 0).all()
    assert split.loc[split["model"] == "resnet20", "shortcut_share"].median() > 0.3
    assert set(sh["model"]) == set(MODELS) and {"trained", "init"} <= set(sh["state"])
    assert set(sh.loc[sh["model"] == "resnet20", "lambda"]) == {1.0, 0.5, 1.5}
    assert (sh["correlation_length"] > 0).all() and (sh["points"] == 16).all()
    at.switch_page("pages/5_Loss_landscape.py").run()
    at.slider(key="steps_1d").set_value(5).run()
    rand = charts(at)[0]
    at.radio(key="direction").set_value("hessian").run()
    assert not at.exception, at.exception
    hess = charts(at)[0]
    assert set(hess["direction"]) == {"hessian"} and hess["top_eigenvalue"].notna().all()
    at0 = lambda df: df[df["alpha"].abs() < 1e-9].set_index("model")["loss"]  # noqa: E731
    pd.testing.assert_series_equal(at0(rand), at0(hess))  # both slices pass through the trained weights


@pytest.mark.slow
@needs_data
def test_claims_page_judges_every_claim_and_follows_the_models():
    from analysis.claims import CLAIMS

    at = app("9_Claims.py", models=["plain20", "resnet20"])
    headers = [m.value for m in at.markdown if m.value.startswith("####")]
    assert len(headers) == len(CLAIMS)  # every claim is stated before anything runs
    at.toggle(key="claims_run").set_value(True).run()
    assert not at.exception, at.exception
    verdicts = [m.value for m in at.markdown if m.value.startswith("####")]
    assert len(verdicts) == len(CLAIMS) and all(any(v in h for v in ("holds", "does not hold", "depends", "untested"))
                                       for h in verdicts)
    measured = [m.value for m in at.markdown if m.value.startswith("**Measured.**")]
    assert len(measured) == len(CLAIMS)
    before = measured[2]  # claim 3: the response comparison of the chosen pair
    assert "resnet20 vs plain20" in before
    at.multiselect(key="models").set_value(["plain56", "resnet56"]).run()
    assert not at.exception
    after = [m.value for m in at.markdown if m.value.startswith("**Measured.**")][2]
    assert "resnet56 vs plain56" in after and after != before


def _akamaster_th(name="resnet20", counters=False) -> bytes:
    import io

    from analysis.core.zoo import load_pretrained

    state = {}
    for k, v in load_pretrained(name, device="cpu").state_dict().items():
        if k.endswith("num_batches_tracked") and not counters:
            continue
        k2 = k.replace("stem.conv.", "conv1.").replace("stem.bn.", "bn1.").replace("fc.", "linear.")
        for s in (1, 2, 3):
            k2 = k2.replace(f"stage{s}.block", f"layer{s}.")
        state["module." + k2] = v
    b = io.BytesIO()
    torch.save({"epoch": 200, "state_dict": state, "best_prec1": 91.7}, b)
    return b.getvalue()


@needs_data
def test_an_upload_is_in_the_sidebar_on_the_same_run_and_stays_chosen():
    import ui

    at = app()
    at.radio(key="upload_kind").set_value("residual net")
    at.selectbox(key="upload_norm").set_value("CIFAR-10 mean/std")
    at.file_uploader(key="upload_ckpt").set_value(("resnet20.th", _akamaster_th(), "application/octet-stream")).run()
    assert not at.exception, at.exception
    ok = at.success[0].value
    assert "layout **akamaster**" in ok and f"% error on {ui.DEFAULT_SAMPLES:,} test images" in ok
    assert "decided by your choice" in ok
    name = next(n for n in at.multiselect(key="models").options if n.startswith("upload:resnet20-"))
    assert name in at.multiselect(key="models").value  # chosen on the same run
    err = float(ok.split(f"% error on {ui.DEFAULT_SAMPLES:,}")[0].split("**")[-1])
    from analysis.core.zoo import load_pretrained
    from analysis.core.evaluate import evaluate_error
    from analysis.core import data as D

    test = D.load_split("test")
    idx = D.sample_indices(len(test), ui.DEFAULT_SAMPLES, 0)
    assert err == pytest.approx(evaluate_error(load_pretrained("resnet20", "cpu"), test.images[idx], test.labels[idx],
                                               device=torch.device("cpu")), abs=0.01)  # exactly the zoo net's
    at.switch_page("pages/1_Responses.py").run()
    assert not at.exception and name in at.multiselect(key="models").value
    assert set(charts(at)[0]["model"]) == set(MODELS) | {name}


def test_upload_refusals_and_metadata_in_the_app():
    from safetensors.torch import save as st_save

    from analysis.core.models import build_model

    at = app()
    state = {k: v.contiguous() for k, v in build_model("resnet20").state_dict().items()}
    at.file_uploader(key="upload_ckpt").set_value(
        ("r.safetensors", st_save(state, metadata={"residual": "True"}), "application/octet-stream")).run()
    assert not at.exception and "residual (decided by metadata)" in at.success[0].value
    fake = {"stem.conv.weight": torch.zeros(16, 3, 3, 3), "fc.weight": torch.zeros(10, 64)}
    for s in (1, 2, 3):
        for b in range(2000):
            fake[f"stage{s}.block{b}.conv1.weight"] = torch.zeros(1)
    at.file_uploader(key="upload_ckpt").set_value(("deep.safetensors", st_save(fake), "application/octet-stream")).run()
    assert not at.exception and "12,002 layers" in at.error[0].value
    import pickle

    at.file_uploader(key="upload_ckpt").set_value(("x.pt", pickle.dumps(print), "application/octet-stream")).run()
    assert not at.exception and "never unpickles" in at.error[0].value
    assert any(n.startswith("upload:r-") for n in at.multiselect(key="models").options)  # the good one is still there


def test_the_server_imports_the_library_before_its_first_visitor():
    """`streamlit run app.py` finds the st.App in app.py, whose start-up imports PyTorch and every analysis and
    turns Streamlit's pages/ folder mode off; a session still runs app.py as __main__ (the navigation, as
    AppTest does above). The browser test opens a fresh server at a page's URL."""
    import subprocess
    import sys

    from streamlit.web.server.app_discovery import discover_asgi_app

    found = discover_asgi_app(ROOT / "app.py")
    assert found.is_asgi_app and found.app_name == "app"
    probe = (
        "import asyncio, sys\n"
        "import app\n"
        "import streamlit as st\n"
        "assert isinstance(app.app, st.App)\n"
        "before = {m for m in ('torch', 'captum', 'analysis.analyses.attributions', 'analysis.analyses.hessian') if m in sys.modules}\n"
        "async def start():\n"
        "    async with app._start(app.app):\n"
        "        pass\n"
        "asyncio.run(start())\n"
        "after = {m for m in ('torch', 'captum', 'analysis.analyses.attributions', 'analysis.analyses.hessian') if m in sys.modules}\n"
        "from streamlit.runtime.pages_manager import PagesManager\n"
        "print(sorted(before), sorted(after))\n"
        "print(PagesManager.uses_pages_directory)\n")
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    imports, pages_folder_mode = out.stdout.split("\n")[:2]
    assert imports == "[] ['analysis.analyses.attributions', 'analysis.analyses.hessian', 'captum', 'torch']"
    assert pages_folder_mode == "False"  # the app's st.navigation list from the first session on, not pages/


def test_the_uploader_states_the_limit_the_server_enforces():
    """.streamlit/config.toml's maxUploadSize is the checkpoint limit (Streamlit's 200 MB would be a false promise)."""
    import tomllib

    import ui

    config = tomllib.loads((ROOT / ".streamlit" / "config.toml").read_text())
    assert config["server"]["maxUploadSize"] == ui.MAX_UPLOAD_MB == 64
    assert config["browser"]["gatherUsageStats"] is False


def test_home_says_when_the_chosen_nets_ran_different_schedules():
    at = app(models=["plain56", "resnet56"])
    notes = [i.value for i in at.info if "different schedules" in i.value]
    assert len(notes) == 1 and "plain56 143 epochs (55,770 iterations)" in notes[0] and "15 % more" in notes[0]
    at.multiselect(key="models").set_value(["plain20", "resnet20"]).run()
    assert not [i for i in at.info if "different schedules" in i.value]
