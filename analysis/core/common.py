"""Helpers shared by the analyses: inputs, precision, chunking with an out-of-memory fallback."""

from __future__ import annotations

import contextlib
import copy
import math
import threading
from dataclasses import dataclass
from typing import Callable, TypeVar

import torch

from . import data as D

# The progress callback every analysis takes: (fraction done in [0, 1], a short message).
Progress = Callable[[float, str], None] | None
T = TypeVar("T")

from .stats import t975  # noqa: E402,F401  (the one t table)


def mean_ci95(values) -> tuple[float, float, float]:
    """(mean, low, high): the mean and its 95 % Student-t interval."""
    v = torch.as_tensor(list(values), dtype=torch.float64)
    m = v.mean().item()
    if len(v) < 2:
        return m, m, m
    half = t975(len(v) - 1) * v.std(unbiased=True).item() / math.sqrt(len(v))
    return m, m - half, m + half


@dataclass
class Batch:
    """A sample of images: normalised inputs and labels on one device."""

    x: torch.Tensor
    y: torch.Tensor
    indices: torch.Tensor  # positions in the split (or -1 for random inputs)
    source: str  # "test split", "random normal input", ...

    def __len__(self) -> int:
        return len(self.y)


def eval_sample(samples: int, seed: int, device: torch.device, data=None) -> Batch:
    """A seeded random subset of the CIFAR-10 test split, normalised, on ``device``."""
    split = D.load_split("test", data)
    idx = D.sample_indices(len(split), samples, seed)
    x = D.normalize(split.images[idx]).to(device)
    note = f"; {len(split.skipped)} unreadable file(s) skipped" if split.skipped else ""
    return Batch(x, split.labels[idx].to(device), idx,
                 source=f"CIFAR-10 test split ({split.source.split(':', 1)[0]}, {len(split):,} images{note})")


def random_sample(samples: int, seed: int, device: torch.device) -> Batch:
    """Standard-normal inputs with uniform random labels (for work that needs no data set)."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 3, 32, 32, generator=g)
    y = torch.randint(0, 10, (samples,), generator=g)
    return Batch(x.to(device), y.to(device), torch.full((samples,), -1), source="random N(0,1) input, random labels")


def model_device(model: torch.nn.Module) -> torch.device:
    return next(model.parameters()).device


def autocast(device: torch.device, enabled: bool = True):
    """bfloat16 autocast on conv/linear where ``enabled``; a no-op context otherwise."""
    if not enabled:
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)


def row_norms(t: torch.Tensor) -> torch.Tensor:
    """The L2 norm of each image's values (N x ... -> N), accumulated and returned in float32, in whatever memory
    format ``t`` has: the same as ``t.float().flatten(1).norm(dim=1)`` to float32 rounding, without the float32 copy
    of ``t`` that makes (a bfloat16 channels_last block output of resnet56's first stage: 2.6 against 7.6 ms for 250
    images on this CPU)."""
    return torch.linalg.vector_norm(t, dim=tuple(range(1, t.dim())), dtype=torch.float32)


def is_oom(e: BaseException) -> bool:
    return isinstance(e, torch.cuda.OutOfMemoryError) or "out of memory" in str(e).lower()


def retry_halving(fn: Callable[[int | None], T], size: int | None, min_size: int = 1, start: int = 64) -> T:
    """Call ``fn(size)``; on CUDA out-of-memory halve ``size`` and retry (None, "all at once", becomes
    ``start``). The one out-of-memory policy of the library: batches, chunks and Captum's internal batches."""
    while True:
        try:
            return fn(size)
        except RuntimeError as e:
            if not is_oom(e) or (size is not None and size <= min_size):
                raise
            torch.cuda.empty_cache()
            size = start if size is None else max(min_size, size // 2)


def chunked(fn: Callable[[slice], object], n: int, chunk: int, min_chunk: int = 1) -> list:
    """Call ``fn`` on consecutive slices of ``range(n)``; on CUDA out-of-memory halve the chunk and retry."""
    out, start = [], 0
    state = {"chunk": chunk}

    def one(c: int | None) -> object:
        state["chunk"] = c
        return fn(slice(start, min(n, start + c)))

    while start < n:
        out.append(retry_halving(one, state["chunk"], min_size=min_chunk))
        start = min(n, start + state["chunk"])
    return out


def private_copy(model: torch.nn.Module, train_bn_batch_stats: bool = False) -> torch.nn.Module:
    """A float32 copy of ``model`` that an analysis may hook, switch to train mode or change: the shared
    (cached) model is never touched. With ``train_bn_batch_stats`` the copy is in train mode and its BN
    layers use batch statistics without updating their running ones (momentum 0); only the BN layers are in train
    mode, so a dropout shortcut keeps its expectation and a measurement stays deterministic."""
    m = copy.deepcopy(model).float().eval()
    if not train_bn_batch_stats:
        return m
    for mod in m.modules():
        if isinstance(mod, torch.nn.modules.batchnorm._BatchNorm):
            mod.train()
            mod.momentum = 0.0
    return m


_GLOBAL_RNG = threading.Lock()


@contextlib.contextmanager
def seeded_global_rng(seed: int):
    """Run a block that draws from PyTorch's *global* generator (module initialisers, Captum's GradientShap)
    with that generator seeded, restored afterwards, and no other such block in between: many browser
    sessions run analyses in threads of one process, and two seeded draws must never interleave."""
    with _GLOBAL_RNG, torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def count_wrong(logits: torch.Tensor, labels: torch.Tensor) -> int:
    """How many top-1 predictions are wrong (the one definition of error used everywhere)."""
    return int((logits.argmax(1) != labels.to(logits.device)).sum().item())


def error_pct(wrong: int, total: int) -> float:
    """Top-1 error in percent, clipped to [0, 100] by construction (0 <= wrong <= total)."""
    if total <= 0:
        raise ValueError("no images to measure an error on")
    return 100.0 * wrong / total


def state_fingerprint(model: torch.nn.Module) -> dict[str, torch.Tensor]:
    """A copy of every parameter and buffer, to prove later that nothing was changed."""
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def same_state(model: torch.nn.Module, saved: dict[str, torch.Tensor]) -> bool:
    cur = model.state_dict()
    return cur.keys() == saved.keys() and all(torch.equal(cur[k], saved[k]) for k in saved)


@contextlib.contextmanager
def terminal_bar(desc: str, enabled: bool = True):
    """A tqdm bar on the terminal fed by the analyses' (fraction, message) callbacks; yields the callback
    (``None`` when disabled, e.g. on every torchrun rank but 0)."""
    if not enabled:
        yield None
        return
    from tqdm import tqdm

    bar = tqdm(total=1000, desc=desc, unit="‰", bar_format="{l_bar}{bar}| {elapsed}<{remaining} {postfix}")

    def prog(frac: float, msg: str) -> None:
        bar.n = int(1000 * min(1.0, frac))
        bar.set_postfix_str(msg[:60])
        bar.refresh()

    try:
        yield prog
    finally:
        bar.close()
