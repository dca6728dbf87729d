"""Results survive a restart: stored on disk keyed by the weights, the library and every input; a damaged or
foreign entry is never served."""

import dataclasses
import json

import pandas as pd
import torch
from streamlit.testing.v1 import AppTest

from analysis.core.common import random_sample
from analysis.engine.registry import Context, get, run_one
from analysis.core.models import weights_sha256
from analysis.engine.keys import ResultKey
from analysis.engine.store import ResultStore
from conftest import ROOT, needs_data, tiny


def _tables(m):
    a = get("responses")
    return run_one(a, Context(name="t", model=m, arch="resnet14", batch=random_sample(8, 0, torch.device("cpu")),
                              samples=8, params=a.params(**a.quick)))


def test_round_trip_and_what_changes_the_key(tmp_path):
    m = tiny(depth=14)
    tables = _tables(m)
    store = ResultStore(tmp_path)
    key = ResultKey.for_model("responses", "t", weights_sha256(m), {"images": 8}, samples=8, seed=0, device="cpu",
                              root="data")
    assert store.get(key) is None
    assert store.put(key, tables)
    got = store.get(key)
    assert got.keys() == tables.keys()
    for k in tables:
        pd.testing.assert_frame_equal(got[k], tables[k], check_dtype=False)
    # other weights (one number changed), another seed or another analysis: not found
    m2 = tiny(depth=14)
    with torch.no_grad():
        next(m2.parameters()).view(-1)[0] += 1e-3
    assert weights_sha256(m2) != weights_sha256(m) and weights_sha256(tiny(depth=14)) == weights_sha256(m)
    assert store.get(dataclasses.replace(key, models=(("t", weights_sha256(m2)),))) is None
    assert store.get(dataclasses.replace(key, seed=1)) is None
    assert store.get(dataclasses.replace(key, analysis="gradients")) is None
    # the parameters decide too, in any order; "_"-parameters (an image tensor, say) do not
    assert ResultKey.for_model("a", "t", "w", {"x": [1, 2], "y": {"b": 1, "a": 2}}, 8, 0, "cpu", "r") == \
        ResultKey.for_model("a", "t", "w", {"y": {"a": 2, "b": 1}, "x": (1, 2), "_image": object()}, 8, 0, "cpu", "r")


def test_a_damaged_entry_is_computed_again_and_off_means_off(tmp_path, monkeypatch):
    store = ResultStore(tmp_path)
    inputs = ResultKey("responses", (("t", "x"),))
    store.put(inputs, {"responses": pd.DataFrame({"a": [1.0, 2.0]})})
    (f,) = tmp_path.glob("responses/*/table0.parquet")
    f.write_bytes(f.read_bytes()[:40])
    assert store.get(inputs) is None
    assert not f.parent.exists()  # dropped, so that the next put writes it afresh
    monkeypatch.setenv("RESLENS_RESULTS", "off")
    off = ResultStore()
    assert not off.enabled and not off.put(inputs, {}) and off.get(inputs) is None
    # a folder that cannot be written is no error: nothing is stored
    ro = tmp_path / "file"
    ro.write_text("not a folder")
    assert not ResultStore(ro).put(inputs, {"responses": pd.DataFrame({"a": [1]})})


@needs_data
def test_a_restarted_app_shows_the_stored_results_without_computing(tmp_path, monkeypatch):
    import streamlit as st

    from analysis.engine import registry

    monkeypatch.setenv("RESLENS_RESULTS", str(tmp_path))

    def page():
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
        at.session_state["models"] = ["plain20", "resnet20"]
        at.session_state["samples"] = 100
        at.run()
        at.switch_page("pages/1_Responses.py").run()
        assert not at.exception, at.exception
        return [c.proto.datasets[0].data.data for c in at.get("vega_lite_chart")]

    st.cache_data.clear()  # a fresh server: nothing computed yet (earlier tests share this process's caches)
    st.cache_resource.clear()
    first = page()
    assert len(list(tmp_path.glob("responses/*/manifest.json"))) == 2  # one entry per model
    st.cache_data.clear()  # a restart: Streamlit's caches are empty...
    st.cache_resource.clear()

    def boom(ctx):
        raise AssertionError("computed again")

    a = registry.get("responses")
    monkeypatch.setitem(registry._REGISTRY, "responses", dataclasses.replace(a, run=boom))
    assert page() == first  # ...and the page draws exactly the stored numbers
    st.cache_data.clear()


def test_an_entry_is_checked_when_read_and_dropped_with_a_line_in_the_log(tmp_path, caplog):
    """Same length, one byte changed (a checksum catches what Parquet might not); an entry written by another
    version of the code at the same place; a manifest that is not JSON: each is dropped, logged, recomputed."""
    store = ResultStore(tmp_path)
    inputs = ResultKey("responses", (("t", "x"),))
    df = pd.DataFrame({"a": [1.0, 2.0, 3.0]})

    def entry():
        assert store.put(inputs, {"responses": df})
        (d,) = tmp_path.glob("responses/*")
        return d

    d = entry()
    pd.testing.assert_frame_equal(store.get(inputs)["responses"], df)
    blob = bytearray((d / "table0.parquet").read_bytes())
    blob[len(blob) // 2] ^= 0xFF
    (d / "table0.parquet").write_bytes(bytes(blob))
    with caplog.at_level("WARNING", logger="reslens"):
        assert store.get(inputs) is None
    assert "does not match its checksum" in caplog.text and not d.exists()

    d = entry()
    man = json.loads((d / "manifest.json").read_text())
    (d / "manifest.json").write_text(json.dumps({**man, "version": "0" * 20}))
    caplog.clear()
    with caplog.at_level("WARNING", logger="reslens"):
        assert store.get(inputs) is None
    assert "computed by other code" in caplog.text and not d.exists()

    d = entry()
    (d / "manifest.json").write_text("{not json")
    caplog.clear()
    with caplog.at_level("WARNING", logger="reslens"):
        assert store.get(inputs) is None
    assert "unreadable" in caplog.text and not d.exists()
    entry()
    pd.testing.assert_frame_equal(store.get(inputs)["responses"], df)  # written afresh, served


def test_the_version_moves_with_the_code_an_analysis_runs():
    """An edit to an analysis' module, or to any library module it imports, moves its version (and with it the
    key of every stored result); an edit elsewhere leaves it."""
    from analysis.engine.store import analysis_version, module_closure, source_version, _read_source

    closure = module_closure("analyses.landscape")
    assert {"analyses.landscape", "analyses.hessian", "core.models", "core.common", "engine.registry"} <= set(closure)
    assert "analyses.deletion" not in closure and "analyses.attributions" not in closure
    base = source_version(closure)
    assert base == analysis_version("landscape")

    def edited(module):
        return lambda m: _read_source(m) + ("\n# edited\n" if m == module else "")

    for module, moves in (("analyses.landscape", True), ("core.models", True), ("analyses.deletion", False)):
        got = source_version(module_closure("analyses.landscape", edited(module)), edited(module))
        assert (got != base) == moves, module
    # every registered analysis has a version; the key changes with it
    k = ResultKey("landscape", (("m", "w"),))
    assert ResultStore.digest(k) != ResultStore.digest(k, version="0" * 20)
