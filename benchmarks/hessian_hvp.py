"""Hessian-vector products: torch.func (forward-over-reverse) vs double backward vs the kept graph, side by side.

    python benchmarks/hessian_hvp.py [--model resnet56] [--samples 1000] [--max-iter 20] [--tol 1e-3]

("kept_graph" builds each chunk's gradient graph once and differentiates it again per product: the first product
pays for the graph, here in the warm-up.)

For each method: the top Hessian eigenvalue of the mean test loss by power iteration (the same seed, so the
same start vector), the products it took, seconds per product (timed over the whole run) and the total,
then the ratio. Float32, eval-mode BN, a private copy; CUDA when present (``--device`` to choose).
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import argparse
import platform
import time

import torch

from analysis.core.common import eval_sample, private_copy
from analysis.analyses.hessian import model_hvp, top_eigenvalues
from analysis.core.zoo import load_pretrained

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet56")
ap.add_argument("--samples", type=int, default=1000)
ap.add_argument("--max-iter", type=int, default=20)
ap.add_argument("--tol", type=float, default=1e-3)
ap.add_argument("--chunk", type=int, default=250)
ap.add_argument("--device", default=None)
a = ap.parse_args()
dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
where = torch.cuda.get_device_name(dev) if dev.type == "cuda" else f"CPU ({platform.machine()}, {torch.get_num_threads()} threads)"
batch = eval_sample(a.samples, 0, dev)
model = load_pretrained(a.model, device=dev)
print(f"{a.model}, {a.samples} test images, {where}, power iteration up to {a.max_iter} products, tol {a.tol:g}")
results = {}
for method in ("func", "double_backward", "kept_graph"):
    hvp, template, _ = model_hvp(private_copy(model), batch, chunk=a.chunk, method=method)
    hvp(template)  # warm-up (allocations, kernels)
    calls = {"n": 0, "s": 0.0}

    def timed(v, hvp=hvp, calls=calls):
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        t0 = time.perf_counter()
        out = hvp(v)
        if dev.type == "cuda":
            torch.cuda.synchronize(dev)
        calls["n"] += 1
        calls["s"] += time.perf_counter() - t0
        return out

    e = top_eigenvalues(timed, template, k=1, max_iter=a.max_iter, tol=a.tol, seed=0)[0]
    results[method] = (e["eigenvalue"], calls["n"], calls["s"] / calls["n"], calls["s"], e["converged"])
    print(f"  {method:<16} top eigenvalue {e['eigenvalue']:.5g} after {calls['n']} products "
          f"({'converged' if e['converged'] else 'not converged'}); {calls['s'] / calls['n']:.2f} s per product, "
          f"{calls['s']:.1f} s in all")
f, d, k = results["func"], results["double_backward"], results["kept_graph"]
print(f"seconds per product, double backward / torch.func: {d[2] / f[2]:.2f}x "
      f"(eigenvalues agree to {abs(f[0] - d[0]) / abs(d[0]):.1e} relative)")
print(f"seconds per product, torch.func / kept graph: {f[2] / k[2]:.2f}x "
      f"(eigenvalues agree to {abs(f[0] - k[0]) / abs(k[0]):.1e} relative)")
