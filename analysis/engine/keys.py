"""The one key of a computed result: which analysis, on which models (by their weights), on which inputs.

The dashboard's in-memory cache, the on-disk store and the background prefetcher all key results by a
:class:`ResultKey`, so that one result computed by any of them is found by the others.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Mapping


def freeze(v: Any) -> Any:
    """A hashable, order-independent form of a parameter value (lists and dicts become sorted tuples)."""
    if isinstance(v, (list, tuple)):
        return tuple(freeze(x) for x in v)
    if isinstance(v, dict):
        return tuple(sorted((k, freeze(x)) for k, x in v.items()))
    return v


def freeze_params(params: Mapping[str, Any]) -> tuple:
    """The parameters that decide a result: every one whose name does not start with "_" (those carry inputs that
    another parameter identifies, e.g. an image tensor identified by its key)."""
    return tuple(sorted((k, freeze(v)) for k, v in params.items() if not k.startswith("_")))


@dataclass(frozen=True)
class ResultKey:
    """``models``: (name, weights id) pairs, one for a model-scope analysis, every chosen one for a zoo-scope one.
    ``samples``, ``seed``, ``device`` and ``root`` are None where the analysis reads no data (zoo scope)."""

    analysis: str
    models: tuple[tuple[str, str], ...]
    params: tuple = ()
    samples: int | None = None
    seed: int | None = None
    device: str | None = None
    root: str | None = None

    @classmethod
    def for_model(cls, analysis: str, name: str, weights: str, params: Mapping[str, Any], samples: int, seed: int,
                  device: str, root: str) -> "ResultKey":
        return cls(analysis, ((name, weights),), freeze_params(params), samples, seed, device, root)

    @classmethod
    def for_zoo(cls, analysis: str, names, weights, params: Mapping[str, Any]) -> "ResultKey":
        return cls(analysis, tuple(zip(names, weights)), freeze_params(params))

    @property
    def model(self) -> str:
        return self.models[0][0] if len(self.models) == 1 else "all"

    def inputs(self) -> dict:
        """Everything but the analysis, as plain data (what the store hashes and writes beside a result)."""
        return {"models": [list(m) for m in self.models], "params": self.params, "samples": self.samples,
                "seed": self.seed, "device": self.device, "root": self.root}
