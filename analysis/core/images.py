"""Uploaded images -> a 32x32 RGB CIFAR-style input, with a note for every conversion.

Any format Pillow reads is accepted; what cannot be used safely is refused with one sentence:
not an image, truncated or corrupt data, or a decompression bomb (more than ``MAX_PIXELS`` pixels).
"""

from __future__ import annotations

import io
import warnings

import numpy as np
import torch

MAX_PIXELS = 25_000_000  # far above any photo worth classifying at 32x32, far below a bomb
MAX_BYTES = 50 * 1024 * 1024


class ImageRefused(ValueError):
    """The upload cannot be used; the message says why."""


def load_image(data: bytes) -> tuple[torch.Tensor, list[str]]:
    """(uint8 tensor 3 x 32 x 32, notes). Raises :class:`ImageRefused` with a clear sentence, whatever the bytes:
    a damaged file makes Pillow raise almost anything (IndexError, struct.error, TypeError, ...) while it decodes
    or converts, and every one of those becomes "this image cannot be read"."""
    try:
        return _load_image(data)
    except ImageRefused:
        raise
    except Exception as e:  # noqa: BLE001 - fuzzed images reach Pillow's corners; none may escape as a traceback
        msg = str(e).splitlines()[0][:100] if str(e) else e.__class__.__name__
        raise ImageRefused(f"this image cannot be read ({e.__class__.__name__}: {msg})") from None


def _load_image(data: bytes) -> tuple[torch.Tensor, list[str]]:
    from PIL import Image, ImageOps, UnidentifiedImageError

    if not data:
        raise ImageRefused("the file is empty")
    if len(data) > MAX_BYTES:
        raise ImageRefused(f"the file is {len(data) / 2**20:.0f} MB; images up to {MAX_BYTES // 2**20} MB are accepted")
    notes: list[str] = []
    old_limit = Image.MAX_IMAGE_PIXELS
    try:
        Image.MAX_IMAGE_PIXELS = MAX_PIXELS
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            try:
                im = Image.open(io.BytesIO(data))
                w, h = im.size
                if w * h > MAX_PIXELS:
                    raise Image.DecompressionBombError("too many pixels")
                n_frames = getattr(im, "n_frames", 1)
                if n_frames > 1:
                    im.seek(0)
                    notes.append(f"animated image with {n_frames} frames: the first frame is used")
                im.load()
            except (Image.DecompressionBombError, Image.DecompressionBombWarning):
                raise ImageRefused(f"the image declares more than {MAX_PIXELS:,} pixels (a decompression bomb?); "
                                   "it was not decoded") from None
            except UnidentifiedImageError:
                raise ImageRefused("this file is not an image Pillow can read (try PNG or JPEG)") from None
            except (OSError, SyntaxError, ValueError) as e:
                msg = str(e).splitlines()[0][:100] if str(e) else e.__class__.__name__
                raise ImageRefused(f"the image data is damaged or truncated ({msg})") from None
    finally:
        Image.MAX_IMAGE_PIXELS = old_limit
    fmt = im.format or "image"
    mode = im.mode
    if mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(im, dtype=np.float64)
        lo, hi = float(arr.min()), float(arr.max())
        arr = np.zeros_like(arr) if hi <= lo else (arr - lo) / (hi - lo) * 255.0
        im = Image.fromarray(arr.round().astype(np.uint8), "L")
        notes.append(f"{mode} image ({'16-bit' if '16' in mode else '32-bit'}) rescaled to 8 bits over its own range")
        mode = "L"
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        bg = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(bg, rgba).convert("RGB")
        notes.append("transparency composited onto white")
    elif mode != "RGB":
        im = im.convert("RGB")
        notes.append({"L": "grayscale copied into R, G and B", "P": "palette image converted to RGB",
                      "1": "black-and-white image converted to RGB", "CMYK": "CMYK converted to RGB"}.get(
            mode, f"{mode} image converted to RGB"))
    w, h = im.size
    if (w, h) != (32, 32):
        side = min(w, h)
        if w != h:
            im = ImageOps.fit(im, (side, side), centering=(0.5, 0.5))
            notes.append(f"{w}x{h} centre-cropped to a square")
        im = im.resize((32, 32), Image.LANCZOS, reducing_gap=3.0 if side > 96 else None)
        notes.append(f"resized from {side}x{side} to 32x32 (the networks' input size)")
    arr = np.asarray(im, dtype=np.uint8).copy()
    notes.insert(0, f"read as {fmt}")
    return torch.from_numpy(arr).permute(2, 0, 1).contiguous(), notes
