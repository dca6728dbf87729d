"""The commands of ``python -m analysis``: each takes the parsed arguments and returns an exit status."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

def _cmd_train(a: argparse.Namespace) -> int:
    from ..core.train import train

    names = [n.strip() for n in a.names.split(",") if n.strip()]
    from ..core.arch import parse_name

    for n in names:
        parse_name(n)
    cards = train(names, epochs=a.epochs, device=a.device, data=a.data, seed=a.seed, out=Path(a.out),
                  schedule_kind=a.schedule, lr=a.lr, batch=a.batch, time_limit=a.time_limit,
                  graphs=not a.no_graphs, stop_after_epoch=a.stop_after_epoch,
                  finish_file=a.finish_file)
    return 0 if cards else 3  # 3: paused with a resume point


def _cmd_models(a: argparse.Namespace) -> int:
    from ..core.zoo import PRETRAINED, zoo_table

    root = Path(a.root) if a.root else PRETRAINED
    t = zoo_table(root=root)
    if t.empty:
        print(f"no checkpoints in {root}: train one with `python -m analysis train resnet20`")
        return 1
    from ..analyses.variants import catalogue

    missing = [n for n in catalogue() if n not in set(t["model"])]
    width = max(10, *(len(n) for n in list(t["model"]) + missing))
    head = (f"{'name':<{width}} {'depth':>5} {'residual':>8} {'unit':<15} {'shortcut':<9} {'params':>9} "
            f"{'train err %':>11} {'test err %':>10} {'iterations':>10} {'epochs':>6}  trained on")
    print(head)
    print("-" * len(head))

    def num(v, fmt: str) -> str:
        return "-" if v is None or pd.isna(v) else format(v, fmt)

    for r in t.itertuples():
        note = "  (stopped early)" if r.stopped_early else ""
        print(f"{r.model:<{width}} {r.depth:>5} {str(r.residual).lower():>8} {r.unit:<15} {r.shortcut:<9} "
              f"{num(r.params, ','):>9} {num(r.train_error_pct, '.2f'):>11} {num(r.test_error_pct, '.2f'):>10} "
              f"{num(r.iterations, ',.0f'):>10} {num(r.epochs, 'g'):>6}  {r.trained_on}{note}")
    print("\nErrors measured on the JPEG (quality 75) copy of CIFAR-10; not comparable to published numbers.")
    if missing:
        print("\nNot trained yet (named by the papers' comparisons; a full schedule wants a GPU):")
        for n in missing:
            print(f"{n:<{width}} not trained: python -m analysis train {n}")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    import torch

    from ..core import data as D
    from ..core.evaluate import evaluate_error
    from ..core.zoo import load_pretrained

    dev = torch.device(a.device) if a.device else None
    model = load_pretrained(a.name, device=dev)
    dev = next(model.parameters()).device
    test = D.load_split("test", a.data, download=True, progress=True)
    idx = D.sample_indices(len(test), a.samples, a.seed)
    err = evaluate_error(model, test.images[idx], test.labels[idx], device=dev, bf16=not a.fp32)
    print(f"{a.name}: {err:.2f} % error on {len(idx):,} test images"
          + ("" if len(idx) == len(test) else f" (random subset, seed {a.seed})"))
    if test.note:
        print(f"note: {test.note}", file=sys.stderr)
    return 0


def parse_params(items: list[str] | None) -> dict[str, dict]:
    """``["deletion_random.trials=10", "landscape.dims=(1,)"]`` -> {"deletion_random": {"trials": 10}, ...}."""
    import ast

    out: dict[str, dict] = {}
    for item in items or []:
        key, sep, value = item.partition("=")
        analysis, dot, name = key.partition(".")
        if not sep or not dot:
            raise ValueError(f"--param {item!r}: write ANALYSIS.NAME=VALUE, e.g. deletion_random.trials=10")
        try:
            v = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            v = value
        out.setdefault(analysis.strip(), {})[name.strip()] = v
    return out


def _cmd_report(a: argparse.Namespace) -> int:
    from ..engine.registry import get
    from ..engine.report import run_report

    names = [n.strip() for n in a.models.split(",") if n.strip()]
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    params = parse_params(a.param)
    for name, ps in params.items():
        get(name).params(**ps)  # unknown analyses or parameters: one sentence, before any work
    run_report(names, samples=a.samples, out=Path(a.out), data=a.data, device=a.device, seed=a.seed, only=only,
               params=params)
    return 0


def _cmd_claims(a: argparse.Namespace) -> int:
    import time

    from ..claims import judge_all, measure_from_report, to_markdown
    from ..core.common import terminal_bar
    from ..engine.report import _versions, write_report

    names = [n.strip() for n in a.models.split(",") if n.strip()]
    t0 = time.time()
    m = measure_from_report(names, samples=a.samples, seed=a.seed, data=a.data, device=a.device,
                            heavy=not a.no_heavy, quick=a.quick)
    with terminal_bar("claims") as prog:
        table, evidence = judge_all(m, progress=prog)
    out = Path(a.out)
    tables = {"claims": table, **{f"claim_{cid:02d}_evidence": ev for cid, ev in evidence.items() if len(ev)}}
    manifest = {"command": a.command_line, "models": names, "samples": a.samples, "seed": a.seed, "heavy": not a.no_heavy, "quick": a.quick,
                "device": str(m.model(names[0]).fc.weight.device) if names else None, "versions": _versions(),
                "verdicts": dict(zip(table["id"].astype(str), table["verdict"])),
                "date": time.strftime("%Y-%m-%d", time.gmtime()),
                "total_wall_time_s": round(time.time() - t0, 1)}
    write_report(tables, manifest, out, documents={"claims.md": to_markdown(table)})  # all or nothing
    for r in table.itertuples():
        print(f"{r.id:>2}. {r.claim}: {r.verdict}")
    print(f"-> {out / 'claims.md'}, {out / 'claims.csv'}")
    return 0


def _cmd_import(a: argparse.Namespace) -> int:
    from ..core.zoo import IMPORTED, import_checkpoint

    path = Path(a.file)
    if not path.is_file():
        print(f"error: no file {path}", file=sys.stderr)
        return 2
    residual = True if a.residual else (False if a.plain else None)
    card = import_checkpoint(path.read_bytes(), path.name, a.name, residual=residual, normalization=a.normalization,
                             samples=a.samples, data_root=a.data, device=a.device, out=Path(a.out) if a.out else None)
    info = card["info"]
    print(f"{a.name}: {card['arch']} ({info['depth']} layers, {'residual' if info['residual'] else 'plain'} decided by "
          f"{info['residual_source']}), layout {info['layout']}, normalisation {info['normalization']} "
          f"({info['normalization_source']}), {card['params']:,} parameters")
    for note in info["notes"]:
        print(f"  note: {note}")
    print(f"  {card['test_error_pct']:.2f} % error on {card['test_images']:,} test images")
    print(f"  -> {(Path(a.out) if a.out else IMPORTED) / (a.name + '.safetensors')} (+ .json); "
          "it now works in every command and on every page")
    if card.get("warning"):
        print(f"warning: {card['warning']}", file=sys.stderr)
    return 0


def _cmd_construct(a: argparse.Namespace) -> int:
    from ..core.zoo import IMPORTED, construct_model

    card = construct_model(a.source, a.depth, a.name, out=Path(a.out) if a.out else None, samples=a.samples,
                           train_samples=a.train_samples, data_root=a.data, device=a.device, progress=True)
    c = card["constructed"]
    print(f"{a.name}: {card['arch']} = {a.source} ({c['source_depth']} layers) + {len(c['new_blocks'])} identity blocks "
          f"({', '.join(c['new_blocks'][:3])}{', ...' if len(c['new_blocks']) > 3 else ''})")
    print(f"  test error {card['test_error_pct']:.2f} % (source {c['source_test_error_pct']:.2f} %) on "
          f"{card['test_images']:,} images; training error {card['train_error_pct']:.2f} % (source "
          f"{c['source_train_error_pct']:.2f} %) on {card['train_images']:,} (float32)")
    print(f"  -> {(Path(a.out) if a.out else IMPORTED) / (a.name + '.safetensors')} (+ .json)")
    return 0


def _sweep_command(a: argparse.Namespace, csv: str, noun: str, sweep) -> int:
    """Run ``sweep(names, out)`` (one process, or this rank's share under torchrun); rank 0 writes ``csv``."""
    import time

    from ..engine import distributed as dd

    out = Path(a.out)
    t0 = time.time()
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    df, skipped = sweep(names, out if a.resume else None)
    if dd.world().main:
        out.mkdir(parents=True, exist_ok=True)
        df.to_csv(out / csv, index=False)
        print(f"{len(df)} {noun} ({skipped} finished by an earlier run) on {dd.world().size} process(es) in "
              f"{time.time() - t0:.1f} s -> {out / csv}")
    return 0


def _cmd_landscape(a: argparse.Namespace) -> int:
    from .sweeps import landscape_sweep

    return _sweep_command(a, "landscape.csv", "grid points", lambda names, out: landscape_sweep(
        names, a.steps, radius=a.radius, dims=a.dims, samples=a.samples, seed=a.seed, data=a.data, device=a.device,
        out=out, points_per_pass=a.points_per_pass, bf16=not a.fp32))


def _cmd_deletion(a: argparse.Namespace) -> int:
    from .sweeps import deletion_sweep

    from ..engine.registry import get

    declared = get("deletion_random").defaults
    ks = [int(k) for k in a.ks.split(",") if k.strip()] if a.ks else list(declared["ks"])
    trials = a.trials or declared["trials"]
    return _sweep_command(a, "deletion_random.csv", "trials", lambda names, out: deletion_sweep(
        names, ks, trials, samples=a.samples, seed=a.seed, data=a.data, device=a.device, out=out))


def _cmd_curvature(a: argparse.Namespace) -> int:
    """The Hessian analysis with every product split across the ranks by images (data parallel)."""
    import time

    import pandas as pd

    from ..engine import distributed as dd
    from ..core.common import eval_sample, terminal_bar
    from ..analyses.hessian import hessian_analysis
    from ..engine.registry import get
    from ..core.zoo import load_pretrained

    w = dd.world()
    dev = w.device(a.device)
    given = {"images": a.images, "top_k": a.top_k, "max_iter": a.max_iter, "tol": a.tol, "trace_iter": a.trace_iter,
             "lanczos_steps": a.lanczos_steps, "method": a.method, "eigen": a.eigen}
    p = get("hessian").params(**{k: v for k, v in given.items() if v is not None})
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    t0 = time.time()
    batch = eval_sample(p["images"], a.seed, dev, a.data)
    tables, dens = [], []
    for n in names:
        with terminal_bar(f"curvature of {n}", enabled=w.main) as prog:
            df, de, _ = hessian_analysis(load_pretrained(n, device=dev), batch, n, top_k=p["top_k"],
                                         max_iter=p["max_iter"], tol=p["tol"], trace_iter=p["trace_iter"],
                                         density_runs=p["density_runs"], lanczos_steps=p["lanczos_steps"],
                                         method=p["method"], seed=a.seed, progress=prog, data_parallel=True,
                                         eigen=p["eigen"])
        tables.append(df)
        dens.append(de)
    if w.main:
        out = Path(a.out)
        out.mkdir(parents=True, exist_ok=True)
        pd.concat(tables, ignore_index=True).to_csv(out / "hessian.csv", index=False)
        pd.concat(dens, ignore_index=True).to_csv(out / "hessian_density.csv", index=False)
        print(f"{len(names)} model(s), {p['images']} images, each Hessian-vector product split across {w.size} "
              f"process(es), {time.time() - t0:.1f} s -> {out / 'hessian.csv'}, {out / 'hessian_density.csv'}")
    return 0


def _cmd_analyses(a: argparse.Namespace) -> int:
    from ..engine.registry import load_all

    for name, an in load_all().items():
        print(f"{name}: {an.title}")
        print(f"    tables: {', '.join(t.name for t in an.tables)}; scope: {an.scope}"
              + ("; residual nets only" if an.residual_only else "") + ("" if an.needs_data else "; no data needed"))
        if an.defaults:
            print("    parameters: " + ", ".join(f"{k}={v!r}" for k, v in an.defaults.items() if not k.startswith("_")))
    return 0
