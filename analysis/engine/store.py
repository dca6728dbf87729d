"""Results that survive a restart: every table an analysis returned, on disk, keyed by what decides it.

The key is the analysis, the *version of its code* (:func:`analysis_version`: a hash of the source of its module
and of every library module it imports, directly or not), the sha256 of each model's weights (parameters and
buffers, so two checkpoints with the same name never share results), the data set's location, and every input
(sample size, seed, device, parameters). Tables are stored as Parquet in ``$RESLENS_RESULTS`` (default
``~/.cache/reslens/results``; ``off`` turns the store off), one folder per key, written to a temporary folder
and renamed, so a crash never leaves half a result. Each folder holds a ``manifest.json`` with the version and
the sha256 of every table file; reading checks both, and an entry that is damaged, unreadable or from another
version of the code is deleted, logged ("ResLens: dropped a stored result ...") and computed again.
"""

from __future__ import annotations

import ast
import hashlib
import io
import json
import logging
import os
import shutil
import tempfile
from functools import lru_cache
from pathlib import Path
from typing import Callable, Mapping

import pandas as pd

from .keys import ResultKey

LOG = logging.getLogger("reslens")
PACKAGE = Path(__file__).resolve().parent.parent  # the library, analysis/
FORMAT = 2  # the layout of an entry (manifest.json with checksums)

def _read_source(name: str) -> str:
    """The source of library module ``name`` (dotted below the package, e.g. "core.models"), or ''."""
    p = PACKAGE.joinpath(*name.split(".")).with_suffix(".py")
    if not p.is_file():
        p = PACKAGE.joinpath(*name.split("."), "__init__.py")
    return p.read_text() if p.is_file() else ""


def imports_of(module: str, source: str) -> set[str]:
    """The library modules (dotted below the package) that ``module``'s source imports, anywhere in it:
    ``from .x import``, ``from ..core.x import``, ``from ..core import x``, ``from analysis.core.x import``."""
    out: set[str] = set()
    try:
        tree = ast.parse(source)
    except SyntaxError:
        return out
    parts = module.split(".") if module else []
    is_package = PACKAGE.joinpath(*parts, "__init__.py").is_file()
    here = parts if is_package else parts[:-1]  # the package the module's relative imports start from
    for node in ast.walk(tree):
        if not isinstance(node, ast.ImportFrom):
            continue
        if node.level:
            base = here[:len(here) - (node.level - 1)] if node.level > 1 else list(here)
            if node.level - 1 > len(here):
                continue
        elif (node.module or "").split(".")[0] == PACKAGE.name:
            base = []
        else:
            continue
        mod = [p for p in (node.module or "").split(".") if p]
        if not node.level:
            mod = mod[1:]
        target = base + mod
        for alias in node.names:  # "from ..core import models": each name may be a module
            candidate = ".".join(target + [alias.name])
            if _read_source(candidate):
                out.add(candidate)
        if target and _read_source(".".join(target)):
            out.add(".".join(target))
    return {m for m in out if m}


def module_closure(module: str, read: Callable[[str], str] = _read_source) -> list[str]:
    """``module`` and every library module it imports, directly or through others, sorted."""
    seen, todo = set(), [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        todo += [i for i in imports_of(m, read(m)) if i not in seen]
    return sorted(seen)


def source_version(modules: list[str], read: Callable[[str], str] = _read_source) -> str:
    """sha256 (20 hex digits) over the named modules' sources."""
    h = hashlib.sha256()
    for m in modules:
        h.update(m.encode() + b"\0" + read(m).encode() + b"\0")
    return h.hexdigest()[:20]


@lru_cache(maxsize=None)
def analysis_version(name: str) -> str:
    """The version of a registered analysis' code: its module and everything that module imports from the
    library. Changing any of them moves it (and only the analyses that use a changed module move)."""
    from .registry import load_all

    a = load_all().get(name)
    prefix = PACKAGE.name + "."
    module = a.module[len(prefix):] if a is not None and a.module.startswith(prefix) else ""
    if not module or not _read_source(module):
        return library_version()
    closure = module_closure(module)
    if "engine.report" in closure:  # it runs other analyses (found by the registry at run time): all of the library
        return library_version()
    return source_version(closure)


@lru_cache(maxsize=1)
def library_version() -> str:
    """sha256 of every source file of the library (for anything that is not a registered analysis)."""
    return source_version(sorted(".".join(p.relative_to(PACKAGE).with_suffix("").parts)
                                 for p in PACKAGE.rglob("*.py")))


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
    def digest(key: ResultKey, version: str | None = None) -> str:
        v = version or analysis_version(key.analysis)
        blob = json.dumps({"analysis": key.analysis, "version": v, **key.inputs()}, sort_keys=True, default=str)
        return hashlib.sha256(blob.encode()).hexdigest()

    def _dir(self, analysis: str, key: str) -> Path:
        return self.root / analysis / key[:40]

    def _where(self, rk: ResultKey) -> tuple[str, str, Path]:
        """(code version, digest, folder) of a key."""
        version = analysis_version(rk.analysis)
        key = self.digest(rk, version)
        return version, key, self._dir(rk.analysis, key)

    def _drop(self, d: Path, analysis: str, why: str) -> None:
        LOG.warning("ResLens: dropped a stored result of %s (%s): %s; computing it again", analysis, why, d)
        shutil.rmtree(d, ignore_errors=True)

    def has(self, rk: ResultKey) -> bool:
        """Whether a result for the key is stored (not yet checked: :meth:`get` checks it)."""
        return self.enabled and self._where(rk)[2].is_dir()

    def get(self, rk: ResultKey) -> dict[str, pd.DataFrame] | None:
        """The stored tables, or None (not stored; or stored but damaged or from other code: then dropped)."""
        if not self.enabled:
            return None
        analysis = rk.analysis
        version, key, d = self._where(rk)
        if not d.is_dir():
            return None
        try:
            man = json.loads((d / "manifest.json").read_text())
            if not isinstance(man, dict) or man.get("format") != FORMAT:
                self._drop(d, analysis, "written in another layout")
                return None
            if man.get("version") != version or man.get("key") != key:
                self._drop(d, analysis, f"computed by other code (version {man.get('version')}, now {version})")
                return None
            out = {}
            for name, entry in man["tables"].items():
                blob = (d / entry["file"]).read_bytes()
                if hashlib.sha256(blob).hexdigest() != entry["sha256"]:
                    self._drop(d, analysis, f"{entry['file']} does not match its checksum")
                    return None
                out[name] = pd.read_parquet(io.BytesIO(blob))
                if len(out[name]) != entry["rows"]:
                    self._drop(d, analysis, f"{entry['file']} has {len(out[name])} rows, not {entry['rows']}")
                    return None
            return out
        except Exception as e:  # noqa: BLE001 - unreadable in any way (pyarrow raises its own errors)
            self._drop(d, analysis, f"unreadable: {e.__class__.__name__}")
            return None

    def put(self, rk: ResultKey, tables: Mapping[str, pd.DataFrame]) -> bool:
        """Store ``tables``; False (and nothing stored) when the disk refuses, e.g. full or read-only."""
        if not self.enabled:
            return False
        analysis = rk.analysis
        version, key, d = self._where(rk)
        tmp = None
        try:
            d.parent.mkdir(parents=True, exist_ok=True)
            tmp = Path(tempfile.mkdtemp(dir=d.parent, prefix=".tmp-"))
            entries = {}
            for i, (n, df) in enumerate(tables.items()):
                buf = io.BytesIO()
                df.to_parquet(buf, index=False)
                blob = buf.getvalue()
                f = f"table{i}.parquet"
                (tmp / f).write_bytes(blob)
                entries[n] = {"file": f, "sha256": hashlib.sha256(blob).hexdigest(), "rows": len(df)}
            (tmp / "inputs.json").write_text(json.dumps({"analysis": analysis, **rk.inputs()}, indent=1, default=str))
            (tmp / "manifest.json").write_text(json.dumps({"format": FORMAT, "analysis": analysis, "version": version,
                                                           "key": key, "tables": entries}, indent=1))
            if d.exists():
                shutil.rmtree(d, ignore_errors=True)
            os.replace(tmp, d)
            return True
        except Exception:  # noqa: BLE001 - a cache that cannot write is no reason to fail the page
            if tmp is not None:
                shutil.rmtree(tmp, ignore_errors=True)
            return False

    def clear(self) -> None:
        if self.enabled and self.root.exists():
            shutil.rmtree(self.root, ignore_errors=True)
