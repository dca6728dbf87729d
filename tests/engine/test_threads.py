"""One cached model serves every browser session, from many threads at once: no analysis may change what
another thread sees, not even for the length of one call (``torch.func.functional_call`` swaps a module's
parameters while it runs; hooks and train mode are seen by every thread)."""

import threading
import time

import pytest
import torch

from analysis.core.common import random_sample, same_state, state_fingerprint
from analysis.engine.registry import Context, load_all, run_one
from conftest import tiny

MODEL_ANALYSES = [a for a in load_all().values() if a.scope == "model"]
# More of the run inside perturbed forward passes, where a shared model would show the perturbed weights.
STRESS = {"landscape": {"direction": "random", "steps_1d": 9}}
# Each analysis at its stress settings, and the modes that take another code path on a private copy.
MODES = {"gradients": {"weight_grads": False},  # bfloat16 on a channels_last copy
         "responses": {"ratio_only": True}}  # bfloat16 autocast on the shared model itself (only read)
CASES = [pytest.param(a, STRESS.get(a.name, {}), id=a.name) for a in MODEL_ANALYSES] + [
    pytest.param(a, MODES[a.name], id=f"{a.name}-" + ",".join(f"{k}={v}" for k, v in MODES[a.name].items()))
    for a in MODEL_ANALYSES if a.name in MODES]


def _watch(model, x, ref, stop: threading.Event, seen: dict) -> None:
    """Forward passes of ``model`` until ``stop``; records every pass that saw something else than the
    model as it was: other outputs, swapped parameters, train mode or hooks."""
    ids = [id(p) for p in model.parameters()]
    while not stop.is_set():
        with torch.no_grad():
            out = model(x)
        seen["passes"] += 1
        if not torch.allclose(out, ref, rtol=1e-4, atol=1e-5):
            seen["outputs"] += 1
        if [id(p) for p in model.parameters()] != ids:
            seen["swapped"] += 1
        if any(m.training for m in model.modules()):
            seen["train_mode"] += 1
        if any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in model.modules()):
            seen["hooks"] += 1


@pytest.mark.parametrize("analysis,mode", CASES)
def test_a_thread_running_the_shared_model_never_sees_an_analysis_at_work(analysis, mode):
    model = tiny(name="resnet14")
    saved = state_fingerprint(model)
    x = torch.randn(4, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = model(x)
    batch = random_sample(12, 0, torch.device("cpu"))
    params = analysis.params(**{**analysis.quick, **mode})
    seen = {"passes": 0, "outputs": 0, "swapped": 0, "train_mode": 0, "hooks": 0}
    stop = threading.Event()
    watcher = threading.Thread(target=_watch, args=(model, x, ref, stop, seen), daemon=True)
    watcher.start()
    runs, t0 = 0, time.perf_counter()
    try:
        while runs < 2 or time.perf_counter() - t0 < 1.5:  # the analysis again and again beside the watcher
            ctx = Context(name="t", model=model, arch="resnet14", seed=runs, samples=12, batch=batch, params=params)
            run_one(analysis, ctx)
            runs += 1
    finally:
        stop.set()
        watcher.join(timeout=60)
    assert seen["passes"] > 0, "the watcher never ran"
    bad = {k: v for k, v in seen.items() if k != "passes" and v}
    assert not bad, f"{analysis.name}: {bad} of {seen['passes']} forward passes in another thread saw it at work"
    assert same_state(model, saved)


def test_seeded_initialisations_do_not_interleave_across_threads():
    """A fresh He initialisation with a seed is the same whatever another thread draws at the same time."""
    from analysis.core.zoo import fresh_model

    ref = fresh_model("resnet20", seed=3, device="cpu").state_dict()
    stop = threading.Event()

    def noise():  # another session initialising another net with another seed, again and again
        while not stop.is_set():
            fresh_model("plain20", seed=99, device="cpu")

    t = threading.Thread(target=noise, daemon=True)
    t.start()
    try:
        for _ in range(10):
            got = fresh_model("resnet20", seed=3, device="cpu").state_dict()
            assert all(torch.equal(got[k], ref[k]) for k in ref)
    finally:
        stop.set()
        t.join(timeout=10)
