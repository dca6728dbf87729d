"""CIFAR-10 as whole uint8 tensors: found, decoded once, cached, augmented as batch operations.

Two layouts are read:
- a torchvision root holding ``cifar-10-batches-py`` (users who are online get ``download=True``);
- an ImageFolder root holding ``train/<class>/*`` and ``test/<class>/*`` (e.g. a JPEG copy).

The root comes from ``--data DIR``, else the environment variable ``RESLENS_DATA``, else ``./data``.
Decoded images are cached as one file per split (beside the data when writable, else in
``~/.cache/reslens``), keyed by a fingerprint of the file list, so later loads take well under a second.

Bad data is refused in one sentence, never turned into a wrong number: a split must hold exactly the ten
CIFAR-10 class folders (a missing, empty or extra folder would shift every label after it); files that cannot
be decoded are skipped and named, up to :data:`MAX_UNREADABLE_SHARE` of the split, beyond which the folder
is refused as damaged; a cache file is used only when its tensors match the file list it claims to come from
(count, shape, dtype, every label), else it is rebuilt.
"""

from __future__ import annotations

import hashlib
import logging
import os
import pickle
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

CLASSES = ("airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck")
# Per-channel mean and std of the CIFAR-10 training images in [0, 1]; the one place they live.
MEAN = (0.4914, 0.4822, 0.4465)
STD = (0.2470, 0.2435, 0.2616)
NORMALIZATION = {"mean": list(MEAN), "std": list(STD), "input": "RGB in [0, 1], then (x - mean) / std"}
IMAGE_EXTS = {".jpg", ".jpeg", ".png", ".bmp", ".webp"}
CACHE_VERSION = 2
MAX_UNREADABLE_SHARE = 0.01  # more unreadable files than this share of a split: the folder is refused as damaged
LOG = logging.getLogger("reslens")


class DataNotFound(FileNotFoundError):
    """No CIFAR-10 was found; the message says where to put it."""


class DataRefused(DataNotFound):
    """CIFAR-10 was found but cannot be measured on as it is (a class missing, too many unreadable files);
    the message names the folder."""


def where_to_put_data(root: Path | None = None) -> str:
    root_s = f" (looked in {root})" if root is not None else ""
    return ("CIFAR-10 was not found" + root_s + ": put an ImageFolder copy with train/ and test/ there, or "
            "torchvision's cifar-10-batches-py, or set RESLENS_DATA=/path/to/cifar10 (or pass --data DIR).")


def resolve_root(data: str | os.PathLike | None = None) -> Path:
    """--data DIR, else $RESLENS_DATA, else ./data."""
    if data:
        return Path(data).expanduser()
    env = os.environ.get("RESLENS_DATA")
    return Path(env).expanduser() if env else Path("data")


def detect_layout(root: Path) -> str | None:
    """'imagefolder', 'torchvision' or None."""
    if (root / "train").is_dir() and (root / "test").is_dir():
        return "imagefolder"
    if (root / "cifar-10-batches-py" / "test_batch").is_file() or (root / "test_batch").is_file():
        return "torchvision"
    return None


@dataclass
class Split:
    images: torch.Tensor  # uint8, N x 3 x 32 x 32
    labels: torch.Tensor  # int64, N
    classes: tuple[str, ...]
    source: str  # "imagefolder:/path" or "torchvision:/path"
    fingerprint: str  # sha256 of the sorted file list (relative path and size of every file)
    skipped: tuple[str, ...] = ()  # files that could not be decoded (relative paths), left out

    def __len__(self) -> int:
        return len(self.labels)

    @property
    def note(self) -> str:
        """One sentence on what was left out, or ''."""
        if not self.skipped:
            return ""
        shown = ", ".join(self.skipped[:5]) + (", ..." if len(self.skipped) > 5 else "")
        return (f"{len(self.skipped)} unreadable image file(s) of {self.source.split(':', 1)[-1]} were skipped "
                f"({shown}); measurements use the other {len(self):,}.")


def _list_imagefolder(split_dir: Path) -> tuple[list[tuple[str, int]], tuple[str, ...]]:
    """(relative path, label) of every image file, in the ten CIFAR-10 class folders; refuses a split whose
    folders are not exactly those ten (a missing or extra folder would shift the labels after it)."""
    dirs = sorted(d.name for d in split_dir.iterdir() if d.is_dir() and not d.name.startswith("."))
    if not dirs:
        raise DataNotFound(f"{split_dir} has no class folders. " + where_to_put_data(split_dir.parent))
    missing = [c for c in CLASSES if c not in dirs]
    if missing:
        raise DataRefused(f"{split_dir / missing[0]} is missing"
                          + (f" (and {len(missing) - 1} more class folder(s))" if len(missing) > 1 else "")
                          + f": a CIFAR-10 split needs the ten class folders {', '.join(CLASSES)}, or every "
                          "label after the gap would be wrong.")
    extra = [d for d in dirs if d not in CLASSES]
    if extra:
        raise DataRefused(f"{split_dir / extra[0]} is not a CIFAR-10 class: a split holds exactly the folders "
                          f"{', '.join(CLASSES)}; move it out of {split_dir}.")
    files: list[tuple[str, int]] = []
    for ci, c in enumerate(CLASSES):
        # names sorted as strings (the order of sorting their paths, at a fraction of the cost on 50,000 files)
        with os.scandir(split_dir / c) as it:
            names = sorted(e.name for e in it if os.path.splitext(e.name)[1].lower() in IMAGE_EXTS)
        these = [f"{c}/{n}" for n in names]
        if not these:
            raise DataRefused(f"{split_dir / c} holds no images ({', '.join(sorted(IMAGE_EXTS))}): every CIFAR-10 "
                              "class must be there to measure an error.")
        files += [(r, ci) for r in these]
    return files, CLASSES


def _fingerprint(split_dir: Path, rel_paths: list[str]) -> str:
    """sha256 over every file's relative path and size, in the listing's order."""
    h = hashlib.sha256()
    base = str(split_dir)
    for r in rel_paths:
        h.update(f"{r}\t{os.stat(os.path.join(base, r)).st_size}\n".encode())
    return h.hexdigest()


def _decode(path: Path) -> np.ndarray | None:
    """The 32x32 RGB pixels of one file, or None when it cannot be decoded (truncated, not an image, ...)."""
    from PIL import Image

    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            if im.size != (32, 32):
                im = im.resize((32, 32), Image.BILINEAR)
            return np.asarray(im, dtype=np.uint8)
    except Exception:  # noqa: BLE001 - Pillow raises many kinds on damaged files; the caller names the file
        return None


def _cache_path(root: Path, split: str, fingerprint: str) -> Path:
    name = f".reslens-{split}-{fingerprint[:16]}-v{CACHE_VERSION}.pt"
    candidates = [root, Path(os.environ.get("RESLENS_CACHE", Path.home() / ".cache" / "reslens"))]
    for d in candidates:
        if (d / name).is_file():
            return d / name
    for d in candidates:
        try:
            d.mkdir(parents=True, exist_ok=True)
            probe = d / f".reslens-probe-{os.getpid()}"
            probe.touch()
            probe.unlink()
            return d / name
        except OSError:
            continue
    return candidates[-1] / name


def _valid_cache(d: object, fp: str, files: list[tuple[str, int]]) -> str:
    """'' when a cache's tensors are exactly what the file list makes, else what is wrong with it."""
    if not isinstance(d, dict) or d.get("fingerprint") != fp:
        return "another file list"
    images, labels, skipped = d.get("images"), d.get("labels"), tuple(d.get("skipped") or ())
    names = {r for r, _ in files}
    if not set(skipped) <= names:
        return "skipped files that are not in the folder"
    want = torch.tensor([c for r, c in files if r not in set(skipped)], dtype=torch.int64)
    if not isinstance(images, torch.Tensor) or images.dtype != torch.uint8 or tuple(images.shape) != (len(want), 3, 32, 32):
        return f"images of shape {tuple(getattr(images, 'shape', ()))} ({getattr(images, 'dtype', None)}), " \
               f"expected ({len(want)}, 3, 32, 32) uint8"
    if not isinstance(labels, torch.Tensor) or labels.dtype != torch.int64 or not torch.equal(labels, want):
        return "labels that do not match the class folders"
    if tuple(d.get("classes") or ()) != CLASSES:
        return "other class names"
    return ""


def _load_imagefolder(root: Path, split: str, progress: bool) -> Split:
    split_dir = root / split
    files, classes = _list_imagefolder(split_dir)
    rel = [r for r, _ in files]
    fp = _fingerprint(split_dir, rel)
    key = (str(root.resolve()), split, fp)
    with _MEMO_LOCK:
        if key in _MEMO:
            return _MEMO[key]
    cache = _cache_path(root, split, fp)
    if cache.is_file():
        try:
            d = torch.load(cache, weights_only=True)
            why = _valid_cache(d, fp, files)
        except Exception as e:  # noqa: BLE001 - a damaged cache is rebuilt, never trusted
            d, why = None, f"unreadable ({e.__class__.__name__})"
        if not why:
            out = Split(d["images"], d["labels"], CLASSES, source=f"imagefolder:{split_dir}", fingerprint=fp,
                        skipped=tuple(d.get("skipped") or ()))
            return _remember(key, out)
        LOG.warning("ResLens: the decoded-image cache %s holds %s; decoding the images again", cache, why)
    paths = [split_dir / r for r in rel]
    with ThreadPoolExecutor(max_workers=min(8, (os.cpu_count() or 2) * 2)) as ex:
        it = ex.map(_decode, paths, chunksize=256)
        if progress:
            from tqdm import tqdm

            it = tqdm(it, total=len(paths), desc=f"decoding {split} images (once)", unit="img")
        decoded = list(it)
    skipped = tuple(r for r, a in zip(rel, decoded) if a is None)
    if len(skipped) > MAX_UNREADABLE_SHARE * len(rel):
        raise DataRefused(f"{len(skipped):,} of {len(rel):,} image files in {split_dir} cannot be read (e.g. "
                          f"{skipped[0]}): more than {MAX_UNREADABLE_SHARE:.0%} of the split, so the folder is "
                          "treated as damaged; copy CIFAR-10 there again.")
    keep = [i for i, a in enumerate(decoded) if a is not None]
    images = torch.from_numpy(np.stack([decoded[i] for i in keep])).permute(0, 3, 1, 2).contiguous()
    labels = torch.tensor([files[i][1] for i in keep], dtype=torch.int64)
    out = Split(images, labels, classes, source=f"imagefolder:{split_dir}", fingerprint=fp, skipped=skipped)
    if skipped:
        LOG.warning("ResLens: %s", out.note)
    try:
        tmp = cache.with_suffix(f".tmp{os.getpid()}")
        torch.save({"images": images, "labels": labels, "classes": list(classes), "fingerprint": fp,
                    "skipped": list(skipped)}, tmp)
        tmp.replace(cache)
    except OSError:
        pass  # read-only everywhere: decode again next time
    return _remember(key, out)


# Splits already read by this process, by (root, split, fingerprint): a changed file list is read anew.
_MEMO: dict[tuple, Split] = {}
_MEMO_LOCK = threading.Lock()


def _remember(key: tuple, split: Split) -> Split:
    with _MEMO_LOCK:
        for k in [k for k in _MEMO if k[:2] == key[:2]]:  # one version of a split per folder
            del _MEMO[k]
        _MEMO[key] = split
    return split


def _load_torchvision(root: Path, split: str) -> Split:
    base = root / "cifar-10-batches-py" if (root / "cifar-10-batches-py").is_dir() else root
    names = [f"data_batch_{i}" for i in range(1, 6)] if split == "train" else ["test_batch"]
    h, xs, ys = hashlib.sha256(), [], []
    for n in names:
        p = base / n
        h.update(f"{n}\t{p.stat().st_size}\n".encode())
        # These are the official CIFAR-10 pickles found on local disk (torchvision reads them the same
        # way); they are never an upload.
        with open(p, "rb") as f:
            d = pickle.load(f, encoding="latin1")
        xs.append(np.asarray(d["data"], dtype=np.uint8).reshape(-1, 3, 32, 32))
        ys.extend(d["labels"])
    labels = torch.tensor(ys, dtype=torch.int64)
    present = set(labels.unique().tolist())
    if present != set(range(len(CLASSES))) or sum(len(x) for x in xs) != len(labels):
        missing = [CLASSES[i] for i in range(len(CLASSES)) if i not in present]
        raise DataRefused(f"{base} does not hold the ten CIFAR-10 classes as labels 0-9 with one image each "
                          f"(missing: {', '.join(missing) or 'none'}; labels seen: {sorted(present)[:12]})")
    return Split(torch.from_numpy(np.concatenate(xs)), labels, CLASSES, source=f"torchvision:{root}",
                 fingerprint=h.hexdigest())


def load_split(split: str, data: str | os.PathLike | None = None, download: bool = False,
               progress: bool = False) -> Split:
    """Load 'train' or 'test' as uint8 tensors. Raises :class:`DataNotFound` with a clear sentence."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', not {split!r}")
    root = resolve_root(data)
    layout = detect_layout(root) if root.exists() else None
    if layout is None and download:
        LOG.warning("ResLens: CIFAR-10 is not in %s; downloading it (about 170 MB) with torchvision", root)
        try:
            import torchvision

            torchvision.datasets.CIFAR10(str(root), train=(split == "train"), download=True)
            layout = detect_layout(root)
        except Exception as e:  # offline, or a read-only folder
            raise DataNotFound(f"CIFAR-10 is not in {root} and downloading it failed ({e.__class__.__name__}: "
                               "offline?). " + where_to_put_data(root)) from None
    if layout is None:
        raise DataNotFound(where_to_put_data(root))
    if layout == "imagefolder":
        return _load_imagefolder(root, split, progress)
    return _load_torchvision(root, split)


def data_status(data: str | os.PathLike | None = None) -> tuple[bool, str]:
    """(found, one sentence): for the UI and the CLI."""
    root = resolve_root(data)
    layout = detect_layout(root) if root.exists() else None
    if layout is None:
        return False, where_to_put_data(root)
    return True, f"CIFAR-10 found at {root.resolve()} ({'ImageFolder' if layout == 'imagefolder' else 'torchvision'} layout)."


# ---------------------------------------------------------------------------- tensors
def normalize(images: torch.Tensor) -> torch.Tensor:
    """uint8 (or float in [0, 255]) N x 3 x H x W -> normalised float32 on the same device."""
    x = images.float().div_(255.0)
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x - mean) / std


def denormalize(x: torch.Tensor) -> torch.Tensor:
    """Normalised input -> RGB in [0, 1]."""
    mean = torch.tensor(MEAN, device=x.device).view(1, 3, 1, 1)
    std = torch.tensor(STD, device=x.device).view(1, 3, 1, 1)
    return (x * std + mean).clamp(0, 1)


def augment(images: torch.Tensor, generator: torch.Generator, pad: int = 4) -> torch.Tensor:
    """He et al. 2015 augmentation as whole-batch ops: pad 4 zero pixels, random 32x32 crop,
    random horizontal flip. Works on any device; ``generator`` must live on the same device."""
    n, c, h, w = images.shape
    dev = images.device
    padded = torch.nn.functional.pad(images, (pad, pad, pad, pad))
    dy = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    dx = torch.randint(0, 2 * pad + 1, (n,), device=dev, generator=generator)
    rows = (dy[:, None] + torch.arange(h, device=dev))[:, None, :, None]  # n,1,h,1
    cols = (dx[:, None] + torch.arange(w, device=dev))[:, None, None, :]  # n,1,1,w
    bidx = torch.arange(n, device=dev)[:, None, None, None]
    cidx = torch.arange(c, device=dev)[None, :, None, None]
    out = padded[bidx, cidx, rows, cols]
    flip = torch.rand(n, device=dev, generator=generator) < 0.5
    return torch.where(flip[:, None, None, None], out.flip(3), out)


def sample_indices(n_total: int, samples: int | None, seed: int) -> torch.Tensor:
    """A seeded, class-agnostic random subset of indices (all of them when samples is None or too big)."""
    if samples is None or samples >= n_total:
        return torch.arange(n_total)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n_total, generator=g)[:samples].sort().values
