"""Data: finding, decoding, caching and augmenting CIFAR-10."""

import numpy as np
import pytest
import torch

from analysis import data as D
from conftest import make_imagefolder


def test_imagefolder_loader_on_a_tiny_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLENS_CACHE", str(tmp_path / "cache"))
    arrs = make_imagefolder(tmp_path / "c10", per_class=3)
    s = D.load_split("train", tmp_path / "c10")
    assert s.images.dtype == torch.uint8 and s.images.shape == (6, 3, 32, 32)
    assert s.labels.tolist() == [0, 0, 0, 1, 1, 1] and s.classes == ("cat", "dog")
    assert np.array_equal(s.images[4].permute(1, 2, 0).numpy(), arrs["train"][4])  # PNG is lossless
    cached = list((tmp_path / "c10").glob(".reslens-train-*.pt"))
    assert len(cached) == 1
    again = D.load_split("train", tmp_path / "c10")
    assert torch.equal(again.images, s.images) and again.fingerprint == s.fingerprint
    # a changed file list gives another fingerprint, so a stale cache is never used
    (tmp_path / "c10" / "train" / "cat" / "0000.png").unlink()
    assert len(D.load_split("train", tmp_path / "c10")) == 5


def test_damaged_cache_is_rebuilt(tmp_path):
    make_imagefolder(tmp_path / "c10", per_class=2)
    s = D.load_split("test", tmp_path / "c10")
    for p in (tmp_path / "c10").glob(".reslens-test-*.pt"):
        p.write_bytes(b"garbage")
    assert torch.equal(D.load_split("test", tmp_path / "c10").images, s.images)


def test_root_resolution_and_missing_data_message(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLENS_DATA", str(tmp_path / "from_env"))
    assert D.resolve_root(None) == tmp_path / "from_env"
    assert D.resolve_root(str(tmp_path / "arg")) == tmp_path / "arg"
    monkeypatch.delenv("RESLENS_DATA")
    assert str(D.resolve_root(None)) == "data"
    with pytest.raises(D.DataNotFound, match="RESLENS_DATA"):
        D.load_split("test", tmp_path / "nothing")
    found, sentence = D.data_status(tmp_path / "nothing")
    assert not found and "train/ and test/" in sentence


def test_augment_is_a_shifted_crop_or_its_mirror():
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    y = D.augment(x, g)
    assert y.shape == x.shape and y.dtype == x.dtype
    padded = torch.nn.functional.pad(x, (4, 4, 4, 4))
    for n in range(64):
        ok = any(torch.equal(y[n], padded[n, :, dy:dy + 32, dx:dx + 32]) or
                 torch.equal(y[n], padded[n, :, dy:dy + 32, dx:dx + 32].flip(2))
                 for dy in range(9) for dx in range(9))
        assert ok, n
    flipped = sum(not torch.equal(y[n], padded[n, :, 4:36, 4:36]) for n in range(64))
    assert flipped > 32  # most images moved or flipped


def test_normalize_roundtrip():
    x = torch.randint(0, 256, (2, 3, 32, 32), dtype=torch.uint8)
    z = D.normalize(x)
    torch.testing.assert_close(D.denormalize(z), x.float() / 255)
    assert D.NORMALIZATION["mean"] == list(D.MEAN)
