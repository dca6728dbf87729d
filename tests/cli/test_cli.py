"""The CLI checks every argument before any work, and ends cleanly on Ctrl-C."""

import os
import signal
import subprocess
import sys
import time

import pytest

from analysis.cli import main
from conftest import ROOT, needs_data


@pytest.mark.parametrize("argv, words", [
    (["evaluate", "resnet20", "--samples", "-5"], "--samples: -5 is not a positive number"),
    (["evaluate", "resnet20", "--samples", "many"], "'many' is not a whole number"),
    (["evaluate", "resnet20", "--device", "cuda:7"], "--device: 'cuda:7'"),
    (["evaluate", "resnet20", "--device", "tpu"], "is not a device"),
    (["evaluate", "resnet9999"], "no model 'resnet9999'"),
    (["report", "--models", "resnet20,nonsense", "--out", "x"], "no model 'nonsense'"),
    (["report", "--out", "/proc/reslens-report"], "cannot write in /proc"),
    (["deletion", "--ks", "0,-2", "--out", "x"], "none negative"),
    (["landscape", "--steps", "0", "--out", "x"], "--steps: 0 is not a positive number"),
    (["train", "resnet21"], "depth 21 is not of the form 6n+2"),
    (["train", "resnet20", "--epochs", "-1"], "--epochs: -1 is not a positive number"),
    (["curvature", "--top-k", "0", "--out", "x"], "--top-k: 0 is not a positive number"),
])
def test_bad_arguments_get_one_line_and_exit_2_before_any_work(argv, words, capsys, monkeypatch):
    import analysis.engine.report as report

    monkeypatch.setattr(report, "compute", lambda *a, **k: pytest.fail("work started"))
    with pytest.raises(SystemExit) as e:
        main(argv)
    assert e.value.code == 2
    err = capsys.readouterr().err
    assert words in err and "Traceback" not in err


def test_an_output_folder_behind_a_file_is_refused_before_any_work(tmp_path, capsys):
    (tmp_path / "f").write_text("a file, not a folder")
    with pytest.raises(SystemExit) as e:
        main(["report", "--models", "resnet20", "--out", str(tmp_path / "f" / "report")])
    assert e.value.code == 2 and "is a file, not a folder" in capsys.readouterr().err


@needs_data
def test_ctrl_c_ends_with_one_line_exit_130_and_nothing_written(tmp_path):
    out = tmp_path / "report"
    env = {**os.environ, "RESLENS_RESULTS": "off"}
    p = subprocess.Popen([sys.executable, "-m", "analysis", "report", "--models", "resnet56,resnet110", "--only",
                          "gradients", "--samples", "256", "--out", str(out)], cwd=ROOT, env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(6)  # well into the computing
    assert p.poll() is None, p.communicate()
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=120)
    assert p.returncode == 130
    assert err.rstrip().splitlines()[-1] == "interrupted: nothing was written." and "Traceback" not in err
    assert not out.exists() or not any(out.iterdir())


def test_a_report_is_written_all_or_nothing(tmp_path, monkeypatch):
    """An interruption while the files are written leaves no half report: they are moved into place together."""
    import pandas as pd

    from analysis.engine.report import write_report

    tables = {"a": pd.DataFrame({"x": [1]}), "b": pd.DataFrame({"y": [2]})}
    calls = {"n": 0}
    real = pd.DataFrame.to_csv

    def flaky(self, *a, **k):
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real(self, *a, **k)

    monkeypatch.setattr(pd.DataFrame, "to_csv", flaky)
    with pytest.raises(KeyboardInterrupt):
        write_report(tables, {"analyses": []}, tmp_path / "r")
    assert list((tmp_path / "r").iterdir()) == []  # neither a.csv nor a temporary folder
    monkeypatch.setattr(pd.DataFrame, "to_csv", real)
    paths = write_report(tables, {"analyses": []}, tmp_path / "r")
    assert sorted(p.name for p in paths) == ["a.csv", "b.csv", "manifest.json"]


def test_models_lists_the_variants_not_trained_yet_with_their_command(capsys):
    """Every net the papers' comparisons name is listed: trained ones with their numbers, the others as not trained
    with the command that trains them (never as a zero or a blank)."""
    from analysis.analyses.variants import catalogue
    from analysis.core.zoo import available

    assert main(["models"]) == 0
    out = capsys.readouterr().out
    table, _, rest = out.partition("Not trained yet")
    trained = set(available())
    for n in catalogue():
        line = f"{n} not trained: python -m analysis train {n}"
        if n in trained:
            assert line not in " ".join(rest.split()) and n in table, n
        else:
            assert line in " ".join(rest.split()), n
    assert "resnet110-preact" in rest and "64,000.0" not in table  # iterations as whole numbers
    for n in ("resnet56-gate-6", "resnet56-shortgate-6", "resnet56-dropout", "resnet164-bottleneck", "resnet164-bottleneck-preact"):
        assert f"{n} not trained: python -m analysis train {n}" in " ".join(rest.split())  # issue 24's training order
