"""``python -m analysis ...``: the headless CLI (train, models, evaluate, report)."""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
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
    from .models import parse_name
    from .zoo import PRETRAINED, available, load_card

    root = Path(a.root) if a.root else PRETRAINED
    names = available(root)
    if not names:
        print(f"no checkpoints in {root}: train one with `python -m analysis train resnet20`")
        return 1
    from .zoo import arch_of

    width = max(10, *(len(n) for n in names))
    head = (f"{'name':<{width}} {'depth':>5} {'residual':>8} {'unit':<15} {'shortcut':<9} {'params':>9} "
            f"{'train err %':>11} {'test err %':>10} {'iterations':>10} {'epochs':>6}  device")
    print(head)
    print("-" * len(head))
    for n in names:
        c = load_card(n, root)
        a = arch_of(n) if root == PRETRAINED else parse_name(c.get("arch", n))
        note = "  (stopped early)" if c.get("stopped_early") else ""
        sched = c.get("schedule") or {}
        train = "-" if c.get("train_error_pct") is None else f"{c['train_error_pct']:.2f}"
        iters = "-" if sched.get("iterations") is None else f"{sched['iterations']:,}"
        where = f"imported ({a.name}, {c['imported']['layout']} layout)" if c.get("imported") else c["device"]
        print(f"{n:<{width}} {c['depth']:>5} {str(c['residual']).lower():>8} {a.unit:<15} "
              f"{a.shortcut_token if a.residual else 'none':<9} {c['params']:>9,} "
              f"{train:>11} {c['test_error_pct']:>10.2f} {iters:>10} {sched.get('epochs', '-'):>6}  {where}{note}")
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


def _cmd_claims(a: argparse.Namespace) -> int:
    import json
    import time

    from .claims import judge_all, measure_from_report, to_markdown
    from .common import terminal_bar
    from .report import _versions

    names = [n.strip() for n in a.models.split(",") if n.strip()]
    t0 = time.time()
    m = measure_from_report(names, samples=a.samples, seed=a.seed, data=a.data, device=a.device,
                            heavy=not a.no_heavy, quick=a.quick)
    with terminal_bar("claims") as prog:
        table, evidence = judge_all(m, progress=prog)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    table.to_csv(out / "claims.csv", index=False)
    (out / "claims.md").write_text(to_markdown(table))
    for cid, ev in evidence.items():
        if len(ev):
            ev.to_csv(out / f"claim_{cid:02d}_evidence.csv", index=False)
    manifest = {"models": names, "samples": a.samples, "seed": a.seed, "heavy": not a.no_heavy, "quick": a.quick,
                "device": str(m.model(names[0]).fc.weight.device) if names else None, "versions": _versions(),
                "verdicts": dict(zip(table["id"].astype(str), table["verdict"])),
                "total_wall_time_s": round(time.time() - t0, 1)}
    (out / "manifest.json").write_text(json.dumps(manifest, indent=1) + "\n")
    for r in table.itertuples():
        print(f"{r.id:>2}. {r.claim}: {r.verdict}")
    print(f"-> {out / 'claims.md'}, {out / 'claims.csv'}")
    return 0


def _cmd_import(a: argparse.Namespace) -> int:
    from .zoo import IMPORTED, import_checkpoint

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


def _sweep_command(a: argparse.Namespace, csv: str, noun: str, sweep) -> int:
    """Run ``sweep(names, out)`` (one process, or this rank's share under torchrun); rank 0 writes ``csv``."""
    import time

    from . import distributed as dd

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

    ks = [int(k) for k in a.ks.split(",") if k.strip()]
    return _sweep_command(a, "deletion_random.csv", "trials", lambda names, out: deletion_sweep(
        names, ks, a.trials, samples=a.samples, seed=a.seed, data=a.data, device=a.device, out=out))


def _cmd_curvature(a: argparse.Namespace) -> int:
    """The Hessian analysis with every product split across the ranks by images (data parallel)."""
    import time

    import pandas as pd

    from . import distributed as dd
    from .common import eval_sample, terminal_bar
    from .hessian import hessian_analysis
    from .registry import get
    from .zoo import load_pretrained

    w = dd.world()
    dev = w.device(a.device)
    p = get("hessian").params(images=a.images, top_k=a.top_k, max_iter=a.max_iter, tol=a.tol, trace_iter=a.trace_iter,
                              lanczos_steps=a.lanczos_steps, method=a.method)
    names = [n.strip() for n in a.models.split(",") if n.strip()]
    t0 = time.time()
    batch = eval_sample(p["images"], a.seed, dev, a.data)
    tables, dens = [], []
    for n in names:
        with terminal_bar(f"curvature of {n}", enabled=w.main) as prog:
            df, de, _ = hessian_analysis(load_pretrained(n, device=dev), batch, n, top_k=p["top_k"],
                                         max_iter=p["max_iter"], tol=p["tol"], trace_iter=p["trace_iter"],
                                         density_runs=p["density_runs"], lanczos_steps=p["lanczos_steps"],
                                         method=p["method"], seed=a.seed, progress=prog, data_parallel=True)
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
    from .registry import load_all

    for name, an in load_all().items():
        print(f"{name}: {an.title}")
        print(f"    tables: {', '.join(t.name for t in an.tables)}; scope: {an.scope}"
              + ("; residual nets only" if an.residual_only else "") + ("" if an.needs_data else "; no data needed"))
        if an.defaults:
            print("    parameters: " + ", ".join(f"{k}={v!r}" for k, v in an.defaults.items() if not k.startswith("_")))
    return 0


# ---------------------------------------------------------------------------- arguments, checked before any work
def _whole(v: str, least: int) -> int:
    try:
        n = int(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a whole number") from None
    if n < least:
        raise argparse.ArgumentTypeError(f"{n} is not a positive number" if least else f"{n} is negative")
    return n


def _positive_int(v: str) -> int:
    return _whole(v, 1)


def _nonneg_int(v: str) -> int:
    return _whole(v, 0)


def _positive_float(v: str) -> float:
    try:
        x = float(v)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r} is not a number") from None
    if not x > 0 or x == float("inf"):
        raise argparse.ArgumentTypeError(f"{v} is not a positive number")
    return x


def _nonneg_float(v: str) -> float:
    x = _positive_float(v) if v.strip() not in ("0", "0.0") else 0.0
    return x


def _int_list(v: str) -> str:
    try:
        ks = [int(k) for k in v.split(",") if k.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"{v!r}: write whole numbers separated by commas, e.g. 0,2,4") from None
    if not ks or any(k < 0 for k in ks):
        raise argparse.ArgumentTypeError(f"{v!r}: at least one number, none negative")
    return v


def _device(v: str) -> str:
    """cpu, cuda or cuda:N with that GPU present: one sentence otherwise (before anything is loaded)."""
    import torch

    try:
        dev = torch.device(v)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"{v!r} is not a device: use cpu, cuda or cuda:N") from None
    if dev.type == "cpu":
        return v
    if dev.type != "cuda":
        raise argparse.ArgumentTypeError(f"{v!r}: ResLens runs on cpu or cuda")
    n = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if n == 0:
        raise argparse.ArgumentTypeError(f"{v!r}: this machine has no CUDA GPU; use --device cpu")
    if dev.index is not None and dev.index >= n:
        raise argparse.ArgumentTypeError(f"{v!r}: this machine has {n} GPU(s), cuda:0 to cuda:{n - 1}")
    return v


def _out_dir(v: str) -> str:
    """A folder that exists and can be written, or can be made: checked before any work, not after it."""
    p = Path(v).expanduser()
    probe = p
    while not probe.exists():
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise argparse.ArgumentTypeError(f"{v}: {probe} is a file, not a folder")
    try:  # the one sure test: write a file there (and remove it)
        with tempfile.TemporaryFile(dir=probe):
            pass
    except OSError as e:
        raise argparse.ArgumentTypeError(f"{v}: cannot write in {probe} ({e.strerror or e.__class__.__name__})") from None
    return v


def _model_list(v: str) -> str:
    """Comma-separated names of models that exist (shipped or imported)."""
    from .zoo import available

    names = [n.strip() for n in v.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no model named")
    have = set(available())
    unknown = [n for n in names if n not in have]
    if unknown:
        raise argparse.ArgumentTypeError(f"no model {unknown[0]!r}; `python -m analysis models` lists them")
    return v


def _arch_list(v: str) -> str:
    """Comma-separated architecture names (the name grammar), for training."""
    from .models import parse_name

    names = [n.strip() for n in v.split(",") if n.strip()]
    if not names:
        raise argparse.ArgumentTypeError("no model named")
    for n in names:
        try:
            parse_name(n)
        except ValueError as e:
            raise argparse.ArgumentTypeError(str(e)) from None
    return v


def _shared(seed: bool = True, device: bool = True, data: bool = True) -> argparse.ArgumentParser:
    """The options most commands share, declared once."""
    p = argparse.ArgumentParser(add_help=False)
    if data:
        p.add_argument("--data", default=None, help="CIFAR-10 root (default: $RESLENS_DATA, else ./data)")
    if device:
        p.add_argument("--device", type=_device, default=None, help="cpu, cuda or cuda:N (default: CUDA when present)")
    if seed:
        p.add_argument("--seed", type=_nonneg_int, default=0)
    return p


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m analysis", description="ResLens: why residual networks train")
    sub = p.add_subparsers(dest="cmd", required=True)
    common = _shared()

    t = sub.add_parser("train", parents=[common], help="train one or more nets (comma-separated) and write pretrained/NAME.*")
    t.add_argument("names", type=_arch_list, help="e.g. resnet20 or plain20,resnet20 (trained together on one device)")
    t.add_argument("--epochs", type=_positive_float, default=None, help="shorter schedule (default: the paper's 64k iterations)")
    t.add_argument("--schedule", choices=["step", "onecycle"], default="step")
    t.add_argument("--lr", type=_positive_float, default=0.1)
    t.add_argument("--batch", type=_positive_int, default=128)
    t.add_argument("--out", type=_out_dir, default=str(Path(__file__).resolve().parent.parent / "pretrained"))
    t.add_argument("--time-limit", type=_nonneg_float, default=None, help="seconds; pause with a resume point before it")
    t.add_argument("--no-graphs", action="store_true", help="on CUDA, run eagerly instead of replaying CUDA graphs")
    t.add_argument("--stop-after-epoch", type=_positive_int, default=None,
                   help="end the run after this epoch and write the model (the card records the early stop)")
    t.add_argument("--finish-file", default=None,
                   help="end the run after the epoch in which this file appears (the card records the early stop)")
    t.set_defaults(func=_cmd_train)

    m = sub.add_parser("models", help="print the zoo as a table")
    m.add_argument("--root", default=None)
    m.set_defaults(func=_cmd_models)

    e = sub.add_parser("evaluate", parents=[common], help="measure a shipped model's test error")
    e.add_argument("name", type=_model_list)
    e.add_argument("--samples", type=_positive_int, default=None, help="a seeded random subset of the test split")
    e.add_argument("--fp32", action="store_true", help="evaluate in float32 instead of bfloat16 autocast")
    e.set_defaults(func=_cmd_evaluate)

    r = sub.add_parser("report", parents=[common], help="run every analysis and write one CSV each plus manifest.json")
    r.add_argument("--models", type=_model_list, default="plain20,plain56,resnet20,resnet56,resnet110",
                   help="comma-separated zoo names, variants included (e.g. resnet56,resnet56-preact,resnet56-scale0.5)")
    r.add_argument("--samples", type=_positive_int, default=1000)
    r.add_argument("--out", type=_out_dir, required=True)
    r.add_argument("--only", default=None, help="comma-separated analyses or groups (`python -m analysis analyses`)")
    r.add_argument("--param", action="append", default=None, metavar="ANALYSIS.NAME=VALUE",
                   help="replace a default, e.g. --param deletion_random.trials=10 (repeatable)")
    r.set_defaults(func=_cmd_report)

    c = sub.add_parser("claims", parents=[common], help="judge every claim of the notes by a measurement; writes claims.csv and claims.md")
    c.add_argument("--models", type=_model_list, default="plain20,plain56,plain110,resnet20,resnet56,resnet110,"
                                                          "resnet56-preact,resnet56-bnafter,resnet56b,resnet56-scale0.5,"
                                                          "resnet56-scale0.5f")
    c.add_argument("--samples", type=_positive_int, default=500)
    c.add_argument("--out", type=_out_dir, required=True)
    c.add_argument("--no-heavy", action="store_true", help="leave out the claims that take minutes (curvature)")
    c.add_argument("--quick", action="store_true", help="light settings for every measurement (a smoke run)")
    c.set_defaults(func=_cmd_claims)

    im = sub.add_parser("import", parents=[_shared(seed=False)],
                        help="convert a checkpoint (.safetensors .pt .pth .th .ckpt) into an imported model")
    im.add_argument("file")
    im.add_argument("--name", required=True)
    kind = im.add_mutually_exclusive_group()
    kind.add_argument("--residual", action="store_true", help="an option-A net with shortcuts")
    kind.add_argument("--plain", action="store_true", help="an option-A net without shortcuts")
    im.add_argument("--normalization", default=None,
                    help="the input normalisation it was trained with: cifar10, imagenet, none or 'm,m,m/s,s,s' "
                         "(default: the metadata's, else the key layout's)")
    im.add_argument("--samples", type=_positive_int, default=None, help="measure the test error on a seeded subset")
    im.add_argument("--out", type=_out_dir, default=None, help="folder (default: $RESLENS_IMPORTED, else ~/.reslens/models)")
    im.set_defaults(func=_cmd_import)

    la = sub.add_parser("landscape", parents=[common], help="a loss-landscape grid as one sweep (torchrun shards it; resumable)")
    la.add_argument("--models", type=_model_list, default="resnet56")
    la.add_argument("--steps", type=_positive_int, default=51, help="grid points per axis")
    la.add_argument("--radius", type=_positive_float, default=1.0)
    la.add_argument("--dims", type=int, choices=[1, 2], default=2)
    la.add_argument("--samples", type=_positive_int, default=10000)
    la.add_argument("--points-per-pass", type=_positive_int, default=1,
                    help="grid points evaluated together with torch.func.vmap (faster on a GPU)")
    la.add_argument("--fp32", action="store_true", help="float32 instead of bfloat16 autocast")
    la.add_argument("--out", type=_out_dir, required=True)
    la.add_argument("--no-resume", dest="resume", action="store_false",
                    help="do not keep finished points on disk (a rerun starts over)")
    la.set_defaults(func=_cmd_landscape)

    de = sub.add_parser("deletion", parents=[common], help="random block deletion, k x trials, as one sweep (torchrun shards it)")
    de.add_argument("--models", type=_model_list, default="resnet56,resnet110")
    de.add_argument("--ks", type=_int_list, default="0,2,4,6,8,10,12,14,16,18,20")
    de.add_argument("--trials", type=_positive_int, default=5)
    de.add_argument("--samples", type=_positive_int, default=1000)
    de.add_argument("--out", type=_out_dir, required=True)
    de.add_argument("--no-resume", dest="resume", action="store_false")
    de.set_defaults(func=_cmd_deletion)

    cu = sub.add_parser("curvature", parents=[common], help="Hessian eigenvalues, trace and density; torchrun splits every "
                                                             "Hessian-vector product across the ranks by images")
    cu.add_argument("--models", type=_model_list, default="plain56,resnet56")
    cu.add_argument("--images", type=_positive_int, default=1000)
    cu.add_argument("--top-k", type=_positive_int, default=1)
    cu.add_argument("--max-iter", type=_positive_int, default=20)
    cu.add_argument("--tol", type=_positive_float, default=1e-2)
    cu.add_argument("--trace-iter", type=_nonneg_int, default=20)
    cu.add_argument("--lanczos-steps", type=_nonneg_int, default=16)
    cu.add_argument("--method", choices=["func", "double_backward"], default="func")
    cu.add_argument("--out", type=_out_dir, required=True)
    cu.set_defaults(func=_cmd_curvature)

    an = sub.add_parser("analyses", help="list the registered analyses, their tables and parameters")
    an.set_defaults(func=_cmd_analyses)

    a = p.parse_args(argv)
    from . import distributed as dd
    from .data import DataNotFound
    from .zoo import CheckpointError

    w = dd.init(getattr(a, "device", None))
    try:
        return a.func(a)
    except (DataNotFound, CheckpointError, ValueError, KeyError) as e:
        msg = str(e).strip("'\"") if isinstance(e, KeyError) else str(e)
        print(f"error: {msg}" if not w.distributed else f"error (rank {w.rank}): {msg}", file=sys.stderr)
        return 2
    except dd.RankFailed as e:
        print(f"error: {e}", file=sys.stderr)
        return 3
    except KeyboardInterrupt:
        kept = " Finished items of the sweep are kept; the same command resumes." if getattr(a, "resume", False) \
            else " Training keeps its last finished epoch; the same command resumes." if a.cmd == "train" else ""
        print(f"\ninterrupted: nothing was written.{kept}", file=sys.stderr)
        return 130
    finally:
        dd.finish()


if __name__ == "__main__":
    sys.exit(main())
