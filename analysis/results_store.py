"""Results that survive a restart: every table an analysis returned, on disk, keyed by what decides it.

The key is the analysis, the sha256 of each model's weights (parameters and buffers, so two checkpoints with
the same name never share results), the library's own source (any change to ``analysis/`` starts afresh),
the data set's location, and every input (sample size, seed, device, parameters). Tables are stored as
Parquet in ``$RESLENS_RESULTS`` (default ``~/.cache/reslens/results``; ``off`` turns the store off), one
folder per key, written to a temporary folder and renamed, so a crash never leaves half a result. A folder
that cannot be read is treated as missing and computed again.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import pandas as pd
import torch

_WEIGHTS: "weakref.WeakKeyDictionary[torch.nn.Module, str]" = weakref.WeakKeyDictionary()


def weights_sha256(model: torch.nn.Module) -> str:
    """sha256 over every parameter and buffer (name, dtype, shape, bytes) of ``model``; computed once per
    model object (the shared models are read-only)."""
    got = _WEIGHTS.get(model)
    if got is None:
        h = hashlib.sha256()
        for k, v in sorted(model.state_dict().items()):
            t = v.detach().to("cpu").contiguous().reshape(-1)
            h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
            h.update(t.view(torch.uint8).numpy().tobytes() if t.numel() else b"")
        got = _WEIGHTS[model] = h.hexdigest()
    return got


@lru_cache(maxsize=1)
def library_version() -> str:
    """sha256 of the analysis library's source files: results computed by other code are never reused."""
    h = hashlib.sha256()
    for p in sorted(Path(__file__).resolve().parent.glob("*.py")):
        h.update(p.name.encode() + b"\0" + p.read_bytes())
    return h.hexdigest()[:20]


def default_dir() -> Path | None:
    v = os.environ.get("RESLENS_RESULTS", "")
    if v.lower() in ("off", "0", "none"):
        return None
    return Path(v) if v else Path.home() / ".cache" / "reslens" / "results"


class ResultStore:
    def __init__(self, root: Path | None = None) -> None:
        self.root = Path(root) if root is not None else default_dir()

    @property
    def enabled(self) -> bool:
        return self.root is not None

    @staticmethod
    def key(analysis: str, inputs: Mapping[str, Any]) -> str:
        blob = json.dumps({"analysis": analysis, "library": library_version(), **inputs}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _dir(self, analysis: str, key: str) -> Path:
        return self.root / analysis / key[:40]

    def get(self, analysis: str, inputs: Mapping[str, Any]) -> dict[str, pd.DataFrame] | None:
        if not self.enabled:
            return None
        d = self._dir(analysis, self.key(analysis, inputs))
        try:
            names = json.loads((d / "tables.json").read_text())
            return {n: pd.read_parquet(d / f"{n}.parquet") for n in names}
        except Exception:  # noqa: BLE001 - missing, or damaged (pyarrow raises its own errors): compute again
            return None

    def put(self, analysis: str, inputs: Mapping[str, Any], tables: Mapping[str, pd.DataFrame]) -> bool:
        """Store ``tables``; False (and nothing stored) when the disk refuses, e.g. full or read-only."""
        if not self.enabled:
            return False
        key = self.key(analysis, inputs)
        d = self._dir(analysis, key)
        try:
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=".tmp-"))
            for n, df in tables.items():
                df.to_parquet(tmp / f"{n}.parquet", index=False)
            (tmp / "inputs.json").write_text(json.dumps({"analysis": analysis, **inputs}, indent=1, default=str))
            (tmp / "tables.json").write_text(json.dumps(list(tables)))
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
            return True
        except Exception:  # noqa: BLE001 - a cache that cannot write is no reason to fail the page
            shutil.rmtree(locals().get("tmp", d.parent / ".none"), ignore_errors=True)
            return False

    def clear(self) -> None:
        if self.enabled and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
