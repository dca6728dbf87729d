"""``python -m analysis report``: every analysis as CSV, plus manifest.json, without the UI."""

from __future__ import annotations

import json
import platform
import time
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import torch

from . import data as D
from .attributions import METHODS, attribute_image, conductance_per_block
from .common import random_sample, eval_sample
from .curves import training_curves
from .deletion import PrefixCache, delete_random, delete_single, deletable_blocks, path_gradients, reorder
from .gradients import LAMBDAS, gradient_flow, lambda_sweep
from .landscape import grid, landscape
from .responses import compare_responses, responses
from .zoo import default_device, fresh_model, load_pretrained

ANALYSES = ("responses", "gradients", "deletion", "paths", "attributions", "landscape", "training", "variants")
NO_DATA = ("training", "variants")  # read from the model cards


@dataclass
class ReportConfig:
    samples: int = 1000
    seed: int = 0
    grad_samples: int = 256
    deletion_ks: tuple[int, ...] = (0, 2, 4, 6, 8, 10, 12, 14, 16, 18, 20)
    deletion_trials: int = 5
    reorder_trials: int = 10
    path_samples: int = 10
    path_batch: int = 16
    attr_images: int = 4
    landscape_samples: int = 256
    landscape_1d_steps: int = 21
    landscape_2d_steps: int = 7
    lambdas: tuple[float, ...] = LAMBDAS
    extra: dict = field(default_factory=dict)


def _versions() -> dict[str, str]:
    import importlib.metadata as md

    out = {"python": platform.python_version()}
    for p in ("torch", "torchvision", "captum", "pandas", "numpy", "safetensors", "streamlit"):
        try:
            out[p] = md.version(p)
        except md.PackageNotFoundError:
            pass
    return out


def compute(names: list[str], cfg: ReportConfig, data=None, device=None, only=None, progress=None,
            models: dict | None = None) -> tuple[dict[str, pd.DataFrame], dict]:
    """Run the analyses; returns ({csv name: DataFrame}, manifest). ``models`` may supply loaded models
    by name (e.g. an uploaded checkpoint); the rest come from the zoo."""
    only = list(only or ANALYSES)
    bad = [a for a in only if a not in ANALYSES]
    if bad:
        raise ValueError(f"unknown analyses {bad}; choose from {', '.join(ANALYSES)}")
    dev = torch.device(device) if device else default_device()
    loaded = {n: (models or {}).get(n) or load_pretrained(n, device=dev) for n in names}
    needs_data = [a for a in only if a not in NO_DATA]
    batch = eval_sample(cfg.samples, cfg.seed, dev, data) if needs_data else None
    tables: dict[str, list[pd.DataFrame]] = {}
    timings: dict[str, float] = {}
    tick = progress or (lambda frac, msg: None)
    steps = [(a, n) for a in only for n in (names if a not in NO_DATA else ["all"])]

    def add(key: str, df: pd.DataFrame) -> None:
        tables.setdefault(key, []).append(df)

    for si, (a, n) in enumerate(steps):
        t0 = time.time()
        sub = lambda f, msg, si=si: tick((si + f) / len(steps), msg)  # noqa: E731
        m = loaded.get(n)
        if a == "responses":
            r, q = responses(m, batch, n, progress=sub)
            add("responses", r)
            add("residual_ratio", q)
        elif a == "gradients":
            gb = eval_sample(min(cfg.grad_samples, cfg.samples), cfg.seed, dev, data)
            add("gradients", gradient_flow(m, gb, n, "trained", progress=sub))
            init = fresh_model(m.name, cfg.seed, dev)
            add("gradients", gradient_flow(init, gb, n, "init"))
            if m.residual:
                add("gradients", lambda_sweep(init, gb, n, cfg.lambdas))
        elif a == "deletion":
            cache = PrefixCache(m, batch)
            add("deletion_single", delete_single(m, batch, n, cache=cache, progress=sub))
            ks = [k for k in cfg.deletion_ks if k <= len(deletable_blocks(m))]
            add("deletion_random", delete_random(m, batch, n, ks, cfg.deletion_trials, cfg.seed, cache=cache))
            add("reorder", reorder(m, batch, n, cfg.reorder_trials, cfg.seed, cache=cache))
            del cache
        elif a == "paths":
            if m.residual:
                add("paths", path_gradients(m, batch, n, cfg.path_samples, cfg.path_batch, cfg.seed, progress=sub))
        elif a == "attributions":
            split = D.load_split("test", data)
            idx = D.sample_indices(len(split), cfg.attr_images, cfg.seed + 1)
            for j, i in enumerate(idx.tolist()):
                x = D.normalize(split.images[i:i + 1])
                res = attribute_image(m, x, n, f"test/{i}", int(split.labels[i]), METHODS, seed=cfg.seed,
                                      gradcam=False, progress=lambda f, msg, j=j: sub((j + f) / (len(idx) + 1), msg))
                add("attributions", res.frame())
            i0 = idx[0].item()
            c = conductance_per_block(m, D.normalize(split.images[i0:i0 + 1]), n)
            c.insert(1, "image", f"test/{i0}")
            add("conductance", c)
        elif a == "landscape":
            lb = eval_sample(min(cfg.landscape_samples, cfg.samples), cfg.seed, dev, data)
            add("landscape", landscape(m, lb, n, grid(cfg.landscape_1d_steps), None, cfg.seed, progress=sub))
            g2 = grid(cfg.landscape_2d_steps)
            add("landscape", landscape(m, lb, n, g2, g2, cfg.seed))
        elif a == "training":
            from .zoo import available

            add("training", training_curves([x for x in names if x in available()]))
        elif a == "variants":
            from .variants import compare_to_identity, variant_table

            vt = variant_table(names)
            add("variants", vt)
            add("variant_comparison", compare_to_identity(vt))
        timings[f"{a}:{n}"] = round(time.time() - t0, 2)
        tick((si + 1) / len(steps), f"{a} done for {n}")
    out = {k: pd.concat(v, ignore_index=True) for k, v in tables.items()}
    if "responses" in out:
        out["response_comparison"] = compare_responses(out["responses"], out["residual_ratio"])
    manifest = {
        "models": names, "analyses": only, "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else platform.processor() or platform.machine(),
        "seed": cfg.seed, "samples": cfg.samples, "config": {k: v for k, v in cfg.__dict__.items()},
        "data_source": batch.source if batch is not None else None,
        "data_root": str(D.resolve_root(data)), "versions": _versions(), "wall_time_s": timings,
        "files": {k: f"{k}.csv" for k in out},
    }
    return out, manifest


def write_report(tables: dict[str, pd.DataFrame], manifest: dict, out: Path) -> list[Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    for k, df in tables.items():
        p = out / f"{k}.csv"
        df.to_csv(p, index=False)
        paths.append(p)
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1, default=str) + "\n")
    return paths + [out / "manifest.json"]


def run_report(names: list[str], samples: int, out: Path, data=None, device=None, seed: int = 0,
               only=None, cfg: ReportConfig | None = None) -> list[Path]:
    from tqdm import tqdm

    cfg = cfg or ReportConfig(samples=samples, seed=seed)
    t0 = time.time()
    bar = tqdm(total=1000, desc="report", unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def prog(frac: float, msg: str) -> None:
        bar.n = int(1000 * min(1.0, frac))
        bar.set_postfix_str(msg[:60])
        bar.refresh()

    try:
        tables, manifest = compute(names, cfg, data=data, device=device, only=only, progress=prog)
    finally:
        bar.close()
    manifest["total_wall_time_s"] = round(time.time() - t0, 1)
    paths = write_report(tables, manifest, out)
    for p in paths:
        print(p)
    return paths
