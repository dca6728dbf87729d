"""Single-block deletion sweep of resnet110: prefix reuse vs naive full recompute, the folded bfloat16 copy
(``inference_copy``) vs the model itself in autocast, and its fused convolutions vs the same copy without, side by
side.

    python benchmarks/deletion_prefix.py [--samples 500] [--repeats 2] [--device cpu]

Each variant computes the error with each of the 54 blocks deleted on the same images (bf16 autocast,
channels_last); the prefix variants also pay for computing and caching every block input once, the folded one for
making its copy. Naive and prefix run on the same folded copy (identical errors); "unfolded" runs the prefix sweep on
the model itself, as before BN folding, and "unfused" on the folded copy without fused convolutions (errors within
bfloat16 rounding: the count of differing ones is printed). "chunks of 250" runs the prefix sweep in chunks of 250
images instead of the cache's default (500): the same errors, the chunk's effect on speed.
"""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere


import argparse
import statistics
import time

import torch

from analysis.core.common import eval_sample
from analysis.analyses._prefix import PrefixCache, full_error_pct
from analysis.core.zoo import load_pretrained

ap = argparse.ArgumentParser()
ap.add_argument("--model", default="resnet110")
ap.add_argument("--samples", type=int, default=500)
ap.add_argument("--repeats", type=int, default=2)
ap.add_argument("--device", default=None)
a = ap.parse_args()
dev = torch.device(a.device or ("cuda" if torch.cuda.is_available() else "cpu"))
model = load_pretrained(a.model, device=dev)
batch = eval_sample(a.samples, 0, dev)
n = model.num_blocks


def sync():
    if dev.type == "cuda":
        torch.cuda.synchronize()


def naive():
    return [full_error_pct(model, batch, skip=[i]) for i in range(n)]


def prefix():
    cache = PrefixCache(model, batch)
    return [cache.error_pct(i, skip={i}) for i in range(n)]


def unfolded():
    cache = PrefixCache(model, batch, fold=False)
    return [cache.error_pct(i, skip={i}) for i in range(n)]


def unfused():
    cache = PrefixCache(model, batch, fuse=False)
    return [cache.error_pct(i, skip={i}) for i in range(n)]


def chunk250():
    cache = PrefixCache(model, batch, chunk=250)
    return [cache.error_pct(i, skip={i}) for i in range(n)]


naive_t, prefix_t, unfolded_t, unfused_t, chunk_t = [], [], [], [], []
for r in range(a.repeats):  # interleaved, so all see the same machine load
    sync(); t = time.perf_counter(); e1 = naive(); sync(); naive_t.append(time.perf_counter() - t)
    sync(); t = time.perf_counter(); e2 = prefix(); sync(); prefix_t.append(time.perf_counter() - t)
    sync(); t = time.perf_counter(); e3 = unfolded(); sync(); unfolded_t.append(time.perf_counter() - t)
    sync(); t = time.perf_counter(); e4 = unfused(); sync(); unfused_t.append(time.perf_counter() - t)
    sync(); t = time.perf_counter(); e5 = chunk250(); sync(); chunk_t.append(time.perf_counter() - t)
    assert e1 == e2, "prefix reuse changed an error"
    assert e5 == e2, "the chunk size changed an error"
tn, tp, tu = statistics.median(naive_t), statistics.median(prefix_t), statistics.median(unfolded_t)
tf, tc = statistics.median(unfused_t), statistics.median(chunk_t)
diff = [abs(x - y) for x, y in zip(e2, e3)]
diff_f = [abs(x - y) for x, y in zip(e2, e4)]
print(f"{a.model}, {n} single deletions, {a.samples} images, {dev.type}, median of {a.repeats}")
print(f"naive full recompute: {tn:.2f} s   prefix reuse: {tp:.2f} s   speed-up: {tn / tp:.2f}x   (errors identical)")
print(f"prefix reuse on the unfolded model: {tu:.2f} s   folded copy: {tp:.2f} s   speed-up: {tu / tp:.2f}x   "
      f"({sum(d > 0 for d in diff)} of {n} errors differ, by at most {max(diff):.2f} points)")
print(f"folded copy without fused convolutions: {tf:.2f} s   fused: {tp:.2f} s   speed-up: {tf / tp:.2f}x   "
      f"({sum(d > 0 for d in diff_f)} of {n} errors differ, by at most {max(diff_f):.2f} points)")
print(f"prefix reuse in chunks of 250 images: {tc:.2f} s   of 500 (the default): {tp:.2f} s   speed-up: {tc / tp:.2f}x   "
      "(errors identical)")
