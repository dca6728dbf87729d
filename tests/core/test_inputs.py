"""Bad input: every kind of uploaded image and checkpoint gets a note or one clear refusal."""

import io

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from analysis.core.images import ImageRefused, load_image
from analysis.core.models import build_model


def png(arr, mode=None, fmt="PNG", **kw):
    b = io.BytesIO()
    (Image.fromarray(arr, mode) if mode else Image.fromarray(arr)).save(b, format=fmt, **kw)
    return b.getvalue()


def test_plain_rgb_32x32_is_taken_as_is():
    a = np.random.default_rng(0).integers(0, 256, (32, 32, 3), dtype=np.uint8)
    t, notes = load_image(png(a))
    assert t.shape == (3, 32, 32) and np.array_equal(t.permute(1, 2, 0).numpy(), a) and notes == ["read as PNG"]


@pytest.mark.parametrize("kind,expect", [
    ("gray", "grayscale"), ("rgba", "transparency"), ("palette", "palette"), ("16bit", "16-bit"),
    ("big", "resized"), ("wide", "centre-cropped"), ("animated", "first frame"), ("cmyk", "CMYK"),
])
def test_conversions_come_with_a_note(kind, expect):
    rng = np.random.default_rng(1)
    if kind == "gray":
        data = png(rng.integers(0, 256, (32, 32), dtype=np.uint8))
    elif kind == "rgba":
        data = png(rng.integers(0, 256, (32, 32, 4), dtype=np.uint8))
    elif kind == "palette":
        data = png(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) 
        im = Image.open(io.BytesIO(data)).convert("P")
        b = io.BytesIO(); im.save(b, "PNG"); data = b.getvalue()
    elif kind == "16bit":
        b = io.BytesIO(); Image.fromarray(rng.integers(0, 65535, (40, 40), dtype=np.uint16)).save(b, "PNG"); data = b.getvalue()
    elif kind == "big":
        data = png(rng.integers(0, 256, (400, 400, 3), dtype=np.uint8), fmt="JPEG")
    elif kind == "wide":
        data = png(rng.integers(0, 256, (32, 64, 3), dtype=np.uint8))
    elif kind == "animated":
        frames = [Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)) for _ in range(3)]
        b = io.BytesIO(); frames[0].save(b, "GIF", save_all=True, append_images=frames[1:]); data = b.getvalue()
    elif kind == "cmyk":
        b = io.BytesIO(); Image.fromarray(rng.integers(0, 256, (32, 32, 3), dtype=np.uint8)).convert("CMYK").save(b, "JPEG"); data = b.getvalue()
    t, notes = load_image(data)
    assert t.shape == (3, 32, 32) and t.dtype == torch.uint8
    assert any(expect in n for n in notes), notes


def test_refusals():
    a = np.zeros((64, 64, 3), dtype=np.uint8)
    good = png(a)
    with pytest.raises(ImageRefused, match="not an image"):
        load_image(b"this is a text file, not a picture")
    with pytest.raises(ImageRefused, match="damaged or truncated"):
        load_image(good[: len(good) // 2])
    with pytest.raises(ImageRefused, match="empty"):
        load_image(b"")
    # a decompression bomb: a tiny file that declares 30000 x 30000 pixels
    b = io.BytesIO(); Image.new("1", (30000, 30000)).save(b, "PNG"); bomb = b.getvalue()
    assert len(bomb) < 2_000_000
    with pytest.raises(ImageRefused, match="decompression bomb"):
        load_image(bomb)


def test_global_pillow_limit_is_restored():
    before = Image.MAX_IMAGE_PIXELS
    load_image(png(np.zeros((32, 32, 3), dtype=np.uint8)))
    assert Image.MAX_IMAGE_PIXELS == before


def test_uploaded_checkpoint_via_the_ui_helper(tmp_path):
    import ui
    from analysis.core.zoo import CheckpointError

    model = build_model("plain20")
    p = tmp_path / "mine.safetensors"
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(p))
    with pytest.raises(CheckpointError, match="plain or residual"):
        ui.register_upload("mine.safetensors", p.read_bytes(), None)
    name, info = ui.register_upload("mine.safetensors", p.read_bytes(), False)
    assert name.startswith("upload:mine-") and info["depth"] == 20 and info["residual"] is False
    assert ui.arch_name(name) == "plain20" and not ui.is_residual(name)
    m = ui.get_model(name, "cpu")
    x = torch.randn(2, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(m(x), model.eval()(x))
    wrong = {k: v for k, v in model.state_dict().items() if "stage3.block2" not in k}
    save_file(wrong, str(p))
    with pytest.raises(CheckpointError, match="missing|do not match|stages have 3, 3 and 2 blocks"):
        ui.register_upload("wrong.safetensors", p.read_bytes(), True)


def _encoded(fmt: str) -> bytes:
    rng = np.random.default_rng(1)
    img = Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8))
    if fmt == "GIF":
        frames = [img.convert("P"), Image.fromarray(rng.integers(0, 256, (40, 48, 3), dtype=np.uint8)).convert("P")]
        b = io.BytesIO()
        frames[0].save(b, "GIF", save_all=True, append_images=frames[1:])
        return b.getvalue()
    b = io.BytesIO()
    img.save(b, fmt)
    return b.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "GIF", "TIFF", "WEBP", "BMP"])
def test_image_fuzz_every_case_is_converted_or_refused(fmt):
    """Seeded byte flips and truncations: each either converts or is refused in one sentence, never raised."""
    import random

    good = _encoded(fmt)
    rng = random.Random(hash(fmt) % 1000)
    converted = refused = 0
    for i in range(60):
        b = bytearray(good)
        if i % 3 == 2:
            b = b[: rng.randrange(1, len(b))]
        else:
            for _ in range(rng.randint(1, 10)):
                b[rng.randrange(len(b))] = rng.randrange(256)
        try:
            x, notes = load_image(bytes(b))
            assert x.shape == (3, 32, 32) and x.dtype == torch.uint8
            converted += 1
        except ImageRefused as e:
            assert str(e) and "\n" not in str(e)
            refused += 1
    assert converted + refused == 60 and refused > 0
