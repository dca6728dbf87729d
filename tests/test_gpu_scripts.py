"""The GPU scripts a lent machine runs: valid shell, and the training driver picks the next group of issue 24's order
from the cards in pretrained/ (a dry run trains nothing)."""

import subprocess

from conftest import ROOT


def test_the_gpu_scripts_parse():
    for script in ("benchmarks/gpu_check.sh", "benchmarks/gpu_train.sh"):
        r = subprocess.run(["bash", "-n", script], cwd=ROOT, capture_output=True, text=True)
        assert r.returncode == 0, r.stderr


def test_the_training_driver_starts_with_plain56_on_the_full_recipe():
    """The shipped plain56 ran 143 epochs (55,770 iterations), not the paper's 64k: it is first in the order."""
    from analysis.core.zoo import read_card

    assert read_card("plain56").iterations != 64000
    r = subprocess.run(["bash", "benchmarks/gpu_train.sh", "--dry-run"], cwd=ROOT, capture_output=True, text=True)
    assert r.returncode == 0 and r.stdout.strip() == "next group: plain56", (r.stdout, r.stderr)
