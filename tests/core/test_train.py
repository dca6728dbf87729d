"""Training end to end on a tiny ImageFolder: card, weights, resume after a pause, CLI."""

import json

import pytest
import torch

from analysis.cli import main
from analysis.core.train import make_schedule, train
from analysis.core.zoo import load_pretrained, sha256_file
from conftest import make_imagefolder


def test_paper_schedule():
    s = make_schedule("resnet110", None, 390)
    assert (s.iterations, s.milestones, s.warmup_iterations) == (64000, (32000, 48000), 400)
    assert s.lr_at(0) == 0.01 and s.lr_at(400) == 0.1 and abs(s.lr_at(32000) - 0.01) < 1e-12
    assert abs(s.lr_at(63999) - 0.001) < 1e-12
    short = make_schedule("resnet20", 10, 100)
    assert (short.iterations, short.milestones, short.warmup_iterations) == (1000, (500, 750), 0)


def test_train_writes_card_and_weights_and_resumes(tmp_path):
    make_imagefolder(tmp_path / "c10", per_class=16)
    out = tmp_path / "zoo"
    # a time limit of 0 s pauses after the first epoch with a resume point
    assert train(["resnet8"], epochs=3, device="cpu", data=tmp_path / "c10", out=out, batch=32, time_limit=0.0,
                 log=lambda m: None) == {}
    resume = out / ".resume" / "resnet8.pt"
    assert resume.is_file() and torch.load(resume, weights_only=True)["epoch"] == 1
    cards = train(["resnet8"], epochs=3, device="cpu", data=tmp_path / "c10", out=out, batch=32, log=lambda m: None)
    card = cards["resnet8"]
    assert [h["epoch"] for h in card["history"]] == [1, 2, 3]
    assert card["schedule"]["iterations"] == 3 * (160 // 32)
    assert card["sha256"] == sha256_file(out / "resnet8.safetensors")
    assert json.loads((out / "resnet8.json").read_text())["test_error_pct"] == card["test_error_pct"]
    assert not resume.exists()
    m = load_pretrained("resnet8", device="cpu", root=out)
    assert not m.training and m.depth == 8


def test_cli_models_and_evaluate_errors(capsys, tmp_path):
    assert main(["models"]) == 0
    out = capsys.readouterr().out
    assert "resnet20" in out and "test err %" in out
    with pytest.raises(SystemExit) as e:  # checked by the argument parser, before anything is loaded
        main(["evaluate", "resnet9999"])
    assert e.value.code == 2 and "no model 'resnet9999'" in capsys.readouterr().err
    assert main(["evaluate", "resnet20", "--data", str(tmp_path / "none"), "--samples", "10"]) == 2
    assert "RESLENS_DATA" in capsys.readouterr().err


def test_stop_after_epoch_finishes_a_paused_run_and_says_so(tmp_path):
    make_imagefolder(tmp_path / "c10", per_class=8)
    out = tmp_path / "zoo"
    kw = dict(epochs=4, device="cpu", data=tmp_path / "c10", out=out, batch=32, log=lambda m: None)
    assert train(["plain8"], time_limit=0.0, **kw) == {}
    card = train(["plain8"], stop_after_epoch=2, **kw)["plain8"]
    assert len(card["history"]) == 2 and card["stopped_early"]["after_epoch"] == 2
    assert card["stopped_early"]["of_iterations"] == 4 * (80 // 32)
    assert "--stop-after-epoch 2" in card["command"]
    assert load_pretrained("plain8", device="cpu", root=out).depth == 8


def test_gated_dropout_and_bottleneck_nets_train_together_and_reload_to_their_cards(tmp_path):
    """Issue 24's new shortcuts and blocks train in one run (each net its own batches), write cards, and the
    checkpoints reload with their architecture and reproduce the card's test error in a fresh evaluation."""
    from analysis.core import data as D
    from analysis.core.evaluate import evaluate_error

    make_imagefolder(tmp_path / "c10", per_class=8)
    names = ["resnet8-gate-6", "resnet8-shortgate-6", "resnet8-dropout", "resnet11-bottleneck-preact"]
    cards = train(names, epochs=1, device="cpu", data=tmp_path / "c10", out=tmp_path / "zoo", batch=40,
                  log=lambda m: None)
    test = D.load_split("test", tmp_path / "c10")
    for n in names:
        m = load_pretrained(n, device="cpu", root=tmp_path / "zoo")
        assert m.name == n and cards[n]["name"] == n and cards[n]["block"] == ("bottleneck" if "bottleneck" in n else "basic")
        assert evaluate_error(m, test.images, test.labels, torch.device("cpu")) == cards[n]["test_error_pct"]
    gated = load_pretrained("resnet8-gate-6", device="cpu", root=tmp_path / "zoo")
    assert not torch.equal(gated.block(0).gate.bias, torch.full_like(gated.block(0).gate.bias, -6.0))  # it learned
