"""What an analysis receives for one run (:class:`Context`), and the work its analyses share (:class:`Workspace`).

A run is one scope: one model (scope "model") or all chosen models (scope "zoo"), with one sample size, seed,
device and data root. The analyses of a run share work through its workspace: the sampled test images, and
whatever an analysis declares as shared (the deletion analyses' cached block inputs, say) are computed once,
the first time one of them asks, and handed to the others. The dashboard keeps one workspace per scope for
every session (it is safe to share between threads); the report makes one per run.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable

import torch

from ..core.common import Batch, Progress, eval_sample, random_sample
from ..core.models import CifarResNet, weights_sha256

DEFAULT_SAMPLES = 500  # test images per measurement: the sidebar's, the CLI's and every context's default


class Workspace:
    """Values computed once per key and shared: ``get(key, make)`` returns the value stored under ``key``,
    calling ``make()`` the first time (one caller computes; the others wait for it and get the same object)."""

    def __init__(self) -> None:
        self._values: dict[Hashable, Any] = {}
        self._locks: dict[Hashable, threading.Lock] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, make: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._values:
                return self._values[key]
            lock = self._locks.setdefault(key, threading.Lock())
        with lock:
            with self._lock:
                if key in self._values:
                    return self._values[key]
            value = make()
            with self._lock:
                self._values[key] = value
            return value

    def first(self, kind: str) -> Any:
        """The first value stored under a key whose first part is ``kind`` (e.g. "sample"), or None."""
        with self._lock:
            return next((v for k, v in self._values.items() if isinstance(k, tuple) and k[:1] == (kind,)), None)

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._values


@dataclass
class Context:
    """What an analysis receives for one run.

    ``model`` is shared and read-only (a cached model serves every session): an analysis that needs train
    mode, hooks or changed weights works on ``common.private_copy``. ``sample(n)`` is a seeded random subset
    of the test split (at most ``samples`` images), or of ``batch`` when one is given (tests, uploads), taken once
    per run through ``shared``.
    """

    name: str
    model: CifarResNet | None = None
    arch: str | None = None  # architecture name for a fresh initialisation (variants included)
    names: tuple[str, ...] = ()  # scope "zoo": every chosen model
    device: torch.device = torch.device("cpu")
    seed: int = 0
    samples: int = DEFAULT_SAMPLES
    data: str | None = None
    params: dict = field(default_factory=dict)
    progress: Progress = None
    batch: Batch | None = None
    models: dict = field(default_factory=dict)  # scope "zoo": the loaded models by name (uploads included)
    shared: Workspace = field(default_factory=Workspace)

    def sample(self, n: int | None = None, random_input: bool = False) -> Batch:
        n = min(n or self.samples, self.samples)
        if self.batch is not None:
            return self.batch if n >= len(self.batch) else Batch(self.batch.x[:n], self.batch.y[:n],
                                                                 self.batch.indices[:n], source=self.batch.source)
        key = ("sample", n, random_input, self.seed, str(self.device), self.data)
        return self.shared.get(key, lambda: random_sample(n, self.seed, self.device) if random_input
                               else eval_sample(n, self.seed, self.device, data=self.data))

    def share(self, what: str, make: Callable[[], Any]) -> Any:
        """Work of this model and sample that several analyses use, computed once (e.g. the deletion analyses'
        cached block inputs): keyed by ``what``, the model (its name and the sha256 of its weights) and the sample."""
        weights = weights_sha256(self.model) if self.model is not None else None
        return self.shared.get((what, self.name, weights, self.samples, self.seed, str(self.device), self.data), make)

    def init_model(self) -> CifarResNet:
        """The same architecture freshly He-initialised with ``seed`` (for 'at initialisation')."""
        from ..core.zoo import fresh_model

        m = fresh_model(self.arch or self.model.name, self.seed, self.device)
        if self.model is not None and not self.model.input_norm.identity:
            m.input_norm.set(self.model.input_norm.mean, self.model.input_norm.std)
        return m

    def tick(self, frac: float, msg: str) -> None:
        if self.progress:
            self.progress(frac, msg)
