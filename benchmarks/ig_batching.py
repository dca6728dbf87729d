"""Integrated Gradients (50 steps) per image on resnet56: Captum's internal batching vs one step at a time.

    python benchmarks/ig_batching.py [--images 4]
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere


import argparse
import statistics
import time

import torch
from captum.attr import IntegratedGradients

from analysis.core import data as D
from analysis.core.common import private_copy
from analysis.core.zoo import load_pretrained

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet56")
ap.add_argument("--images", type=int, default=4)
ap.add_argument("--steps", type=int, default=50)
a = ap.parse_args()
dev = torch.device("cuda" if torch.cuda.is_available() else "cpu")
m = private_copy(load_pretrained(a.model, device=dev))
ig = IntegratedGradients(m)
test = D.load_split("test")
xs = D.normalize(test.images[: a.images]).to(dev)


def run(ibs):
    out = []
    for i in range(a.images):
        x = xs[i:i + 1]
        t = time.perf_counter()
        attr = ig.attribute(x, baselines=torch.zeros_like(x), target=int(test.labels[i]), n_steps=a.steps,
                            internal_batch_size=ibs)
        out.append(time.perf_counter() - t)
    return statistics.median(out), attr


run(a.steps)
t1, a1 = run(1)
tb, ab = run(a.steps)
print(f"IG {a.steps} steps on {a.model}, {a.images} images, {dev.type}: one step per batch {t1 * 1000:.0f} ms/image, "
      f"internal_batch_size={a.steps} {tb * 1000:.0f} ms/image, speed-up {t1 / tb:.2f}x, "
      f"max |difference| {float((a1 - ab).abs().max()):.2e}")
