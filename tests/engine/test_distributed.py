"""torchrun: the sharded sweeps write exactly the single process's CSV (gloo on the CPU, 2 ranks), resume
where they stopped, and a failing rank ends the command with one sentence instead of a hang."""

import os
import subprocess
import sys

import pandas as pd
import pytest
import torch

from analysis.engine import distributed as dd
from conftest import ROOT, needs_data

pytestmark = pytest.mark.slow  # torchrun starts processes
ENV = {"OMP_NUM_THREADS": "1", "RESLENS_DIST_TIMEOUT": "120"}  # same threads in every process: same numbers


def _run(args, ranks=1, env=None, check=True):
    cmd = [sys.executable, "-m", "analysis"] if ranks == 1 else \
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(ranks),
         "-m", "analysis"]
    p = subprocess.run(cmd + args, cwd=ROOT, env={**os.environ, **ENV, **(env or {})}, capture_output=True,
                       text=True, timeout=900)
    if check:
        assert p.returncode == 0, p.stderr[-2000:]
    return p


@needs_data
def test_torchrun_two_ranks_write_the_single_process_csvs(tmp_path):
    land = ["landscape", "--models", "plain20,resnet20", "--steps", "3", "--samples", "64", "--device", "cpu"]
    dele = ["deletion", "--models", "resnet20", "--ks", "0,1,3", "--trials", "3", "--samples", "64", "--device", "cpu"]
    for args, csv in ((land, "landscape.csv"), (dele, "deletion_random.csv")):
        one = _run(args + ["--out", str(tmp_path / "one")])
        two = _run(args + ["--out", str(tmp_path / "two")], ranks=2)
        assert "on 2 process(es)" in two.stdout and "on 1 process(es)" in one.stdout
        a, b = pd.read_csv(tmp_path / "one" / csv), pd.read_csv(tmp_path / "two" / csv)
        pd.testing.assert_frame_equal(a, b)
    land_df = pd.read_csv(tmp_path / "one" / "landscape.csv")
    assert len(land_df) == 2 * 9 and set(land_df["model"]) == {"plain20", "resnet20"}
    # the deletion rows are the dashboard's (the same seeded draws as deletion.delete_random)
    from analysis.core.common import eval_sample
    from analysis.analyses.deletion import delete_random
    from analysis.core.zoo import load_pretrained

    ref = delete_random(load_pretrained("resnet20", device="cpu"), eval_sample(64, 0, torch.device("cpu")), "resnet20",
                        ks=[0, 1, 3], trials=3, seed=0)
    got = pd.read_csv(tmp_path / "two" / "deletion_random.csv")
    assert list(got["k"]) == list(ref["k"]) and got["error_pct"].tolist() == pytest.approx(ref["error_pct"].tolist())


@needs_data
def test_a_rerun_skips_the_finished_points(tmp_path):
    args = ["landscape", "--models", "resnet20", "--steps", "3", "--samples", "32", "--device", "cpu",
            "--out", str(tmp_path)]
    first = _run(args)
    assert "(0 finished by an earlier run)" in first.stdout
    df1 = pd.read_csv(tmp_path / "landscape.csv")
    (f,) = tmp_path.glob(".sweep-*/rank0.jsonl")
    lines = f.read_text().splitlines()
    f.write_text("\n".join(lines[:4]) + "\n" + lines[4][:10])  # as if stopped after 4 points, mid-write
    second = _run(args)
    assert "(4 finished by an earlier run)" in second.stdout
    pd.testing.assert_frame_equal(pd.read_csv(tmp_path / "landscape.csv"), df1)


def test_a_failing_rank_ends_every_rank_with_one_sentence(tmp_path):
    script = tmp_path / "fail.py"
    script.write_text(
        "import sys\nsys.path.insert(0, %r)\n" % str(ROOT) +
        "from analysis.engine import distributed as dd\n"
        "w = dd.init('cpu')\n"
        "def work(i, x):\n"
        "    if x == 3:\n"
        "        raise ValueError('item 3 is bad')\n"
        "    return x * x\n"
        "try:\n"
        "    print('result', dd.run_sharded(list(range(6)), work))\n"
        "except dd.RankFailed as e:\n"
        "    print('failed:', e)\n"
        "    sys.exit(3)\n"
        "finally:\n"
        "    dd.finish()\n")
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        str(script)], env={**os.environ, **ENV}, capture_output=True, text=True, timeout=300)
    assert p.returncode != 0
    assert p.stdout.count("rank 1 of 2 failed: ValueError: item 3 is bad") == 2, p.stdout + p.stderr[-1500:]


def test_one_process_needs_no_torchrun_and_shards_round_robin():
    w = dd.World(rank=1, size=3)
    assert [i for i, _ in w.shard(list("abcdefg"))] == [1, 4]
    assert dd.run_sharded([1, 2, 3], lambda i, x: x * 10, dd.World()) == [10, 20, 30]
    with pytest.raises(ValueError):
        dd.run_sharded([1], lambda i, x: (_ for _ in ()).throw(ValueError("x")), dd.World())


@needs_data
def test_torchrun_report_splits_models_x_analyses_and_writes_the_same_files(tmp_path):
    args = ["report", "--models", "plain20,resnet20", "--samples", "32", "--only", "responses,deletion_single,training",
            "--device", "cpu"]
    _run(args + ["--out", str(tmp_path / "one")])
    _run(args + ["--out", str(tmp_path / "two")], ranks=2)
    csvs = sorted(p.name for p in (tmp_path / "one").glob("*.csv"))
    assert {"responses.csv", "deletion_single.csv", "training.csv"} <= set(csvs)
    assert csvs == sorted(p.name for p in (tmp_path / "two").glob("*.csv"))
    for name in csvs:
        assert (tmp_path / "one" / name).read_bytes() == (tmp_path / "two" / name).read_bytes(), name
    import json
    assert json.loads((tmp_path / "two" / "manifest.json").read_text())["processes"] == 2


@needs_data
def test_data_parallel_hessian_vector_products_give_the_single_process_curvature(tmp_path):
    """Each rank takes half of the images of every product; the all_reduce'd sum is the same Hessian, so the
    eigenvalue, the traces and the density agree with one process up to the order of the float sums."""
    args = ["curvature", "--models", "resnet20", "--images", "48", "--max-iter", "3", "--trace-iter", "2",
            "--lanczos-steps", "3", "--device", "cpu"]
    _run(args + ["--out", str(tmp_path / "one")])
    two = _run(args + ["--out", str(tmp_path / "two")], ranks=2)
    assert "split across 2 process(es)" in two.stdout
    for csv, col in (("hessian.csv", "value"), ("hessian_density.csv", "density")):
        a, b = pd.read_csv(tmp_path / "one" / csv), pd.read_csv(tmp_path / "two" / csv)
        assert len(a) == len(b) > 0
        scale = float(a[col].abs().max())  # float32 sums in another order: errors scale with the largest value
        assert a[col].to_numpy() == pytest.approx(b[col].to_numpy(), rel=1e-4, abs=1e-6 * scale)
    h = pd.read_csv(tmp_path / "two" / "hessian.csv")
    assert (h[h.quantity == "eigenvalue"]["value"] > 0).all() and set(h["scope"]) >= {"all", "stage1", "stage3"}


def test_backend_is_nccl_only_with_a_gpu_per_local_rank(monkeypatch):
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    assert dd.backend_for(True) == "gloo" and dd.backend_for(False) == "gloo"
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert dd.backend_for(True) == "nccl"
