"""Reading a ``torch.save`` file that somebody uploaded, without running any of it and within a memory bound.

``torch.load(..., weights_only=True)`` runs no code, but it refuses files that hold ordinary research objects
beside the weights (an ``argparse.Namespace`` of hyper-parameters, numpy scalars for the best accuracy), and it
materialises every storage at the size the file *declares*: a zip record that is deflate-compressed, or a
storage in the old (pre-1.6) format that declares more bytes than the file holds, makes a small file allocate
gigabytes. This reader:

* checks the container first: every record of the zip is stored uncompressed (``torch.save`` never compresses)
  and the storages together fit in :data:`MAX_TENSOR_BYTES`; in the old format every storage's declared size is
  checked against the bytes that follow it, before anything is allocated;
* unpickles with a restricted unpickler (the pattern of Python's own documentation, "Restricting Globals"):
  PyTorch's tensor-rebuilding functions, storage types, dtypes and plain containers are the only globals it
  resolves to real objects; any other *class* (``argparse.Namespace``, a numpy scalar, a config object) becomes
  an inert placeholder that keeps nothing and runs nothing, and is named in the notes; a *function* (or anything
  from ``os``, ``subprocess``, ``builtins`` and their kin) is refused, because calling it is how a pickle runs
  code.

Only the tensors are used afterwards (``checkpoints._unwrap``). Every refusal is one sentence.
"""

from __future__ import annotations

import io
import pickle
import re
import struct
import zipfile
from typing import Any

import torch

MAX_TENSOR_BYTES = 256 * 1024 * 1024  # the storages of one file together (a 110-layer CIFAR net: about 7 MB)
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C


class TorchFileRefused(ValueError):
    """The file cannot be read safely; the message says why in one sentence."""


# ---------------------------------------------------------------------------- what a global may resolve to
def _allowed() -> dict[str, Any]:
    import collections

    out: dict[str, Any] = {
        "collections.OrderedDict": collections.OrderedDict,
        "builtins.set": set, "builtins.frozenset": frozenset, "builtins.complex": complex,
        "builtins.bytearray": bytearray, "builtins.slice": slice,
        "_codecs.encode": __import__("_codecs").encode,  # how protocol-2 pickles spell bytes
        "torch.Size": torch.Size, "torch.device": torch.device,
        "torch.storage.UntypedStorage": torch.storage.UntypedStorage,
        "torch._utils._rebuild_tensor": torch._utils._rebuild_tensor,
        "torch._utils._rebuild_tensor_v2": torch._utils._rebuild_tensor_v2,
        "torch._utils._rebuild_tensor_v3": torch._utils._rebuild_tensor_v3,
        "torch._utils._rebuild_parameter": torch._utils._rebuild_parameter,
        "torch._utils._rebuild_parameter_with_state": torch._utils._rebuild_parameter_with_state,
        "torch.nn.parameter.Parameter": torch.nn.Parameter,
    }
    for cls in torch._storage_classes:
        out[f"{cls.__module__}.{cls.__name__}"] = cls
    for name in dir(torch):
        if isinstance(getattr(torch, name, None), torch.dtype):
            out[f"torch.{name}"] = getattr(torch, name)
    return out


ALLOWED = _allowed()
# Modules whose globals are how a pickle runs code: never resolved, never replaced, refused.
DANGEROUS = {"os", "posix", "nt", "subprocess", "_posixsubprocess", "sys", "builtins", "__builtin__", "shutil",
             "importlib", "runpy", "socket", "ctypes", "pickle", "_pickle", "marshal", "code", "codeop", "pty",
             "webbrowser", "types", "functools", "operator", "io", "_io", "tempfile", "pathlib", "multiprocessing",
             "threading", "signal", "asyncio", "pdb", "bdb", "timeit", "platform", "glob", "urllib", "http",
             "requests", "zipimport", "inspect", "ast", "dill", "copyreg", "copy", "torch", "numpy", "pandas",
             "yaml", "setuptools", "distutils", "pip", "site", "gc", "weakref", "linecache", "mmap", "ssl",
             "ftplib", "smtplib", "telnetlib", "logging", "cProfile", "profile", "trace", "sysconfig", "ensurepip",
             "venv", "shelve", "dbm", "sqlite3", "xmlrpc", "selectors", "select", "fcntl", "resource", "codecs",
             "_codecs", "unittest", "doctest", "idlelib", "tkinter", "turtle", "concurrent", "contextlib",
             "string", "re", "base64", "zlib", "gzip", "bz2", "lzma", "tarfile", "zipfile", "json", "csv",
             "configparser", "getpass", "pwd", "grp", "crypt", "spwd", "uuid", "random", "secrets", "hashlib",
             "hmac", "warnings", "atexit", "abc", "enum", "dataclasses", "typing", "collections", "itertools"}
# Data classes that research code pickles beside the weights, known to be plain values: replaced, noted.
INERT_OK = {"argparse.Namespace", "numpy.core.multiarray.scalar", "numpy._core.multiarray.scalar", "numpy.dtype",
            "numpy.core.multiarray._reconstruct", "numpy._core.multiarray._reconstruct", "numpy.ndarray",
            "numpy.dtypes.Float64DType", "numpy.dtypes.Float32DType", "numpy.dtypes.Int64DType",
            "numpy.dtypes.Int32DType", "numpy.dtypes.BoolDType", "collections.defaultdict", "collections.deque",
            "builtins.object", "datetime.datetime", "datetime.date", "datetime.timedelta", "decimal.Decimal",
            "fractions.Fraction", "pathlib.PosixPath", "pathlib.WindowsPath", "pathlib.PurePosixPath"}


class Inert:
    """What an unknown class of a checkpoint becomes: it accepts whatever the pickle passes and keeps nothing."""

    global_name = "object"

    def __new__(cls, *args, **kwargs):
        return object.__new__(cls)

    def __init__(self, *args, **kwargs) -> None:
        pass

    def __setstate__(self, state) -> None:
        pass

    def __setitem__(self, key, value) -> None:  # SETITEM(S) on a replaced dict subclass
        pass

    def append(self, value) -> None:  # APPEND(S) on a replaced list subclass
        pass

    def extend(self, values) -> None:
        pass

    def __repr__(self) -> str:
        return f"<ignored {self.global_name}>"


def _placeholder(qualname: str, cache: dict[str, type]) -> type:
    if qualname not in cache:
        cache[qualname] = type("Inert_" + re.sub(r"\W", "_", qualname), (Inert,), {"global_name": qualname})
    return cache[qualname]


def _clean(text: str, limit: int = 80) -> str:
    """Printable, one line, cut at a word boundary: text from a file (or from a library reading it)."""
    t = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", str(text))
    t = re.sub(r"[\x00-\x1f\x7f]+", " ", t).strip()
    if len(t) <= limit:
        return t
    cut = t[:limit].rsplit(" ", 1)[0] if " " in t[:limit] else t[:limit]
    return cut.rstrip(",;:") + "…"


class _Unpickler(pickle.Unpickler):
    def __init__(self, f, storages, placeholders: dict[str, type]) -> None:
        super().__init__(f)
        self._storages = storages  # persistent id -> storage
        self.placeholders = placeholders

    def find_class(self, module: str, name: str):
        q = f"{module}.{name}"
        if q in ALLOWED:
            return ALLOWED[q]
        top = module.split(".", 1)[0]
        if q in INERT_OK:
            return _placeholder(q, self.placeholders)
        if top in DANGEROUS or not name[:1].isupper():
            raise TorchFileRefused(f"the file asks to call {_clean(q, 60)} when it is read: ResLens never runs code "
                                   "from a file (it never unpickles anything but tensors and plain values)")
        return _placeholder(q, self.placeholders)  # an unknown class: kept as nothing

    def persistent_load(self, pid):
        return self._storages(pid)


def _dtype_of(storage_type) -> torch.dtype:
    if storage_type is torch.storage.UntypedStorage:
        return torch.uint8
    dtype = getattr(storage_type, "dtype", None)
    if not isinstance(dtype, torch.dtype):
        raise TorchFileRefused("the file declares a storage of an unknown type")
    return dtype


def _storage(blob: bytes, dtype: torch.dtype) -> torch.storage.TypedStorage:
    untyped = torch.frombuffer(bytearray(blob), dtype=torch.uint8).untyped_storage() if blob else \
        torch.storage.UntypedStorage(0)
    return torch.storage.TypedStorage(wrap_storage=untyped, dtype=dtype, _internal=True)


def _element_size(dtype: torch.dtype) -> int:
    return torch._utils._element_size(dtype)


# ---------------------------------------------------------------------------- the zip format (PyTorch >= 1.6)
def _load_zip(data: bytes) -> tuple[Any, list[str]]:
    try:
        zf = zipfile.ZipFile(io.BytesIO(data))
        infos = zf.infolist()
    except (zipfile.BadZipFile, OSError, ValueError, EOFError) as e:
        raise TorchFileRefused(f"not a readable PyTorch checkpoint ({_clean(e)})") from None
    pkl = [i for i in infos if i.filename.endswith("data.pkl") and i.filename.count("/") == 1]
    if len(pkl) != 1:
        raise TorchFileRefused("not a PyTorch checkpoint: its zip holds no (or several) data.pkl records")
    prefix = pkl[0].filename[: -len("data.pkl")]
    packed = [i.filename for i in infos if i.compress_type != zipfile.ZIP_STORED]
    if packed:
        raise TorchFileRefused(f"the file's record {_clean(packed[0], 60)} is compressed; torch.save never compresses, "
                               "and a compressed record may expand far beyond the file's size")
    declared = sum(i.file_size for i in infos)
    if declared > len(data) + 1024 * max(1, len(infos)):
        raise TorchFileRefused("the file's zip directory declares more bytes than the file holds: damaged or forged")
    by_name = {i.filename: i for i in infos}
    order = by_name.get(prefix + "byteorder")
    if order is not None and zf.read(order).strip() not in (b"", b"little"):
        raise TorchFileRefused("the file was written on a big-endian machine; re-save it on a little-endian one")
    total = {"bytes": 0}

    def storage(pid):
        if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] in ("storage", b"storage")):
            raise TorchFileRefused("the file refers to data in a form torch.save does not write")
        _, storage_type, key, _location, numel = pid
        dtype = _dtype_of(storage_type)
        nbytes = int(numel) * _element_size(dtype)
        info = by_name.get(f"{prefix}data/{key}")
        if info is None or nbytes < 0 or info.file_size != nbytes:
            raise TorchFileRefused(f"storage {_clean(key, 20)} declares {nbytes:,} bytes but its record holds "
                                   f"{0 if info is None else info.file_size:,}: damaged or forged")
        total["bytes"] += nbytes
        if total["bytes"] > MAX_TENSOR_BYTES:
            raise TorchFileRefused(f"the tensors of this file add up to more than {MAX_TENSOR_BYTES // 2**20} MB")
        return _storage(zf.read(info), dtype)

    placeholders: dict[str, type] = {}
    try:
        obj = _Unpickler(io.BytesIO(zf.read(pkl[0])), storage, placeholders).load()
    except TorchFileRefused:
        raise
    except Exception as e:  # noqa: BLE001 - damaged pickles raise anything
        raise TorchFileRefused(f"not a readable PyTorch checkpoint ({e.__class__.__name__}: {_clean(e)})") from None
    return obj, sorted(placeholders)


# ---------------------------------------------------------------------------- the old format (PyTorch < 1.6)
def _load_legacy(data: bytes) -> tuple[Any, list[str]]:
    """Magic number, protocol, system info, the object (storages by persistent id), the storage keys, then per
    key an 8-byte element count and the bytes. Pass 1 reads the declarations and checks them against the bytes
    that are really there; pass 2 builds the tensors from those bytes."""
    f = io.BytesIO(data)
    placeholders: dict[str, type] = {}
    declared: dict[str, tuple[torch.dtype, int]] = {}

    def record(pid):
        if not (isinstance(pid, tuple) and len(pid) == 6 and pid[0] in ("storage", b"storage")):
            raise TorchFileRefused("the file refers to data in a form ResLens does not read (a module or a view)")
        _, storage_type, key, _location, numel, view = pid
        if view is not None:
            raise TorchFileRefused("the file holds storage views (PyTorch before 1.0); re-save it with a newer PyTorch")
        declared[str(key)] = (_dtype_of(storage_type), int(numel))
        return _storage(b"", declared[str(key)][0])

    def header(unp: pickle.Unpickler) -> None:
        if unp.load() != LEGACY_MAGIC:
            raise TorchFileRefused("not a PyTorch checkpoint (neither a zip nor the old format's magic number)")
        unp.load()  # protocol version
        unp.load()  # system information

    try:
        header(_Unpickler(f, record, placeholders))
        _PassOne(f, record, placeholders).load()  # the object, tensors not rebuilt
        keys = _Unpickler(f, record, placeholders).load()
    except TorchFileRefused:
        raise
    except Exception as e:  # noqa: BLE001
        raise TorchFileRefused(f"not a readable PyTorch checkpoint ({e.__class__.__name__}: {_clean(e)})") from None
    if not isinstance(keys, list) or set(map(str, keys)) != set(declared):
        raise TorchFileRefused("the file's list of storages does not match the storages it uses: damaged")
    blobs, pos, total = {}, f.tell(), 0
    for key in map(str, keys):
        dtype, numel = declared[key]
        if pos + 8 > len(data):
            raise TorchFileRefused("the file ends before its tensors: truncated")
        (count,) = struct.unpack("<q", data[pos:pos + 8])
        nbytes = count * _element_size(dtype)
        if count != numel or nbytes < 0 or pos + 8 + nbytes > len(data):
            raise TorchFileRefused(f"storage {_clean(key, 20)} declares {numel:,} values but the file holds "
                                   f"{max(0, len(data) - pos - 8):,} bytes after it: truncated or forged")
        total += nbytes
        if total > MAX_TENSOR_BYTES:
            raise TorchFileRefused(f"the tensors of this file add up to more than {MAX_TENSOR_BYTES // 2**20} MB")
        blobs[key] = data[pos + 8:pos + 8 + nbytes]
        pos += 8 + nbytes

    def real(pid):
        key = str(pid[2])
        return _storage(blobs[key], declared[key][0])

    f2 = io.BytesIO(data)
    try:
        header(_Unpickler(f2, real, placeholders))
        obj = _Unpickler(f2, real, placeholders).load()
    except TorchFileRefused:
        raise
    except Exception as e:  # noqa: BLE001
        raise TorchFileRefused(f"not a readable PyTorch checkpoint ({e.__class__.__name__}: {_clean(e)})") from None
    return obj, sorted(placeholders)


class _PassOne(_Unpickler):
    """Pass 1 of the old format: storages are empty stand-ins, so tensors are not rebuilt (only recorded)."""

    def find_class(self, module: str, name: str):
        got = super().find_class(module, name)
        if got in (torch._utils._rebuild_tensor, torch._utils._rebuild_tensor_v2, torch._utils._rebuild_tensor_v3,
                   torch._utils._rebuild_parameter, torch._utils._rebuild_parameter_with_state):
            return _placeholder(f"{module}.{name}", {})
        return got


def load(data: bytes) -> tuple[Any, list[str]]:
    """(the object ``torch.save`` wrote, with every non-tensor class replaced by an inert placeholder, the names
    of the classes replaced). Raises :class:`TorchFileRefused` with one sentence."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "TypedStorage is deprecated": torch.load builds them too
        if data[:4] == b"PK\x03\x04":
            return _load_zip(data)
        return _load_legacy(data)
