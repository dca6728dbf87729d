"""Would a smaller default keep a page's numbers? Each heavy page's headline numbers over several seeds, at the
declared default and at a smaller candidate, side by side in one run, with the time each setting took.

    RESLENS_DATA=... python benchmarks/default_spread.py [--seeds 5] [--only gradients,deletion,depth]

Issue 23 allows a smaller default only where the page's numbers stay stable. A seed here draws the test sample (and
the training sample of the depth analyses, the deletion draws, the fresh initialisation), as the sidebar's seed does,
so the spread over seeds is what a user who changes the seed sees. Printed per quantity: mean, standard deviation and
range over the seeds, and how many seeds agree with the majority on what the page says of it (for the gradients,
whether the gradient grows on its way to the input: first block over last above 1).

- ``gradients`` (Gradient flow, Identity mappings): ``images`` 256 (default) against 128; the trained nets (at
  initialisation the spread comes from the fresh weights, whatever the number of images).
- ``deletion`` (Block deletion): the sidebar's 500 test images against 250 for one-block deletion (median rise of
  the error over resnet56's non-downsampling blocks); 5 (default) against 3 draws per k for k random deletions
  (the least-squares slope over k = 0-6, points per deleted block).
- ``depth`` (Depth): ``train_images`` 2,000 (default) against 1,000 for the linear probe (error at the last block)
  and input recovery (R² from the stem's output).
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # run as a script from anywhere

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

from analysis.engine.report import compute  # noqa: E402

NETS = ("plain20", "plain56", "resnet20", "resnet56")


def run(models, samples: int, seed: int, only: list[str], params: dict) -> tuple[dict[str, pd.DataFrame], float]:
    t = time.perf_counter()
    tables, _ = compute(list(models), samples=samples, seed=seed, only=only, params=params)
    return tables, time.perf_counter() - t


def gradients(seed: int, images: int) -> tuple[dict[str, float], float]:
    t, secs = run(NETS, 500, seed, ["gradients"], {"gradients": {"images": images, "states": ("trained",),
                                                                 "lambdas": (), "weight_grads": False}})
    s = t["gradient_summary"].set_index("model")["first_over_last"]
    return {f"{m} trained: first block / last block": float(s[m]) for m in NETS}, secs


def deletion_single(seed: int, samples: int) -> tuple[dict[str, float], float]:
    t, secs = run(["resnet56"], samples, seed, ["deletion_single"], {})
    d = t["deletion_single"]
    return {"resnet56: median rise of the error, one block deleted (points)":
            float(d.loc[~d["downsample"], "delta_error_pct"].median())}, secs


def deletion_random(seed: int, trials: int) -> tuple[dict[str, float], float]:
    t, secs = run(["resnet56"], 500, seed, ["deletion_random"],
                  {"deletion_random": {"ks": tuple(range(7)), "trials": trials}})
    s = t["deletion_random_summary"].sort_values("k")
    k, e = s["k"].to_numpy(float), s["mean_error_pct"].to_numpy(float)
    slope = float(((k - k.mean()) * (e - e.mean())).sum() / ((k - k.mean()) ** 2).sum())
    return {"resnet56: error rise per deleted block, k = 0-6 (points)": slope}, secs


def depth(seed: int, train_images: int) -> tuple[dict[str, float], float]:
    p = {"train_images": train_images}
    t, secs = run(["resnet56"], 500, seed, ["readout", "recovery"], {"readout": p, "recovery": p})
    r, rc = t["readout"], t["input_recovery"]
    probe = r[(r["readout"] == "probe")].sort_values("point_index")["error_pct"].iloc[-1]
    return {"resnet56: linear probe's error at the last block (%)": float(probe),
            "resnet56: input recovery R² from the stem's output": float(rc.sort_values("point_index")["r2"].iloc[0])}, secs


STUDIES = {  # name: [(function, default value, candidate value, what is varied)]
    "gradients": [(gradients, 256, 128, "gradients.images")],
    "deletion": [(deletion_single, 500, 250, "test images"), (deletion_random, 5, 3, "deletion_random.trials")],
    "depth": [(depth, 2000, 1000, "train_images")],
}


def agreement(values: list[float], quantity: str) -> str:
    """How many seeds say what the majority says: for a gradient ratio, grows (above 1) or shrinks."""
    if "first block / last block" not in quantity:
        return ""
    grows = sum(v > 1 for v in values)
    return f"{max(grows, len(values) - grows)}/{len(values)} say {'grows' if grows * 2 >= len(values) else 'shrinks'}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--only", default=",".join(STUDIES))
    a = ap.parse_args()
    if not os.environ.get("RESLENS_DATA"):
        print("note: RESLENS_DATA is not set; the data are looked for where the library looks by default")
    lines = ["| quantity | setting | mean | std over seeds | range | agreement | s per run |", "|---|---|---|---|---|---|---|"]
    for study in a.only.split(","):
        for fn, default, candidate, what in STUDIES[study]:
            per: dict[tuple[str, int], list[float]] = {}
            secs: dict[int, list[float]] = {default: [], candidate: []}
            for seed in range(a.seeds):
                for value in (default, candidate):  # side by side, seed by seed: the same machine load
                    got, s = fn(seed, value)
                    secs[value].append(s)
                    for q, v in got.items():
                        per.setdefault((q, value), []).append(v)
            for (q, value), vals in per.items():
                v = np.array(vals)
                tag = f"{what} = {value}" + (" (default)" if value == default else "")
                lines.append(f"| {q} | {tag} | {v.mean():.3g} | {v.std(ddof=1):.2g} | {v.min():.3g} to {v.max():.3g} | "
                             f"{agreement(vals, q)} | {np.median(secs[value]):.1f} |")
            print("\n".join(lines[-len(per):]), flush=True)
    print("\n" + "\n".join(lines))


if __name__ == "__main__":
    main()
