"""``python -m analysis ...``: the headless CLI (train, models, evaluate, report)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path


def _cmd_train(a: argparse.Namespace) -> int:
    from .train import train

    names = [n.strip() for n in a.names.split(",") if n.strip()]
    from .models import parse_name

    for n in names:
        parse_name(n)
    cards = train(names, epochs=a.epochs, device=a.device, data=a.data, seed=a.seed, out=Path(a.out),
                  schedule_kind=a.schedule, lr=a.lr, batch=a.batch, time_limit=a.time_limit,
                  graphs=not a.no_graphs, stop_after_epoch=a.stop_after_epoch,
                  finish_file=a.finish_file)
    return 0 if cards else 3  # 3: paused with a resume point


def _cmd_models(a: argparse.Namespace) -> int:
    from .zoo import PRETRAINED, available, load_card

    root = Path(a.root) if a.root else PRETRAINED
    names = available(root)
    if not names:
        print(f"no checkpoints in {root}: train one with `python -m analysis train resnet20`")
        return 1
    from .models import parse_name

    width = max(10, *(len(n) for n in names))
    head = (f"{'name':<{width}} {'depth':>5} {'residual':>8} {'unit':<15} {'shortcut':<9} {'params':>9} "
            f"{'train err %':>11} {'test err %':>10} {'iterations':>10} {'epochs':>6}  device")
    print(head)
    print("-" * len(head))
    for n in names:
        c = load_card(n, root)
        a = parse_name(n)
        note = "  (stopped early)" if c.get("stopped_early") else ""
        print(f"{n:<{width}} {c['depth']:>5} {str(c['residual']).lower():>8} {a.unit:<15} "
              f"{a.shortcut_token if a.residual else 'none':<9} {c['params']:>9,} "
              f"{c['train_error_pct']:>11.2f} {c['test_error_pct']:>10.2f} {c['schedule']['iterations']:>10,} "
              f"{c['schedule']['epochs']:>6}  {c['device']}{note}")
    print("\nErrors measured on the JPEG (quality 75) copy of CIFAR-10; not comparable to published numbers.")
    return 0


def _cmd_evaluate(a: argparse.Namespace) -> int:
    import torch

    from . import data as D
    from .train import evaluate_error
    from .zoo import load_pretrained

    dev = torch.device(a.device) if a.device else None
    model = load_pretrained(a.name, device=dev)
    dev = next(model.parameters()).device
    test = D.load_split("test", a.data, download=True, progress=True)
    idx = D.sample_indices(len(test), a.samples, a.seed)
    err = evaluate_error(model, test.images[idx], test.labels[idx], dev, bf16=not a.fp32)
    print(f"{a.name}: {err:.2f} % error on {len(idx)} test images"
          + ("" if len(idx) == len(test) else f" (random subset, seed {a.seed})"))
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
    from .registry import get
    from .report import run_report

    names = [n.strip() for n in a.models.split(",") if n.strip()]
    only = [s.strip() for s in a.only.split(",")] if a.only else None
    params = parse_params(a.param)
    for name, ps in params.items():
        get(name).params(**ps)  # unknown analyses or parameters: one sentence, before any work
    run_report(names, samples=a.samples, out=Path(a.out), data=a.data, device=a.device, seed=a.seed, only=only,
               params=params)
    return 0


def _cmd_analyses(a: argparse.Namespace) -> int:
    from .registry import load_all

    for name, an in load_all().items():
        print(f"{name}: {an.title}")
        print(f"    tables: {', '.join(t.name for t in an.tables)}; scope: {an.scope}"
              + ("; residual nets only" if an.residual_only else "") + ("" if an.needs_data else "; no data needed"))
        if an.defaults:
            print("    parameters: " + ", ".join(f"{k}={v!r}" for k, v in an.defaults.items() if not k.startswith("_")))
    return 0


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description="ResLens: why residual networks train")
    sub = p.add_subparsers(dest="cmd", required=True)

    t = sub.add_parser("train", help="train one or more nets (comma-separated) and write pretrained/NAME.*")
    t.add_argument("names", help="e.g. resnet20 or plain20,resnet20 (trained together on one device)")
    t.add_argument("--epochs", type=float, default=None, help="shorter schedule (default: the paper's 64k iterations)")
    t.add_argument("--schedule", choices=["step", "onecycle"], default="step")
    t.add_argument("--lr", type=float, default=0.1)
    t.add_argument("--batch", type=int, default=128)
    t.add_argument("--device", default=None, help="cuda, cuda:1 or cpu (default: CUDA when present)")
    t.add_argument("--data", default=None, help="CIFAR-10 root (default: $RESLENS_DATA, else ./data)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--out", default=str(Path(__file__).resolve().parent.parent / "pretrained"))
    t.add_argument("--time-limit", type=float, default=None, help="seconds; pause with a resume point before it")
    t.add_argument("--no-graphs", action="store_true", help="on CUDA, run eagerly instead of replaying CUDA graphs")
    t.add_argument("--stop-after-epoch", type=int, default=None,
                   help="end the run after this epoch and write the model (the card records the early stop)")
    t.add_argument("--finish-file", default=None,
                   help="end the run after the epoch in which this file appears (the card records the early stop)")
    t.set_defaults(func=_cmd_train)

    m = sub.add_parser("models", help="print the zoo as a table")
    m.add_argument("--root", default=None)
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("evaluate", help="measure a shipped model's test error")
    e.add_argument("name")
    e.add_argument("--data", default=None)
    e.add_argument("--samples", type=int, default=None, help="a seeded random subset of the test split")
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default=None)
    e.add_argument("--fp32", action="store_true", help="evaluate in float32 instead of bfloat16 autocast")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("report", help="run every analysis and write one CSV each plus manifest.json")
    r.add_argument("--models", default="plain20,plain56,resnet20,resnet56,resnet110",
                   help="comma-separated zoo names, variants included (e.g. resnet56,resnet56-preact,resnet56-scale0.5)")
    r.add_argument("--samples", type=int, default=1000)
    r.add_argument("--out", required=True)
    r.add_argument("--data", default=None)
    r.add_argument("--device", default=None)
    r.add_argument("--seed", type=int, default=0)
    r.add_argument("--only", default=None, help="comma-separated analyses or groups (`python -m analysis analyses`)")
    r.add_argument("--param", action="append", default=None, metavar="ANALYSIS.NAME=VALUE",
                   help="replace a default, e.g. --param deletion_random.trials=10 (repeatable)")
    r.set_defaults(func=_cmd_report)

    an = sub.add_parser("analyses", help="list the registered analyses, their tables and parameters")
    an.set_defaults(func=_cmd_analyses)

    a = p.parse_args(argv)
    from .data import DataNotFound
    from .zoo import CheckpointError

    try:
        return a.func(a)
    except (DataNotFound, CheckpointError, ValueError, KeyError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
