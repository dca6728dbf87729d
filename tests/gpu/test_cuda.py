"""On a GPU: every registered analysis gives the CPU's numbers on CUDA (same tiny net, same inputs), and the
model stays where it was and bit-identical. Skipped where there is no CUDA device (CI); run on a lent GPU."""

import numpy as np
import pandas as pd
import pytest
import torch

from analysis.core.common import Batch, random_sample, same_state, state_fingerprint
from analysis.engine.registry import Context, load_all, run_one
from conftest import tiny

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
ANALYSES = [a for a in load_all().values() if a.scope == "model"]
CUDA = torch.device("cuda")
# Where the two devices may differ beyond float32 rounding: bf16 autocast runs only where the analysis says
# so, Monte Carlo estimates draw from each device's own generator, attributions are ranked.
LOOSE = {"landscape": 2e-2, "attributions": 5e-2}
RANDOM_ON_DEVICE = {"hessian", "shattering"}


def _run(analysis, arch: str, dev: torch.device) -> dict[str, pd.DataFrame]:
    m = tiny(name=arch).to(dev)
    b = random_sample(12, 0, torch.device("cpu"))
    batch = Batch(b.x.to(dev), b.y.to(dev), b.indices, source=b.source)
    saved = state_fingerprint(m)
    out = run_one(analysis, Context(name="t", model=m, arch=arch, device=dev, seed=0, samples=12, batch=batch,
                                    params=analysis.params(**analysis.quick)))
    assert same_state(m, saved) and next(m.parameters()).device.type == dev.type
    return out


@pytest.mark.parametrize("arch", ["plain14", "resnet14", "resnet14-preact"])
@pytest.mark.parametrize("analysis", ANALYSES, ids=lambda a: a.name)
def test_cuda_gives_the_cpu_numbers(analysis, arch):
    if not analysis.applies_to(tiny(name=arch)):
        pytest.skip("residual-only analysis")
    cpu, gpu = _run(analysis, arch, torch.device("cpu")), _run(analysis, arch, CUDA)
    assert cpu.keys() == gpu.keys()
    for k in cpu:
        a, b = cpu[k], gpu[k]
        assert list(a.columns) == list(b.columns) and len(a) == len(b), k
        if analysis.name in RANDOM_ON_DEVICE:
            continue  # same tables and shapes; the estimates' known answers are tested on the CPU
        num = [c for c in a.columns if pd.api.types.is_float_dtype(a[c]) and c not in ("seconds", "wall_s")]
        for c in num:
            x, y = a[c].to_numpy(float), b[c].to_numpy(float)
            tol = LOOSE.get(analysis.name, 1e-3)
            assert np.allclose(x, y, rtol=tol, atol=tol, equal_nan=True), (k, c, np.nanmax(np.abs(x - y)))
