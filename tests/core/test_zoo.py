"""Checkpoints: save/load round trip, refusal of damaged or mismatched files, shipped cards reproduced."""

import json
import math

import pytest
import torch
from safetensors.torch import save_file

from analysis.core import data as D
from analysis.core.models import build_model
from analysis.core.evaluate import evaluate_error
from analysis.core.zoo import (PRETRAINED, ZOO, CheckpointError, available, read_card, load_pretrained, load_uploaded,
                          save_checkpoint)
from conftest import needs_data, tiny


def test_checkpoint_round_trip(tmp_path):
    m = tiny(True, 14, width=16)
    sha = save_checkpoint(m, tmp_path / "resnet14.safetensors")
    (tmp_path / "resnet14.json").write_text(json.dumps({"sha256": sha, "depth": 14, "residual": True}))
    back = load_pretrained("resnet14", device="cpu", root=tmp_path)
    x = torch.randn(3, 3, 32, 32)
    with torch.no_grad():
        assert torch.equal(back(x), m(x))
    data = (tmp_path / "resnet14.safetensors").read_bytes()
    up, info = load_uploaded(data)  # plain/residual read from the file's metadata
    assert info["depth"] == 14 and info["residual"] is True
    with torch.no_grad():
        assert torch.equal(up(x), m(x))


def test_damaged_file_is_refused(tmp_path):
    m = build_model("resnet20")
    sha = save_checkpoint(m, tmp_path / "resnet20.safetensors")
    (tmp_path / "resnet20.json").write_text(json.dumps({"sha256": sha}))
    p = tmp_path / "resnet20.safetensors"
    raw = bytearray(p.read_bytes())
    raw[-100] ^= 0xFF
    p.write_bytes(bytes(raw))
    with pytest.raises(CheckpointError, match="damaged"):
        load_pretrained("resnet20", device="cpu", root=tmp_path)
    with pytest.raises(CheckpointError, match="truncated or damaged"):
        load_uploaded(bytes(raw[: len(raw) // 2]), residual=True)


def test_unknown_and_wrong_shape_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="unknown model"):
        load_pretrained("resnet32", device="cpu", root=tmp_path)
    with pytest.raises(CheckpointError, match="unknown model name"):
        load_pretrained("densenet", device="cpu", root=tmp_path)
    state = {k: v.clone() for k, v in build_model("resnet20").state_dict().items()}
    state["stage2.block1.conv1.weight"] = torch.zeros(32, 32, 5, 5)
    p = tmp_path / "bad.safetensors"
    save_file(state, str(p))
    with pytest.raises(CheckpointError, match="wrong shape \\(e.g. stage2.block1.conv1.weight"):
        load_uploaded(p.read_bytes(), residual=True)
    with pytest.raises(CheckpointError, match="plain or residual"):
        save_file(build_model("resnet20").state_dict(), str(p))
        load_uploaded(p.read_bytes())
    pickled = tmp_path / "evil.pt"
    torch.save(build_model("resnet20").state_dict(), pickled)
    with pytest.raises(CheckpointError, match="safetensors"):
        load_uploaded(pickled.read_bytes(), residual=True)
    with pytest.raises(CheckpointError, match="no known key layout fits this file: 'w'"):
        save_file({"w": torch.zeros(3)}, str(p))
        load_uploaded(p.read_bytes(), residual=True)
    with pytest.raises(CheckpointError, match="6n\\+2"):
        save_file({"stem.conv.weight": torch.zeros(16, 3, 3, 3), "fc.weight": torch.zeros(10, 64)}, str(p))
        load_uploaded(p.read_bytes(), residual=True)


def test_shipped_cards_are_complete():
    names = available()
    for n in ("plain20", "plain56", "resnet20", "resnet56", "resnet110"):
        assert n in names, f"{n} is not shipped"
    for n in names:
        c = read_card(n).raw
        for key in ("name", "depth", "residual", "shortcut_option", "params", "normalization", "schedule", "history",
                    "train_error_pct", "test_error_pct", "data", "seed", "device", "wall_time_s", "sha256"):
            assert key in c, (n, key)
        assert c["normalization"]["mean"] == list(D.MEAN)
        assert c["params"] == sum(p.numel() for p in build_model(c.get("arch", n)).parameters())
        if c.get("constructed"):  # made, not trained: no schedule, no history, its source named and checksummed
            assert c["schedule"] is None and c["history"] == [] and read_card(c["constructed"]["from"]).sha256 == \
                c["constructed"]["source_sha256"]
        else:
            assert len(c["history"]) == c["schedule"]["epochs"]


@needs_data
@pytest.mark.parametrize("name", [n for n in ZOO if (PRETRAINED / f"{n}.json").is_file()])
def test_card_test_error_reproduced_on_1000_images(name):
    card = read_card(name).raw
    model = load_pretrained(name, device="cpu")
    test = D.load_split("test")
    idx = D.sample_indices(len(test), 1000, seed=123)
    err = evaluate_error(model, test.images[idx], test.labels[idx], torch.device("cpu"))
    p = card["test_error_pct"] / 100
    sigma = 100 * math.sqrt(p * (1 - p) / 1000)  # binomial sampling noise of a 1,000-image subset
    assert abs(err - card["test_error_pct"]) <= 3.5 * sigma + 0.3, (err, card["test_error_pct"], sigma)
