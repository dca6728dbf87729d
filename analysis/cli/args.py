"""The CLI's arguments, each checked by its type before any work starts, and the options most commands share
(one parent parser)."""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

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
    from ..core.zoo import available

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
    from ..core.arch import parse_name

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
