"""ResLens beside the tools its users would otherwise reach for: the same net, the same images, the same device,
in one run, with the numbers side by side and the time ratio.

    pip install -r benchmarks/requirements-peers.txt      # PyHessian 0.1, loss-landscapes 3.0.6, torch-cka 0.21
    RESLENS_DATA=../shared/data/cifar10 python benchmarks/peers.py [--quick] [--device cpu] [--out peers.md]

* **Hessian** (resnet56): the top eigenvalue and the trace against PyHessian over ``--seeds`` seeds, both in float32
  on the same images and at equal numbers: the eigenvalue to the same tolerance (PyHessian's defaults: power
  iteration, tol 1e-3, at most 100 products; ResLens: Lanczos, tol 1e-3), both set beside a reference λ₁ (Lanczos to
  1e-7); the trace to the same standard error (PyHessian: 16 or 40 Hutchinson samples; ResLens: Hutchinson deflated by
  its Lanczos basis, stopped once its standard error is at most the peer's). Both keep the gradient's graph and
  differentiate it again per product (ResLens on a private copy with BN written as its eval-mode affine map).
* **Loss surface** (resnet56, a 2-D grid): ResLens's grid against ``loss_landscapes.planar_interpolation`` on the same
  filter-normalised directions and the same points (the peer's plane is placed so that its grid is ResLens's). Its
  loop adds the step along the second direction *before* the first evaluation of every other column, so those
  columns sit one step off; the table shows its points against ResLens's at the points it really evaluated, and the
  shift itself against a known answer (a "net" whose loss is its first weight).
* **CKA** (resnet20, every block's output x every block's output): ResLens's minibatch CKA against ``torch_cka.CKA``
  (the same unbiased estimator, Nguyen et al. 2021); the known answer: a layer against itself is 1.

Only the peers' public functions are called; nothing of them is copied here. ``--quick``: 200 images and fewer
iterations (a few minutes on a 2-core CPU); the default: 1,000 images.
"""

from __future__ import annotations

import argparse
import copy
import math
import statistics
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from analysis.core.common import eval_sample  # noqa: E402
from analysis.core.zoo import load_pretrained  # noqa: E402


def _timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def _spread(xs) -> str:
    return f"{statistics.mean(xs):.4g} ± {statistics.stdev(xs):.2g}" if len(xs) > 1 else f"{xs[0]:.4g}"


# ---------------------------------------------------------------------------------------------------- Hessian
def hessian_rows(model, batch, seeds: int, trace_samples: int) -> list[dict]:
    """At equal numbers: PyHessian at its defaults for the top eigenvalue (power iteration, at most 100 products,
    tol 1e-3) and ``trace_samples`` Hutchinson samples for the trace; ResLens's Lanczos to the same tolerance, then
    its deflated trace until its standard error is at most the peer's (at most ``trace_samples`` samples). A
    reference λ₁ (Lanczos to tol 1e-7) shows how far each top eigenvalue is from the converged one."""
    from pyhessian import hessian as PyHessian

    ph = sys.modules["pyhessian.hessian"]  # the module (the package's name ``hessian`` is its class)

    from analysis.analyses.hessian import hutchinson_trace, lanczos_eigenvalues, model_hvp

    hvp, template, _ = model_hvp(model, batch, chunk=250, method="kept_graph")  # as the peer: graphs kept
    reference = lanczos_eigenvalues(hvp, template, k=1, max_iter=100, tol=1e-7, seed=99)[0][0]["eigenvalue"]
    del hvp, template
    products = {"n": 0}
    counted_product = ph.hessian_vector_product

    def counting(*args):
        products["n"] += 1
        return counted_product(*args)

    res: dict[str, list] = {k: [] for k in ("eig", "tr", "se", "t", "n_eig", "n_tr", "peig", "ptr", "pse", "pt",
                                            "pn_eig", "pn_tr")}
    for seed in range(seeds):
        def peer():
            torch.manual_seed(seed)
            net = copy.deepcopy(model).float()  # PyHessian puts the net in eval mode and fills its .grad
            h = PyHessian(net, torch.nn.CrossEntropyLoss(), data=(batch.x.float(), batch.y), cuda=False)
            ph.hessian_vector_product, products["n"] = counting, 0
            try:
                e = h.eigenvalues(maxIter=100, tol=1e-3)[0][0]
                n_eig = products["n"]
                tr = h.trace(maxIter=trace_samples, tol=1e-3)
            finally:
                ph.hessian_vector_product = counted_product
            return e, tr, n_eig

        def ours(target_se):
            hvp, template, _ = model_hvp(model, batch, chunk=250, method="kept_graph")
            eig, run = lanczos_eigenvalues(hvp, template, k=1, max_iter=100, tol=1e-3, seed=seed)
            t = hutchinson_trace(hvp, template, max_iter=trace_samples, tol=1e-3, seed=seed + 1, krylov=run,
                                 target_se=target_se)[0]
            return eig[0]["eigenvalue"], t, len(run.alphas)

        (e, tr, n_eig), dt = _timed(peer)
        se = float(np.std(tr, ddof=1) / np.sqrt(len(tr)))
        for k, v in (("peig", e), ("ptr", float(np.mean(tr))), ("pse", se), ("pt", dt), ("pn_eig", n_eig),
                     ("pn_tr", len(tr))):
            res[k].append(v)
        (e, t, n_eig), dt = _timed(lambda: ours(se))
        for k, v in (("eig", e), ("tr", t["trace"]), ("se", t["trace_std_error"]), ("t", dt), ("n_eig", n_eig),
                     ("n_tr", t["iterations"])):
            res[k].append(v)

    def err(xs):
        return f"{statistics.mean([abs(x - reference) / abs(reference) for x in xs]):.2%}"

    def counts(a, b):
        return f"{min(res[a])}-{max(res[a])} + {min(res[b])}-{max(res[b])} products"

    z = max(abs(a - b) / math.hypot(sa, sb) for a, b, sa, sb in zip(res["tr"], res["ptr"], res["se"], res["pse"]))
    return [{"peer": "PyHessian 0.1", "quantity": f"top eigenvalue (tol 1e-3), then trace (standard error ≤ the "
             f"peer's at {trace_samples} samples)",
             "ResLens": f"λ₁ {_spread(res['eig'])} ({err(res['eig'])} from the reference); trace "
                        f"{_spread(res['tr'])}, s.e. {statistics.mean(res['se']):.3g}; {counts('n_eig', 'n_tr')} "
                        "(Lanczos; Hutchinson deflated by its basis)",
             "peer's": f"λ₁ {_spread(res['peig'])} ({err(res['peig'])} from the reference); trace "
                       f"{_spread(res['ptr'])}, s.e. {statistics.mean(res['pse']):.3g}; "
                       f"{counts('pn_eig', 'pn_tr')} (power iteration; Hutchinson)",
             "agreement": f"reference λ₁ {reference:.5g} (Lanczos to 1e-7); traces within {z:.1f} combined standard "
                          "errors of each other",
             "seconds (ResLens / peer)": f"{statistics.mean(res['t']):.1f} / {statistics.mean(res['pt']):.1f}",
             "speed-up": statistics.mean(res["pt"]) / statistics.mean(res["t"])}]


# ---------------------------------------------------------------------------------------------------- loss surface
def _net_at(model, theta: dict, shift: dict[str, torch.Tensor]):
    net = copy.deepcopy(model).float()
    with torch.no_grad():
        for k, p in net.named_parameters():
            p.copy_(theta[k] + shift[k])
    return net


def surface_rows(model, batch, steps: int) -> tuple[list[dict], float]:
    from loss_landscapes import planar_interpolation
    from loss_landscapes.metrics import Loss

    from analysis.analyses.landscape import filter_normalized_direction, grid, grid_losses

    r = 1.0
    ab = grid(steps, r)
    d1, d2 = filter_normalized_direction(model, 0), filter_normalized_direction(model, 1)
    points = [(a, b) for a in ab for b in ab]
    ours, t_ours = _timed(lambda: grid_losses(model, batch, points, d1, d2, bf16=True))
    ours32, t_ours32 = _timed(lambda: grid_losses(model, batch, points, d1, d2, bf16=False))
    z = np.array([l for l, _ in ours32]).reshape(steps, steps)
    zb = np.array([l for l, _ in ours]).reshape(steps, steps)
    theta = {k: v.detach().float() for k, v in model.named_parameters()}
    # planar_interpolation evaluates start + i·(end₁ - start)/steps + j·(end₂ - start)/steps: start at (-r, -r) and
    # ends chosen so that one step is ResLens's grid spacing 2r / (steps - 1)
    span = 2 * r * steps / (steps - 1)
    start = _net_at(model, theta, {k: -r * d1[k] - r * d2[k] for k in theta})
    end1 = _net_at(model, theta, {k: (span - r) * d1[k] - r * d2[k] for k in theta})
    end2 = _net_at(model, theta, {k: -r * d1[k] + (span - r) * d2[k] for k in theta})
    metric = Loss(torch.nn.CrossEntropyLoss(), batch.x.float(), batch.y)

    def peer():
        with torch.no_grad():
            return planar_interpolation(start, end1, end2, metric, steps=steps, deepcopy_model=True)

    theirs, t_peer = _timed(peer)
    # what the peer really evaluated: even columns at β index j + 1 (one step past the last for j = steps - 1)
    even_ok = np.abs(theirs[0::2, :-1] - z[0::2, 1:]).max() / np.abs(z).max()
    odd_ok = np.abs(theirs[1::2] - z[1::2]).max() / np.abs(z).max()
    as_labelled = np.abs(theirs - z).max() / np.abs(z).max()
    rows = [{"peer": "loss-landscapes 3.0.6", "quantity": f"{steps}x{steps} loss grid",
             "ResLens": f"{len(points) / t_ours:.2f} points/s (bf16), {len(points) / t_ours32:.2f} (float32)",
             "peer's": f"{len(points) / t_peer:.2f} points/s (float32)",
             "agreement": f"float32 vs float32 at the points it evaluated: max rel. diff {max(even_ok, odd_ok):.1e}; "
                          f"at the points it labels: {as_labelled:.1e} (every other column one step off); ResLens "
                          f"bf16 vs float32: {np.abs(zb - z).max() / np.abs(z).max():.1e}",
             "seconds (ResLens / peer)": f"{t_ours:.1f} (bf16), {t_ours32:.1f} (float32) / {t_peer:.1f}",
             "speed-up": t_peer / t_ours}]
    return rows, as_labelled


def shifted_columns_known_answer() -> str:
    """The peer on a one-parameter 'net' whose loss is its weight w: on a plane from w = 0 with steps of 1 along
    both directions (the same weight), point (i, j) should read i + j."""
    from loss_landscapes import planar_interpolation
    from loss_landscapes.metrics import Metric

    class W(Metric):
        def __call__(self, wrapper) -> float:
            return float(next(iter(wrapper.get_module_parameters())).sum())

    def net(w: float):
        m = torch.nn.Linear(1, 1, bias=False)
        with torch.no_grad():
            m.weight.fill_(w)
        return m

    got = planar_interpolation(net(0.0), net(3.0), net(3.0), W(), steps=3)
    want = np.add.outer(np.arange(3), np.arange(3)).astype(float)
    return f"known answer i + j on a 3x3 grid: {want.tolist()}; loss-landscapes returns {got.tolist()}"


# ---------------------------------------------------------------------------------------------------- CKA
def cka_rows(model, batch, minibatch: int) -> list[dict]:
    from torch.utils.data import DataLoader, TensorDataset
    from torch_cka import CKA

    from analysis.analyses.cka import cka_matrix

    (names, ours, _), t_ours = _timed(lambda: cka_matrix(model, batch.x, batch=minibatch))
    net = copy.deepcopy(model).float()
    by_id = {id(m): n for n, m in net.named_modules()}
    layers = ["stem"] + [by_id[id(b)] for _, b in net.blocks()]
    loader = DataLoader(TensorDataset(batch.x.float(), batch.y), batch_size=minibatch)

    def peer():
        import warnings

        with warnings.catch_warnings(), torch.no_grad():
            warnings.simplefilter("ignore")
            c = CKA(net, net, "a", "b", model1_layers=layers, model2_layers=layers, device="cpu")
            c.compare(loader)
        return c.export()["CKA"].double()

    theirs, t_peer = _timed(peer)
    diag = float(torch.diagonal(theirs).sub(1).abs().max())
    return [{"peer": "torch-cka 0.21", "quantity": f"{len(names)}x{len(names)} block CKA ({minibatch}-image minibatches)",
             "ResLens": f"diagonal 1 within {float(torch.diagonal(ours).sub(1).abs().max()):.0e}",
             "peer's": f"diagonal 1 within {diag:.0e}",
             "agreement": f"max abs. diff {float((ours - theirs).abs().max()):.1e} (ResLens in bf16 features, the peer "
                          "in float32)",
             "seconds (ResLens / peer)": f"{t_ours:.1f} / {t_peer:.1f}", "speed-up": t_peer / t_ours}]


PARTS = ("hessian", "surface", "cka")
COLUMNS = ["peer", "quantity", "ResLens", "peer's", "agreement", "seconds (ResLens / peer)", "speed-up"]


def table(rows: list[dict], header: str) -> str:
    lines = [header, "", "| " + " | ".join(COLUMNS) + " |", "|" + " --- |" * len(COLUMNS)]
    for r in rows:
        lines.append("| " + " | ".join(f"{r[c]:.2f}x" if c == "speed-up" else str(r[c]) for c in COLUMNS) + " |")
    return "\n".join(lines)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="200 images and fewer iterations (a few minutes on a CPU)")
    p.add_argument("--images", type=int, default=None)
    p.add_argument("--seeds", type=int, default=3)
    p.add_argument("--device", default="cpu")
    p.add_argument("--only", default=",".join(PARTS),
                   help="the comparisons to run, comma-separated: hessian, surface, cka (default: all three); each "
                        "prints its row when it ends, so a long run can be split or stopped without losing a part")
    p.add_argument("--out", default=None, help="also write the table as markdown to this file (after each part)")
    a = p.parse_args(argv)
    parts = [x for x in a.only.split(",") if x]
    unknown = sorted(set(parts) - set(PARTS))
    if unknown:
        p.error(f"--only: unknown part(s) {', '.join(unknown)}; choose from {', '.join(PARTS)}")
    try:
        import loss_landscapes  # noqa: F401
        import pyhessian  # noqa: F401
        import torch_cka  # noqa: F401
    except ImportError as e:
        print(f"A peer is not installed ({e.name}): pip install -r benchmarks/requirements-peers.txt")
        return 2
    n = a.images or (200 if a.quick else 1000)
    dev = torch.device(a.device)
    torch.manual_seed(0)
    batch = eval_sample(n, 0, dev)
    header = f"{n} test images, device {dev}, torch {torch.__version__}, {torch.get_num_threads()} threads"
    rows: list[dict] = []

    def done(new: list[dict], seconds: float) -> None:
        rows.extend(new)
        for r in new:
            print(f"{r['peer']}: {r['speed-up']:.2f}x ({r['seconds (ResLens / peer)']} s); {r['agreement']} "
                  f"[this part: {seconds / 60:.1f} min]", flush=True)
        if a.out:
            Path(a.out).write_text(table(rows, header) + "\n")

    big = load_pretrained("resnet56", device=dev).eval() if {"hessian", "surface"} & set(parts) else None
    if "hessian" in parts:
        print(f"Hessian: resnet56, {n} images, {a.seeds} seeds ...", flush=True)
        done(*_timed(lambda: hessian_rows(big, batch, a.seeds, 16 if a.quick else 40)))
    if "surface" in parts:
        print("loss surface ...", flush=True)
        done(*_timed(lambda: surface_rows(big, batch, 5 if a.quick else 11)[0]))
    if "cka" in parts:
        print("CKA: resnet20 ...", flush=True)
        done(*_timed(lambda: cka_rows(load_pretrained("resnet20", device=dev).eval(), batch, 100 if a.quick else 250)))
    text = table(rows, header) + ("\n\n" + shifted_columns_known_answer() if "surface" in parts else "")
    print(text)
    if a.out:
        Path(a.out).write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
