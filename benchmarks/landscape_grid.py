"""Loss-landscape grid speed: points per second, measured side by side in one run.

    python benchmarks/landscape_grid.py                       # CPU: per point vs batched, 1 vs 2 torchrun ranks
    python benchmarks/landscape_grid.py --device cuda --full  # GPU: the same, then the whole 51x51 grid

1. In this process, on the same grid points of resnet56 (filter-normalised random directions, seed 0):
   one point per forward pass vs ``--ppp`` points per pass (``torch.func.vmap`` over stacked weights),
   bf16 autocast, and float32 per point for the precision note (largest |loss difference|).
2. The ``python -m analysis landscape`` command on a small grid, once as one process and once under
   ``torchrun --nproc_per_node 2`` (each rank its half of the cores on a CPU), wall time of the whole command
   (start-up and model loading included), and whether the two CSVs are equal.
3. ``--full``: the whole 51x51 grid of resnet56 on the 10,000 test images through the CLI, on this device.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from analysis.core.common import eval_sample  # noqa: E402
from analysis.analyses.landscape import Perturbable, filter_normalized_direction, grid, grid_losses  # noqa: E402
from analysis.core.zoo import load_pretrained  # noqa: E402


def timed(fn):
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    t = time.perf_counter()
    out = fn()
    if torch.cuda.is_available():
        torch.cuda.synchronize()
    return out, time.perf_counter() - t


def in_process(args) -> int:
    """Returns the faster number of points per pass."""
    dev = torch.device(args.device)
    model = Perturbable(load_pretrained("resnet56", device=dev))  # the one private copy every timing reuses
    batch = eval_sample(args.samples, 0, dev)
    d1, d2 = filter_normalized_direction(model.model, 0), filter_normalized_direction(model.model, 1)
    g = grid(51, 1.0)
    pts = [(a, b) for b in g[20:31] for a in g[20:31]][: args.points]
    grid_losses(model, batch, pts[:2], d1, d2)  # warm-up (kernels, allocator)
    grid_losses(model, batch, pts[:args.ppp], d1, d2, points_per_pass=args.ppp)
    one, t1 = timed(lambda: grid_losses(model, batch, pts, d1, d2))
    many, tb = timed(lambda: grid_losses(model, batch, pts, d1, d2, points_per_pass=args.ppp))
    f32, tf = timed(lambda: grid_losses(model, batch, pts, d1, d2, bf16=False))
    dl = max(abs(a[0] - b[0]) for a, b in zip(one, many))
    dp = max(abs(a[0] - b[0]) for a, b in zip(one, f32))
    print(f"resnet56, {len(pts)} grid points, {args.samples} test images each, {dev}")
    print(f"  per point, bf16            {len(pts) / t1:8.2f} points/s")
    print(f"  {args.ppp} points per pass, bf16  {len(pts) / tb:8.2f} points/s   batched/per-point = {t1 / tb:.2f}x"
          f"   (max |loss diff| {dl:.2e})")
    print(f"  per point, float32         {len(pts) / tf:8.2f} points/s   bf16/float32 = {tf / t1:.2f}x"
          f"   (max |loss diff| bf16 vs float32 {dp:.2e})")
    return args.ppp if tb < t1 else 1


def cli(args) -> None:
    """The landscape command, one process vs torchrun with --ranks processes, on the same small grid."""
    cores = os.cpu_count() or 2
    common = ["landscape", "--models", "resnet56", "--steps", str(args.cli_steps), "--samples", str(args.cli_samples),
              "--no-resume", "--device", args.device]
    times, frames = {}, {}
    with tempfile.TemporaryDirectory() as tmp:
        for ranks in (1, args.ranks):
            out = Path(tmp) / f"r{ranks}"
            env = dict(os.environ)
            if args.device == "cpu":
                env["OMP_NUM_THREADS"] = str(max(1, cores // ranks))
            cmd = ([sys.executable, "-m", "analysis"] if ranks == 1 else
                   [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks), "-m", "analysis"])
            t = time.perf_counter()
            subprocess.run(cmd + common + ["--out", str(out)], cwd=ROOT, env=env, check=True,
                           stdout=subprocess.DEVNULL)
            times[ranks] = time.perf_counter() - t
            frames[ranks] = pd.read_csv(out / "landscape.csv")
    n = len(frames[1])
    same = frames[1].equals(frames[args.ranks])
    print(f"python -m analysis landscape, {args.cli_steps}x{args.cli_steps} grid = {n} points, "
          f"{args.cli_samples} images, {args.device}, {cores} cores (whole command, start-up included)")
    print(f"  1 process          {times[1]:7.1f} s   {n / times[1]:.2f} points/s")
    print(f"  torchrun {args.ranks} ranks    {times[args.ranks]:7.1f} s   {n / times[args.ranks]:.2f} points/s   "
          f"{args.ranks} ranks / 1 = {times[1] / times[args.ranks]:.2f}x   CSV equal: {same}")


def full(args) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        cmd = [sys.executable, "-m", "analysis", "landscape", "--models", "resnet56", "--steps", "51",
               "--samples", "10000", "--no-resume", "--device", args.device, "--points-per-pass", str(args.full_ppp),
               "--out", tmp]
        t = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True)
        secs = time.perf_counter() - t
        df = pd.read_csv(Path(tmp) / "landscape.csv")
    name = torch.cuda.get_device_name() if args.device.startswith("cuda") else "CPU"
    print(f"whole 51x51 grid of resnet56 on 10,000 test images, {name}: {len(df)} points in {secs:.0f} s "
          f"({secs / 60:.1f} min, {len(df) / secs:.1f} points/s, {secs / len(df):.3f} s per point); "
          f"loss {df['loss'].min():.3f}..{df['loss'].max():.3f}")


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--samples", type=int, default=None, help="images per point (default 1000 CPU, 10000 GPU)")
    p.add_argument("--points", type=int, default=16)
    p.add_argument("--ppp", type=int, default=8, help="grid points per forward pass in the batched version")
    p.add_argument("--ranks", type=int, default=2)
    p.add_argument("--cli-steps", type=int, default=5)
    p.add_argument("--cli-samples", type=int, default=500)
    p.add_argument("--full", action="store_true", help="also time the whole 51x51 grid (minutes on a GPU)")
    p.add_argument("--full-ppp", type=int, default=0, help="points per pass for --full (default: the faster one)")
    p.add_argument("--skip-cli", action="store_true")
    a = p.parse_args()
    a.samples = a.samples or (10000 if a.device.startswith("cuda") else 1000)
    best = in_process(a)
    a.full_ppp = a.full_ppp or best
    if not a.skip_cli:
        cli(a)
    if a.full:
        full(a)
