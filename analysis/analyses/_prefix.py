"""The deletion sweeps' shared machinery: the net's block inputs on a sample, computed once and reused by every
deletion and reordering (:class:`PrefixCache`), on a folded bfloat16 copy of the net (:func:`inference_copy`); and
the naive full recompute they are checked against (:func:`full_error_pct`). The analyses are in
:mod:`analysis.analyses.deletion`."""

from __future__ import annotations

import threading
from typing import Iterable, Sequence

import torch

from ..core.blocks import fold_batchnorm
from ..core.fused import fuse_for_inference
from ..core.common import Batch, autocast, chunked, count_wrong, error_pct, model_device, private_copy
from ..core.models import CifarResNet


# The sweeps' errors against float32: each single-block deletion of the zoo's 16 CIFAR nets on 500 test images (seed
# 0), the fused bfloat16 copy against the model in float32: the mean absolute difference per net ranges over
# FLOAT32_GAP[0]-[1] points, the largest is FLOAT32_GAP[2] (plain110, a net at 53 % error; 1.2 on the others). The same
# without the fused convolutions: 0.07-0.27 on average, 2.0 at most.
FLOAT32_GAP = (0.05, 0.26, 2.0)


def precision_words() -> str:
    """What a chart of the sweeps says of their precision (:data:`FLOAT32_GAP`)."""
    lo, hi, top = FLOAT32_GAP
    return (f"bfloat16 (on the zoo's nets {lo:.2f}-{hi:.2f} points from float32 on average, {top:.1f} at most, in a net "
            "at 53 % error)")


class PrefixCache:
    """Block inputs of a sample, computed once (in chunks of ``chunk`` images) and reused by every variant of a sweep.
    Chunks of 500 run the sweeps 1.04x faster than 250 on this CPU (resnet56's 27 single deletions, 0.99 against
    1.03 s: ``benchmarks/deletion_prefix.py --model resnet56``), the same errors.

    With ``bf16`` (the default) the sweeps run on :func:`inference_copy`: a private copy with every BN that follows a
    conv folded into it and bfloat16 conv weights, in bfloat16 autocast with channels_last (the model passed in is
    never touched); ``bf16=False`` runs the model itself in float32, ``fold=False`` the model itself in autocast and
    ``fuse=False`` the folded copy without fused convolutions (the benchmark's comparisons)."""

    def __init__(self, model: CifarResNet, batch: Batch, chunk: int = 500, bf16: bool = True, fold: bool = True,
                 fuse: bool = True) -> None:
        self.model = inference_copy(model, fuse=fuse) if bf16 and fold else model
        self.batch, self.bf16 = batch, bf16
        self.dev = model_device(model)
        self.chunk = chunk
        self.y = batch.y.to(self.dev)
        self._chunks: list[tuple[slice, list[torch.Tensor]]] = []
        wrong = 0
        with torch.no_grad(), autocast(self.dev, bf16):
            def fill(sl: slice):
                nonlocal wrong
                x = batch.x[sl].to(self.dev).contiguous(memory_format=torch.channels_last)
                inputs, h = self.model.block_inputs(x)
                self._chunks.append((sl, inputs))
                wrong += count_wrong(self.model.head(h), self.y[sl])  # the intact net, from the same pass
            chunked(fill, len(batch), chunk)
        self._intact = error_pct(wrong, len(batch))
        # Each variant's error once: the same deletion asked again (a k = 1 draw of the random sweep is a
        # single-block deletion the page has already run) is read, not recomputed.
        self._done: dict[tuple, float] = {}
        self._lock = threading.Lock()

    @torch.no_grad()
    def error_pct(self, start: int, skip: Iterable[int] = (), order: Sequence[int] | None = None) -> float:
        """Top-1 error (%) when the net runs from position ``start`` on the cached inputs (the intact net's, from
        the pass that filled the cache, when nothing is deleted or moved). A variant computed before on this cache
        is read back (the same start, deleted blocks and order give the same computation)."""
        skip = frozenset(skip)
        if not skip and (order is None or list(order) == list(range(len(order)))):
            if not 0 <= start < self.model.num_blocks:
                raise IndexError(start)
            return self._intact
        key = (start, skip, None if order is None else tuple(order))
        with self._lock:
            if key in self._done:
                return self._done[key]
        err = self._run(start, skip, order)
        with self._lock:
            self._done[key] = err
        return err

    def _run(self, start: int, skip: frozenset[int], order: Sequence[int] | None) -> float:
        wrong = 0
        with autocast(self.dev, self.bf16):
            for sl, inputs in self._chunks:
                if start >= len(inputs):
                    raise IndexError(start)
                wrong += count_wrong(self.model.forward_from(start, inputs[start], skip=skip, order=order), self.y[sl])
        return error_pct(wrong, len(self.batch))

    def intact_error_pct(self) -> float:
        return self.error_pct(0)


def inference_copy(model: CifarResNet, fuse: bool = True) -> CifarResNet:
    """A private copy for the deletion sweeps in bfloat16 autocast: BN folded into the conv before it
    (:func:`~analysis.core.blocks.fold_batchnorm`), the conv weights stored in bfloat16, which autocast would
    otherwise cast on every call, and on the CPU each conv fused with the ReLU after it and, in an ``original``-unit
    block, with the shortcut's addition (:func:`~analysis.core.fused.fuse_for_inference`). ``benchmarks/
    deletion_prefix.py`` times each step. The same function as the eval-mode model up to bfloat16 rounding (the
    folded weights are rounded instead of the conv output before BN; the fused addition rounds once instead of twice;
    ``tests/analyses/test_analyses.py`` holds the errors within 1 point of float32). A copy per model and sample (the
    sweeps share it)."""
    m = fold_batchnorm(private_copy(model))
    if model_device(model).type == "cpu":
        for mod in m.modules():
            if isinstance(mod, torch.nn.Conv2d):
                mod.to(torch.bfloat16)
        if fuse:
            fuse_for_inference(m)
    return m


def full_error_pct(model: CifarResNet, batch: Batch, skip: Iterable[int] = (), order: Sequence[int] | None = None,
                   chunk: int = 250, bf16: bool = True) -> float:
    """Top-1 error (%) by a full forward pass (no prefix reuse): the naive reference (on the same
    :func:`inference_copy` as :class:`PrefixCache` with ``bf16``)."""
    dev = model_device(model)
    model = inference_copy(model) if bf16 else model
    wrong = 0
    with torch.no_grad(), autocast(dev, bf16):
        for s in range(0, len(batch), chunk):
            x = batch.x[s:s + chunk].to(dev).contiguous(memory_format=torch.channels_last)
            h, _ = model.run_blocks(model.stem_forward(x), skip=skip, order=order)
            wrong += count_wrong(model.head(h), batch.y[s:s + chunk])
    return error_pct(wrong, len(batch))
