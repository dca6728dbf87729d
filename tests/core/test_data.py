"""Data: finding, decoding, caching and augmenting CIFAR-10."""

import numpy as np
import pytest
import torch

from analysis.core import data as D
from conftest import make_imagefolder


def test_imagefolder_loader_on_a_tiny_folder(tmp_path, monkeypatch):
    monkeypatch.setenv("RESLENS_CACHE", str(tmp_path / "cache"))
    arrs = make_imagefolder(tmp_path / "c10", per_class=3)
    s = D.load_split("train", tmp_path / "c10")
    assert s.images.dtype == torch.uint8 and s.images.shape == (30, 3, 32, 32)
    assert s.labels.tolist() == [c for c in range(10) for _ in range(3)] and s.classes == D.CLASSES
    assert np.array_equal(s.images[4].permute(1, 2, 0).numpy(), arrs["train"][4])  # PNG is lossless
    cached = list((tmp_path / "c10").glob(".reslens-train-*.pt"))
    assert len(cached) == 1
    again = D.load_split("train", tmp_path / "c10")
    assert torch.equal(again.images, s.images) and again.fingerprint == s.fingerprint
    # a changed file list gives another fingerprint, so a stale cache is never used
    (tmp_path / "c10" / "train" / "cat" / "0000.png").unlink()
    assert len(D.load_split("train", tmp_path / "c10")) == 29


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


# ---------------------------------------------------------------------------- bad data: refused or skipped, said
def test_a_missing_empty_or_extra_class_folder_is_refused_naming_it(tmp_path):
    make_imagefolder(tmp_path / "c10", per_class=2)
    test = tmp_path / "c10" / "test"
    import shutil

    shutil.rmtree(test / "bird")
    with pytest.raises(D.DataRefused, match=r"test/bird is missing: a CIFAR-10 split needs the ten class folders"):
        D.load_split("test", tmp_path / "c10")
    (test / "bird").mkdir()
    with pytest.raises(D.DataRefused, match=r"test/bird holds no images"):
        D.load_split("test", tmp_path / "c10")
    make_imagefolder(tmp_path / "c10", per_class=2)
    (test / "zebra").mkdir()
    with pytest.raises(D.DataRefused, match=r"test/zebra is not a CIFAR-10 class"):
        D.load_split("test", tmp_path / "c10")


def test_unreadable_images_are_skipped_and_named_up_to_one_percent(tmp_path, caplog):
    arrs = make_imagefolder(tmp_path / "c10", per_class=60)  # 600 images per split
    test = tmp_path / "c10" / "test"
    bad = [test / c / "0007.png" for c in ("cat", "dog", "frog", "ship", "truck")]
    for p in bad:
        p.write_bytes(b"\xff\xd8 not really an image")
    with caplog.at_level("WARNING", logger="reslens"):
        s = D.load_split("test", tmp_path / "c10")
    assert len(s) == 595 and len(s.skipped) == 5 and "cat/0007.png" in s.skipped
    assert "5 unreadable image file(s)" in s.note and "cat/0007.png" in s.note and "595" in s.note
    assert "5 unreadable" in caplog.text
    # the labels of the images that remain are still right (the skipped file's neighbours keep theirs)
    cat = D.CLASSES.index("cat")
    assert int((s.labels == cat).sum()) == 59 and int((s.labels == D.CLASSES.index("dog")).sum()) == 59
    want = [c * 60 + i for c in range(10) for i in range(60)
            if not (D.CLASSES[c] in ("cat", "dog", "frog", "ship", "truck") and i == 7)]
    for k in (100, 250, 594):  # before and after skipped files
        assert np.array_equal(s.images[k].permute(1, 2, 0).numpy(), arrs["test"][want[k]])
    again = D.load_split("test", tmp_path / "c10")  # from memory, then from the cache file in a new process
    assert again.skipped == s.skipped and torch.equal(again.images, s.images)
    from analysis.core.common import eval_sample

    assert "5 unreadable file(s) skipped" in eval_sample(50, 0, torch.device("cpu"), data=tmp_path / "c10").source
    # beyond 1 % of the split, the folder is refused as damaged
    for c in D.CLASSES[:4]:
        (test / c / "0011.png").write_bytes(b"broken")
    with pytest.raises(D.DataRefused, match=r"9 of 600 image files .* cannot be read .* more than 1%"):
        D.load_split("test", tmp_path / "c10")


def test_a_cache_with_the_right_fingerprint_but_wrong_tensors_is_rebuilt(tmp_path, caplog):
    make_imagefolder(tmp_path / "c10", per_class=3)
    good = D.load_split("test", tmp_path / "c10")
    (cache,) = (tmp_path / "c10").glob(".reslens-test-*.pt")
    d = torch.load(cache, weights_only=True)
    poisons = {
        "shuffled labels": {**d, "labels": d["labels"].flip(0)},
        "too few images": {**d, "images": d["images"][:-1], "labels": d["labels"][:-1]},
        "float images": {**d, "images": d["images"].float()},
        "labels out of range": {**d, "labels": d["labels"] + 7},
        "not a dict": [1, 2, 3],
    }
    for what, poisoned in poisons.items():
        D._MEMO.clear()  # a new process: nothing read yet
        torch.save(poisoned, cache)
        caplog.clear()
        with caplog.at_level("WARNING", logger="reslens"):
            got = D.load_split("test", tmp_path / "c10")
        assert torch.equal(got.images, good.images) and torch.equal(got.labels, good.labels), what
        assert "decoding the images again" in caplog.text, what
