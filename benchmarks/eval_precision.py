"""Evaluation throughput: bfloat16 autocast + channels_last vs float32, side by side.

    python benchmarks/eval_precision.py [--model resnet56] [--samples 2000] [--repeats 3]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere


import argparse
import statistics
import time

import torch

from analysis.core import data as D
from analysis.core.evaluate import evaluate_error
from analysis.core.zoo import load_pretrained

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet56")
ap.add_argument("--samples", type=int, default=2000)
ap.add_argument("--repeats", type=int, default=3)
ap.add_argument("--device", default=None)
a = ap.parse_args()
dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
test = D.load_split("test")
idx = D.sample_indices(len(test), a.samples, 0)
x, y = test.images[idx], test.labels[idx]
m32 = load_pretrained(a.model, device=dev)
mcl = load_pretrained(a.model, device=dev).to(memory_format=torch.channels_last)
evaluate_error(m32, x[:200], y[:200], device=dev, bf16=False)
evaluate_error(mcl, x[:200], y[:200], device=dev, bf16=True)
t32, tbf, e32, ebf = [], [], None, None
for _ in range(a.repeats):
    t = time.perf_counter(); e32 = evaluate_error(m32, x, y, device=dev, bf16=False); t32.append(time.perf_counter() - t)
    t = time.perf_counter(); ebf = evaluate_error(mcl, x, y, device=dev, bf16=True); tbf.append(time.perf_counter() - t)
a32, abf = a.samples / statistics.median(t32), a.samples / statistics.median(tbf)
print(f"{a.model} on {a.samples} test images, {dev.type}, median of {a.repeats}")
print(f"float32: {a32:.0f} img/s ({e32:.2f} % error)   bf16+channels_last: {abf:.0f} img/s ({ebf:.2f} % error)   "
      f"ratio: {abf / a32:.2f}x")
