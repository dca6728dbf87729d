"""Bring your own checkpoint: formats, key layouts, normalisation, import, and every refusal in one sentence."""

import io
import json
import os
import random
import struct
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

from analysis.core import checkpoints as C
from analysis.core import zoo
from conftest import tiny

X = torch.randn(16, 3, 32, 32, generator=torch.Generator().manual_seed(0))


def akamaster_keys(state, option_b=False):
    """ResLens names -> akamaster/pytorch_resnet_cifar10 names, as its resnet.py saves them (through DataParallel)."""
    out = {}
    for k, v in state.items():
        k2 = (k.replace("stem.conv.", "conv1.").replace("stem.bn.", "bn1.").replace("fc.", "linear.")
              .replace(".projection.", ".shortcut."))
        for s in (1, 2, 3):
            k2 = k2.replace(f"stage{s}.block", f"layer{s}.")
        out["module." + k2] = v
    return out


def torch_bytes(obj) -> bytes:
    b = io.BytesIO()
    torch.save(obj, b)
    return b.getvalue()


@pytest.fixture(scope="module")
def resnet20():
    return zoo.load_pretrained("resnet20", device="cpu")


def akamaster_th(model, counters=False):
    state = {k: v.clone() for k, v in model.state_dict().items() if counters or not k.endswith("num_batches_tracked")}
    return torch_bytes({"epoch": 200, "state_dict": akamaster_keys(state), "best_prec1": 91.7})


def test_an_akamaster_checkpoint_loads_and_predicts_exactly_like_the_zoo_net(resnet20):
    got = C.load_checkpoint(akamaster_th(resnet20), "resnet20.th", residual=True, normalization="cifar10")
    assert got.layout == "akamaster" and got.arch.name == "resnet20" and got.normalization_source == "your choice"
    assert any("num_batches_tracked" in n for n in got.notes)  # filled, not refused
    assert any("state_dict" in n for n in got.notes) and any("'module.'" in n for n in got.notes)
    with torch.no_grad():
        assert torch.equal(got.model(X), resnet20(X))
    # its own default normalisation is ImageNet's: the same weights then see other inputs
    own = C.load_checkpoint(akamaster_th(resnet20), "resnet20.th", residual=True)
    assert own.normalization == "imagenet" and own.normalization_source == "the layout's default"
    with torch.no_grad():
        assert not torch.allclose(own.model(X), resnet20(X))


def test_torchvision_style_option_b_and_reslens_layouts():
    m = tiny(name="resnet20b", width=16)
    state = {}
    for k, v in m.state_dict().items():
        k2 = k.replace("stem.conv.", "conv1.").replace("stem.bn.", "bn1.").replace(".projection.", ".downsample.")
        for s in (1, 2, 3):
            k2 = k2.replace(f"stage{s}.block", f"layer{s}.")
        state[k2] = v
    got = C.load_checkpoint(torch_bytes(state), "net.pth")
    assert got.layout == "torchvision-cifar" and got.arch.name == "resnet20b" and got.residual_source == "the tensors"
    with torch.no_grad():
        assert torch.equal(got.model(X), m(X))
    # ResLens's own names, no metadata: the user says plain or residual, and it is recorded who decided
    p = tiny(name="plain20", width=16)
    got = C.load_checkpoint(st_save(p.state_dict()), "p.safetensors", residual=False)
    assert got.layout == "reslens" and got.arch.name == "plain20" and got.residual_source == "your choice"


def test_metadata_booleans_are_read_case_insensitively_and_refused_when_neither():
    m = tiny(name="resnet20", width=16)
    for v in ("True", "TRUE", "true", "1"):
        got = C.load_checkpoint(st_save(m.state_dict(), metadata={"residual": v}), "r.safetensors")
        assert got.arch.residual and got.residual_source == "metadata"
    got = C.load_checkpoint(st_save(m.state_dict(), metadata={"residual": "False"}), "r.safetensors", residual=True)
    assert not got.arch.residual and any("overrides your choice" in n for n in got.notes)
    with pytest.raises(C.CheckpointError, match="neither true nor false"):
        C.load_checkpoint(st_save(m.state_dict(), metadata={"residual": "maybe"}), "r.safetensors")


def test_a_pickle_with_a_code_payload_is_refused_and_runs_nothing(tmp_path):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    data = torch_bytes({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": Payload()})
    with pytest.raises(C.CheckpointError, match="never unpickles"):
        C.load_checkpoint(data, "evil.pth", residual=True)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["torchvision_resnet18", "truncated_th", "truncated_safetensors", "huge_header",
                                  "wrong_shape", "nan", "deep", "bad_suffix", "empty", "not_a_dict"])
def test_every_refusal_is_one_sentence(case, resnet20, monkeypatch):
    state = {k: v.clone() for k, v in resnet20.state_dict().items()}
    name, residual = "x.safetensors", True
    if case == "torchvision_resnet18":
        import torchvision

        data, name = torch_bytes(torchvision.models.resnet18().state_dict()), "resnet18.pth"
        match = "no known key layout fits this file: 'layer4"
    elif case == "truncated_th":
        full = akamaster_th(resnet20)
        data, name, match = full[: len(full) // 2], "r.th", "not a readable PyTorch checkpoint"
    elif case == "truncated_safetensors":
        full = st_save(state)
        data, match = full[: len(full) - 1000], "truncated"
    elif case == "huge_header":
        data, match = struct.pack("<Q", 2 ** 60) + b"{}" * 10, "claims"
    elif case == "wrong_shape":
        state["stage2.block1.conv1.weight"] = torch.zeros(32, 32, 5, 5)
        data, match = st_save(state), "wrong shape .*stage2.block1.conv1.weight"
    elif case == "nan":
        state["stage1.block0.bn1.weight"][0] = float("nan")
        data, match = st_save(state), "NaN"
    elif case == "deep":  # 2,000 blocks per stage declared in a small file: refused before anything is built
        fake = {"stem.conv.weight": torch.zeros(16, 3, 3, 3), "fc.weight": torch.zeros(10, 64)}
        for s in (1, 2, 3):
            for b in range(2000):
                fake[f"stage{s}.block{b}.conv1.weight"] = torch.zeros(1)
        data, match = st_save(fake), "12,002 layers"
        monkeypatch.setattr(C, "build_model", lambda *a, **k: pytest.fail("a net was built"))
    elif case == "bad_suffix":
        data, name, match = st_save(state), "weights.pkl", "accepted: .safetensors"
    elif case == "empty":
        data, match = b"", "empty"
    else:
        data, name, match = torch_bytes([torch.zeros(3)]), "list.pt", "no state dict found"
    with pytest.raises(C.CheckpointError, match=match) as e:
        C.load_checkpoint(data, name, residual=residual)
    assert "\n" not in str(e.value) and len(str(e.value)) < 600


def test_low_precision_weights_are_converted_with_a_note(resnet20):
    half = {k: (v.half() if v.is_floating_point() else v) for k, v in resnet20.state_dict().items()}
    got = C.load_checkpoint(st_save(half), "h.safetensors", residual=True)
    assert any("float16 weights converted to float32" in n for n in got.notes)
    assert all(p.dtype == torch.float32 for p in got.model.parameters())


def test_checkpoint_fuzz_every_case_loads_or_is_refused_in_one_sentence():
    m = tiny(name="resnet14", width=16)
    good = st_save(m.state_dict(), metadata={"residual": "true"})
    n = int.from_bytes(good[:8], "little")
    rng = random.Random(0)
    outcomes = {"loaded": 0, "refused": 0}
    for i in range(240):
        b = bytearray(good)
        kind = i % 4
        if kind == 0:  # flips anywhere
            for _ in range(rng.randint(1, 8)):
                b[rng.randrange(len(b))] ^= 1 << rng.randrange(8)
        elif kind == 1:  # flips in the header
            for _ in range(rng.randint(1, 4)):
                b[rng.randrange(8, 8 + n)] ^= 1 << rng.randrange(8)
        elif kind == 2:  # truncation
            b = b[: rng.randrange(0, len(b))]
        else:  # the length prefix
            b[rng.randrange(8)] = rng.randrange(256)
        try:
            C.load_checkpoint(bytes(b), "f.safetensors")
            outcomes["loaded"] += 1
        except C.CheckpointError as e:
            assert "\n" not in str(e)
            outcomes["refused"] += 1
    assert outcomes["refused"] > 100 and sum(outcomes.values()) == 240


def test_import_makes_a_model_that_works_everywhere(tmp_path, monkeypatch, resnet20):
    from analysis.cli import main

    monkeypatch.setattr(zoo, "IMPORTED", tmp_path / "imported")
    th = tmp_path / "resnet20.th"
    th.write_bytes(akamaster_th(resnet20))
    assert main(["import", str(th), "--name", "aka-r20", "--residual", "--normalization", "cifar10",
                 "--samples", "200"]) == 0
    card = json.loads((tmp_path / "imported" / "aka-r20.json").read_text())
    assert card["imported"]["layout"] == "akamaster" and card["arch"] == "resnet20"
    assert card["imported"]["sha256_source"] == __import__("hashlib").sha256(th.read_bytes()).hexdigest()
    assert card["normalization"]["label"] == "cifar10" and card["test_images"] == 200
    assert "aka-r20" in zoo.available()
    m = zoo.load_pretrained("aka-r20", device="cpu")
    with torch.no_grad():
        assert torch.equal(m(X), resnet20(X))
    assert main(["import", str(th), "--name", "resnet20", "--residual"]) == 2  # a shipped name
    assert main(["import", str(th), "--name", "aka", "--normalization", "blue"]) == 2


def test_import_keeps_the_normalisation_and_every_csv_records_it(tmp_path, monkeypatch, resnet20):
    from analysis.core.common import random_sample
    from analysis.engine.registry import Context, get, run_one

    monkeypatch.setattr(zoo, "IMPORTED", tmp_path)
    zoo.import_checkpoint(akamaster_th(resnet20), "r.th", "aka-in", residual=True, samples=50)  # ImageNet's, by default
    m = zoo.load_pretrained("aka-in", device="cpu")
    assert m.normalization == "imagenet"
    a = get("responses")
    out = run_one(a, Context(name="aka-in", model=m, batch=random_sample(8, 0, torch.device("cpu")),
                             params=a.params(**a.quick)))
    assert set(out["responses"]["normalization"]) == {"imagenet"}


# ---------------------------------------------------------------------------- research files, forged files
def _research_checkpoint(model, legacy: bool) -> bytes:
    """What research code saves: the state dict beside an argparse.Namespace and numpy scalars."""
    import argparse

    import numpy as np

    state = {k: v.clone() for k, v in model.state_dict().items() if not k.endswith("num_batches_tracked")}
    obj = {"epoch": 200, "args": argparse.Namespace(arch="resnet20", lr=0.1, depth=20), "best_prec1": np.float64(91.73),
           "lr_history": np.array([0.1, 0.01]), "state_dict": akamaster_keys(state)}
    b = io.BytesIO()
    torch.save(obj, b, _use_new_zipfile_serialization=not legacy)
    return b.getvalue()


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "pre-1.6 format"])
def test_a_checkpoint_with_a_namespace_and_numpy_scalars_is_read_tensors_only(resnet20, legacy):
    data = _research_checkpoint(resnet20, legacy)
    with pytest.raises(Exception):  # what torch.load(weights_only=True) does with such a file
        torch.load(io.BytesIO(data), weights_only=True)
    got = C.load_checkpoint(data, "resnet20.th", residual=True, normalization="cifar10")
    with torch.no_grad():
        assert torch.equal(got.model(X), resnet20(X))
    note = next(n for n in got.notes if n.startswith("ignored the file's other objects"))
    assert "argparse.Namespace" in note and "scalar" in note


@pytest.mark.parametrize("legacy", [False, True], ids=["zip", "pre-1.6 format"])
def test_a_code_payload_is_refused_in_either_format_and_runs_nothing(tmp_path, legacy):
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    class Sneaky:  # a class that looks like data but whose reconstruction is a function call
        def __reduce__(self):
            return (eval, ("__import__('os').system('touch %s')" % marker,))

    for payload in (Payload(), Sneaky()):
        b = io.BytesIO()
        torch.save({"state_dict": {"conv1.weight": torch.zeros(1)}, "x": payload}, b,
                   _use_new_zipfile_serialization=not legacy)
        with pytest.raises(C.CheckpointError, match="never runs code from a file") as e:
            C.load_checkpoint(b.getvalue(), "evil.pth", residual=True)
        assert "\n" not in str(e.value) and "\x1b" not in str(e.value)
    assert not marker.exists()


def _forged_pickle(numel: int, legacy: bool) -> bytes:
    """A pickle whose one tensor declares ``numel`` float32 values in storage '0' (persistent id as torch.save
    writes it)."""
    import collections
    import pickle

    class Storage:
        pass

    class Tensor:
        def __reduce__(self):
            return (torch._utils._rebuild_tensor_v2, (Storage(), 0, (numel,), (1,), False, collections.OrderedDict()))

    class P(pickle.Pickler):
        def persistent_id(self, obj):
            if isinstance(obj, Storage):
                pid = ("storage", torch.FloatStorage, "0", "cpu", numel)
                return pid + (None,) if legacy else pid
            return None

    b = io.BytesIO()
    P(b, protocol=2).dump({"stem.conv.weight": Tensor()})
    return b.getvalue()


def test_a_small_file_that_declares_a_huge_tensor_is_refused_before_anything_is_allocated():
    """A 1 MB zip whose compressed record expands to 256 MB, and an old-format file that declares 64 M values
    with 16 bytes behind them: refused in one sentence, and reading them does not raise the process's peak
    memory (measured in a fresh process)."""
    import struct
    import subprocess
    import sys
    import zipfile

    n = 64 * 2 ** 20  # float32 values: 256 MB
    zb = io.BytesIO()
    with zipfile.ZipFile(zb, "w") as z:
        z.writestr("archive/data.pkl", _forged_pickle(n, legacy=False))
        z.writestr("archive/byteorder", b"little")
        info = zipfile.ZipInfo("archive/data/0")
        info.compress_type = zipfile.ZIP_DEFLATED
        with z.open(info, "w", force_zip64=True) as f:
            chunk = bytes(16 * 2 ** 20)
            for _ in range(16):
                f.write(chunk)
    zip_bomb = zb.getvalue()
    assert len(zip_bomb) < 2 * 2 ** 20
    import pickle

    from analysis.core.torchfile import LEGACY_MAGIC

    legacy = b"".join(pickle.dumps(x, protocol=2) for x in (LEGACY_MAGIC, 1001, {"little_endian": True}))
    legacy += _forged_pickle(n, legacy=True) + pickle.dumps(["0"], protocol=2) + struct.pack("<q", n) + bytes(16)
    for data, words in ((zip_bomb, "is compressed"), (legacy, "declares 67,108,864 values but the file holds 16 bytes")):
        with pytest.raises(C.CheckpointError, match=words) as e:
            C.load_checkpoint(data, "bomb.pt", residual=True)
        assert "\n" not in str(e.value)
    probe = ("import io,resource,sys; from analysis.core import checkpoints as C; d=open(sys.argv[1],'rb').read();"
             "before=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
             "try: C.load_checkpoint(d,'bomb.pt',residual=True)\nexcept C.CheckpointError: pass\n"
             "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss-before)")
    import tempfile

    for data in (zip_bomb, legacy):
        with tempfile.NamedTemporaryFile(suffix=".pt") as f:
            f.write(data)
            f.flush()
            out = subprocess.run([sys.executable, "-c", probe, f.name], capture_output=True, text=True,
                                 cwd=Path(__file__).resolve().parents[2], timeout=300)
            assert out.returncode == 0, out.stderr
            grew_kb = int(out.stdout.strip().splitlines()[-1])
            assert grew_kb < 50 * 1024, f"peak memory rose by {grew_kb / 1024:.0f} MB"


@pytest.mark.skipif(not __import__("conftest").HAVE_DATA, reason="CIFAR-10 not found")
def test_an_import_near_chance_is_flagged_and_its_card_command_remakes_it(tmp_path, monkeypatch, resnet20, capsys):
    """The zoo's resnet20 in akamaster's layout imported with --plain scores near chance: the import says it was
    probably read wrongly and why; the card's command is the one that ran, and running it again makes the same
    model."""
    import shlex

    from analysis.cli import main

    monkeypatch.setattr(zoo, "IMPORTED", tmp_path / "imported")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "r20.th").write_bytes(akamaster_th(resnet20))
    assert main(["import", "r20.th", "--name", "as-plain", "--plain", "--normalization", "cifar10",
                 "--samples", "300"]) == 0
    err = capsys.readouterr().err
    card = json.loads((tmp_path / "imported" / "as-plain.json").read_text())
    assert card["test_error_pct"] >= 80.0
    assert "near chance" in card["warning"] and "it may be a residual net" in card["warning"]
    assert "warning: " in err and "near chance" in err
    cmd = card["command"]
    assert cmd == "python -m analysis import r20.th --name as-plain --plain --normalization cifar10 --samples 300"
    # the same command again (under another name) makes the same model
    args = shlex.split(cmd)[3:]
    args[args.index("--name") + 1] = "again"
    assert main(args) == 0
    again = json.loads((tmp_path / "imported" / "again.json").read_text())
    assert again["test_error_pct"] == card["test_error_pct"] and again["arch"] == card["arch"] == "plain20"
    a, b = zoo.load_pretrained("as-plain", device="cpu"), zoo.load_pretrained("again", device="cpu")
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))
    # read as residual, as it is, it scores like the zoo's own net and gets no warning
    assert main(["import", "r20.th", "--name", "right", "--residual", "--normalization", "cifar10",
                 "--samples", "300"]) == 0
    right = json.loads((tmp_path / "imported" / "right.json").read_text())
    assert right["test_error_pct"] < 25.0 and right["warning"] == ""
