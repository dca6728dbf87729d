"""Sharding heavy commands across processes and machines with PyTorch's own engine (``torchrun``).

``python -m analysis ...`` runs in one process, as always. Started by ``torchrun --nproc_per_node N -m analysis
...`` (``WORLD_SIZE`` > 1 in the environment), the same command splits its independent work across the ranks:
rank r takes items r, r + N, r + 2N, ... of a fixed list (grid points, deletion trials, models x analyses),
every rank its own device (``cuda:LOCAL_RANK`` on GPUs, the CPU otherwise), the results are gathered on rank 0
in the list's order, and rank 0 writes the same files a single process writes. Backends: NCCL on GPUs, gloo
on CPUs. Every collective has a timeout; a rank whose work raised reports it to the others, and every rank
then stops with one sentence naming the rank and its error, instead of hanging.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

TIMEOUT_S = int(os.environ.get("RESLENS_DIST_TIMEOUT", "1800"))


class RankFailed(RuntimeError):
    """Another rank (or this one) failed; the message says which and why."""


@dataclass(frozen=True)
class World:
    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1

    @property
    def main(self) -> bool:
        return self.rank == 0

    def device(self, requested: str | None = None) -> torch.device:
        """This rank's device: the requested one, else cuda:LOCAL_RANK when there are GPUs, else the CPU."""
        if requested:
            dev = torch.device(requested)
            if dev.type == "cuda" and dev.index is None and self.distributed:
                dev = torch.device("cuda", self.local_rank % max(1, torch.cuda.device_count()))
            return dev
        if torch.cuda.is_available():
            return torch.device("cuda", self.local_rank % torch.cuda.device_count())
        return torch.device("cpu")

    def shard(self, items: Sequence) -> list[tuple[int, Any]]:
        """(index, item) pairs of this rank's share, round robin."""
        return [(i, it) for i, it in enumerate(items) if i % self.size == self.rank]


_WORLD = World()


def init(device: str | None = None) -> World:
    """Join the process group when started by torchrun; a no-op in a single process."""
    global _WORLD
    size = int(os.environ.get("WORLD_SIZE", "1"))
    if size <= 1:
        _WORLD = World()
        return _WORLD
    rank, local = int(os.environ.get("RANK", "0")), int(os.environ.get("LOCAL_RANK", "0"))
    world = World(rank=rank, size=size, local_rank=local)
    use_cuda = world.device(device).type == "cuda"
    if use_cuda:
        torch.cuda.set_device(world.device(device))
    if not dist.is_initialized():
        dist.init_process_group(backend_for(use_cuda), timeout=timedelta(seconds=TIMEOUT_S))
    _WORLD = world
    return world


def backend_for(use_cuda: bool) -> str:
    """NCCL when every local rank has a GPU of its own; gloo on CPUs, and where ranks share a GPU (NCCL
    refuses two ranks on one device)."""
    local = int(os.environ.get("LOCAL_WORLD_SIZE", os.environ.get("WORLD_SIZE", "1")))
    return "nccl" if use_cuda and torch.cuda.device_count() >= local else "gloo"


def world() -> World:
    return _WORLD


def finish() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def run_sharded(items: Sequence, work: Callable[[int, Any], Any], w: World | None = None) -> list | None:
    """Run ``work(index, item)`` on this rank's share of ``items``; on rank 0 return every result in the
    items' order (None on the other ranks). A failure on any rank becomes :class:`RankFailed` on all of them."""
    w = w or _WORLD
    mine, error = [], None
    try:
        for i, it in w.shard(items):
            mine.append((i, work(i, it)))
    except Exception as e:  # noqa: BLE001 - reported to every rank below, then raised
        error = f"{e.__class__.__name__}: {str(e).splitlines()[0][:200] if str(e) else ''}"
        if not w.distributed:
            raise
    if not w.distributed:
        return [r for _, r in sorted(mine, key=lambda t: t[0])]
    gathered: list = [None] * w.size
    try:
        dist.all_gather_object(gathered, (w.rank, error, mine if error is None else []))
    except RuntimeError as e:  # a rank that died does not answer before the timeout
        raise RankFailed(f"rank {w.rank}: a rank did not answer within {TIMEOUT_S} s ({str(e).splitlines()[0][:120]})") from None
    failed = [(r, err) for r, err, _ in gathered if err is not None]
    if failed:
        r, err = failed[0]
        raise RankFailed(f"rank {r} of {w.size} failed: {err}")
    if not w.main:
        return None
    allres = [pair for _, _, part in gathered for pair in part]
    return [r for _, r in sorted(allres, key=lambda t: t[0])]


class SweepStore:
    """Finished items of a long sweep, kept on disk so that a rerun of the same command skips them: each
    rank appends one JSON line per finished item to ``<dir>/.sweep-<key>/rank<r>.jsonl``; a Ctrl-C or a lost
    node loses only what was in flight. ``key`` names the sweep's configuration (change any input, get a new
    store)."""

    def __init__(self, directory, key: str, w: World | None = None) -> None:
        from pathlib import Path

        self.w = w or _WORLD
        self.dir = Path(directory) / f".sweep-{key}"
        self.dir.mkdir(parents=True, exist_ok=True)
        self.path = self.dir / f"rank{self.w.rank}.jsonl"

    def done(self) -> dict[int, Any]:
        import json

        out: dict[int, Any] = {}
        for p in sorted(self.dir.glob("rank*.jsonl")):
            for line in p.read_text().splitlines():
                try:
                    rec = json.loads(line)
                except json.JSONDecodeError:  # a line cut short by an interruption
                    continue
                out[int(rec["i"])] = rec["r"]
        return out

    def add(self, index: int, result: Any) -> None:
        import json

        with open(self.path, "a") as f:
            f.write(json.dumps({"i": index, "r": result}) + "\n")
            f.flush()
            os.fsync(f.fileno())


def run_sweep(items: Sequence, work: Callable[[int, Any], Any], store: SweepStore | None = None,
              w: World | None = None) -> tuple[list | None, int]:
    """:func:`run_sharded` with finished items read from (and new ones written to) ``store``; returns
    (results in order on rank 0, how many items were skipped as already done)."""
    w = w or _WORLD
    done = store.done() if store is not None else {}

    def one(i: int, it: Any) -> Any:
        if i in done:
            return done[i]
        r = work(i, it)
        if store is not None:
            store.add(i, r)
        return r

    return run_sharded(items, one, w), len(done)
