"""The model zoo: checkpoints in ``pretrained/`` (safetensors weights + a JSON model card).

Weights are only ever read with safetensors, never unpickled, and every zoo file is checked against
the sha256 recorded in its card before it is used.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

import pandas as pd

from .arch import UNITS, Arch, parse_name
from .cards import ModelCard, read_card_file
from .cards import table as card_table
from .models import CifarResNet, build_model, count_params

PRETRAINED = Path(__file__).resolve().parents[2] / "pretrained"  # analysis/core/zoo.py -> the project root
# Checkpoints a user imported (``python -m analysis import``, or Import on the Home page): they survive
# restarts and work everywhere a shipped model does. $RESLENS_IMPORTED, else ~/.reslens/models.
IMPORTED = Path(os.environ.get("RESLENS_IMPORTED", Path.home() / ".reslens" / "models"))
ZOO = ("plain20", "plain56", "plain110", "resnet20", "resnet56", "resnet110")


from .checkpoints import CheckpointError  # noqa: E402  (one error class for every checkpoint problem)


def default_device() -> torch.device:
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def save_checkpoint(model: CifarResNet, path: Path, metadata: dict | None = None) -> str:
    """Write float32 weights and buffers as safetensors; returns the file's sha256."""
    state = {k: v.detach().to("cpu").float().contiguous() if v.is_floating_point() else v.detach().cpu().contiguous()
             for k, v in model.state_dict().items()}
    meta = {"depth": str(model.depth), "residual": str(model.residual).lower(), "option": model.option,
            "arch": model.name}
    if not model.input_norm.identity:
        meta["normalization"] = ",".join(f"{v:g}" for v in model.input_norm.mean) + "/" + ",".join(
            f"{v:g}" for v in model.input_norm.std)
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return sha256_file(path)


def _names_in(root: Path) -> set[str]:
    return {p.stem for p in root.glob("*.safetensors") if (root / f"{p.stem}.json").is_file()} if root.is_dir() else set()


def available(root: Path = PRETRAINED, imported: bool = True) -> list[str]:
    """Names of the shipped checkpoints that have both weights and a card, zoo order first, then the
    imported ones (when ``root`` is the shipped zoo)."""
    have = _names_in(root)
    out = [n for n in ZOO if n in have] + sorted(have - set(ZOO), key=zoo_order)
    if imported and root == PRETRAINED:
        out += sorted(_names_in(IMPORTED) - have)
    return out


def root_of(name: str, root: Path = PRETRAINED) -> Path:
    """Where a model's files are: the shipped zoo, else the imported models."""
    if (root / f"{name}.json").is_file() or root != PRETRAINED:
        return root
    return IMPORTED if (IMPORTED / f"{name}.json").is_file() else root


def is_imported(name: str) -> bool:
    return root_of(name) == IMPORTED and (IMPORTED / f"{name}.json").is_file()


def arch_of(name: str, root: Path | None = None) -> Arch:
    """The architecture of a shipped or imported model: its name in the grammar, else (an imported or a constructed
    model, whose name may be anything) the architecture its card records."""
    if root is None and is_imported(name) or root == IMPORTED:
        return read_card(name).arch
    root = PRETRAINED if root is None else root
    try:
        return parse_name(name)
    except ValueError:
        if (root / f"{name}.json").is_file():
            return read_card(name, root).arch
        raise


def zoo_order(name: str) -> tuple:
    """Sort key: depth, then the units in He et al. 2016's order, then the shortcuts; unknown names last."""
    try:
        a = parse_name(name)
    except ValueError:
        return (1, 0, 0, 0, 0.0, name)
    shortcut = {"A": 0, "B": 1, "conv1x1": 2}[a.option] + (3 + a.scale_branch if a.lam != 1.0 else 0)
    return (0, a.depth, UNITS.index(a.unit), shortcut, a.lam, name)


def read_card(name: str, root: Path = PRETRAINED) -> ModelCard:
    """The model card of a shipped or imported model, as one typed record (:class:`cards.ModelCard`)."""
    path = root_of(name, root) / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"no model card for {name!r} in {root}; shipped models: {', '.join(available(root)) or 'none'}")
    try:
        return read_card_file(path, name)
    except (ValueError, KeyError, TypeError) as e:
        raise CheckpointError(f"the model card {path.name} cannot be read ({e.__class__.__name__}: {e})") from None


def zoo_table(names: list[str] | None = None, root: Path = PRETRAINED) -> pd.DataFrame:
    """The zoo as one table, a row per model card (every model unless ``names`` says which); models whose card
    cannot be read are left out."""
    cards = []
    for n in available(root) if names is None else names:
        try:
            cards.append(read_card(n, root))
        except CheckpointError:
            continue
    return card_table(cards)


def schedule_note(names, root: Path = PRETRAINED) -> str:
    """One sentence when the trained nets among ``names`` ran different schedules (their errors then differ by the
    schedule as well as by the architecture); "" when they ran the same, or fewer than two were trained here.

        >>> schedule_note(["plain20", "resnet20"])
        ''
        >>> schedule_note(["plain56", "resnet56"])[:73]
        'These nets ran different schedules: plain56 143 epochs (55,770 iterations'
    """
    runs: dict[tuple[int, int], list[str]] = {}
    for n in names:
        try:
            c = read_card(n, root)
        except (CheckpointError, ValueError):
            continue
        if c.iterations and c.epochs:
            runs.setdefault((int(c.iterations), int(c.epochs)), []).append(n)
    if len(runs) < 2:
        return ""
    groups = sorted(runs.items())
    parts = [f"{', '.join(ns)} {ep} epochs ({it:,} iterations)" for (it, ep), ns in groups]
    (lo, _), (hi, _) = groups[0][0], groups[-1][0]
    return ("These nets ran different schedules: " + "; ".join(parts) + f". The longest had {(hi / lo - 1) * 100:.0f} % more "
            "iterations than the shortest, so part of a difference in their errors may come from the schedule, not "
            "from the architecture.")


def pairs(names) -> list[tuple[str, str, int]]:
    """(plain, residual, depth) for every plain net and every original-unit, identity-shortcut residual net of the
    same depth and block (basic or bottleneck) among ``names`` (the comparison the papers make); names outside the
    grammar are left out."""
    archs = {}
    for n in names:
        try:
            archs[n] = arch_of(n)
        except (ValueError, CheckpointError):
            continue
    plain = [n for n, a in archs.items() if not a.residual]
    res = [n for n, a in archs.items() if a.residual and a.unit == "original" and a.shortcut_token == "identity"]
    return [(p, r, archs[p].depth) for p in plain for r in res
            if (archs[p].depth, archs[p].bottleneck) == (archs[r].depth, archs[r].bottleneck)]


def model_from_state(state: dict[str, torch.Tensor], arch: Arch) -> CifarResNet:
    """Build ``arch`` and load ``state`` into it strictly, after the checks every checkpoint gets
    (:func:`checkpoints.check_tensors`: every problem of the file in one sentence)."""
    from .checkpoints import check_tensors

    model = build_model(arch)
    state, _ = check_tensors(state, model)
    model.load_state_dict(state, strict=True)
    return model


def load_pretrained(name: str, device: str | torch.device | None = None, root: Path = PRETRAINED,
                    verify: bool = True) -> CifarResNet:
    """A shipped model in eval mode on ``device`` (CUDA if available, else CPU), sha256-checked."""
    root = root_of(name, root)
    try:
        arch = arch_of(name, root)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    weights = root / f"{name}.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"unknown model {name!r}: shipped models are {', '.join(available(root)) or 'none'}")
    card = read_card(name, root)
    if verify and card.sha256 and sha256_file(weights) != card.sha256:
        raise CheckpointError(f"{weights.name} is damaged: its sha256 does not match the model card")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights.name} is not a readable safetensors file ({e})") from None
    model = model_from_state(state, arch)
    norm = card.normalization
    if isinstance(norm, dict) and norm.get("mean") and norm.get("std"):
        model.input_norm.set(norm["mean"], norm["std"])
    return model.to(device or default_device()).eval()


def load_uploaded(data: bytes, residual: bool | None = None, file_name: str = "upload.safetensors",
                  normalization: str | None = None) -> tuple[CifarResNet, dict]:
    """A user's checkpoint bytes -> (model in eval mode on the CPU, info). Never unpickles: see
    :mod:`analysis.core.checkpoints` for the formats and key layouts it reads."""
    from .checkpoints import load_checkpoint

    loaded = load_checkpoint(data, file_name, residual=residual, normalization=normalization)
    return loaded.model, loaded.info()


def fresh_model(name: str, seed: int, device: str | torch.device | None = None) -> CifarResNet:
    """The same architecture freshly initialised with ``seed`` (for 'at initialisation' analyses)."""
    from .common import seeded_global_rng

    with seeded_global_rng(seed):  # never interleaved with another thread's seeded draws
        model = build_model(name)
    return model.to(device or default_device()).eval()


NAME_OK = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,39}$")


def import_command(file_name: str, name: str, residual: bool | None = None, normalization: str | None = None,
                   samples: int | None = None) -> str:
    """The ``python -m analysis import`` command that makes exactly this import (recorded in the card)."""
    import shlex

    parts = ["python", "-m", "analysis", "import", file_name, "--name", name]
    if residual is not None:
        parts.append("--residual" if residual else "--plain")
    if normalization:
        parts += ["--normalization", normalization]
    if samples:
        parts += ["--samples", str(samples)]
    return " ".join(shlex.quote(p) for p in parts)


def import_checkpoint(data: bytes, file_name: str, name: str, residual: bool | None = None,
                      normalization: str | None = None, samples: int | None = None, data_root=None,
                      device: str | torch.device | None = None, out: Path | None = None, progress=None) -> dict:
    """Convert any accepted checkpoint into a ResLens safetensors file plus a card in the imported models
    (``$RESLENS_IMPORTED``), with its test error measured as ``evaluate`` measures it. Returns the card; its
    ``warning`` is a sentence when the error is near chance (the file was probably read wrongly)."""
    from datetime import datetime, timezone

    from . import data as D
    from .checkpoints import load_checkpoint, plausibility_warning
    from .evaluate import evaluate_error

    if not NAME_OK.match(name or ""):
        raise CheckpointError(f"name {name!r}: use 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit")
    if name in _names_in(PRETRAINED):
        raise CheckpointError(f"{name!r} is a shipped model; choose another name")
    out = Path(out) if out is not None else IMPORTED
    loaded = load_checkpoint(data, file_name, residual=residual, normalization=normalization)
    model = loaded.model
    dev = torch.device(device) if device else default_device()
    test = D.load_split("test", data_root, download=True, progress=progress is not None)
    idx = D.sample_indices(len(test), samples, 0)
    err = evaluate_error(model.to(dev), test.images[idx], test.labels[idx], device=dev)
    model = model.cpu()
    info = loaded.info()
    card = {
        "name": name, "arch": loaded.arch.name, **loaded.arch.describe(), "params": count_params(model),
        "normalization": {"mean": list(model.input_norm.mean), "std": list(model.input_norm.std),
                          "label": loaded.normalization, "source": loaded.normalization_source},
        "imported": {"file": file_name, "sha256_source": loaded.sha256, "format": loaded.file_format,
                     "layout": loaded.layout, "residual_source": loaded.residual_source, "notes": loaded.notes,
                     "when": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "test_error_pct": err, "test_images": len(idx), "train_error_pct": None,
        "error_note": "test error measured at import (eval mode, bf16 autocast) on the JPEG copy of CIFAR-10; the "
                      "training error is not known for an imported checkpoint",
        "history": [], "schedule": None, "device": str(dev), "torch": torch.__version__,
        "command": import_command(file_name, name, residual=residual, normalization=normalization, samples=samples),
        "warning": plausibility_warning(err, info),
    }
    out.mkdir(parents=True, exist_ok=True)
    card["sha256"] = save_checkpoint(model, out / f"{name}.safetensors", {"name": name})
    (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return {**card, "info": info}


def construct_model(source: str, depth: int, name: str, out: Path | None = None, samples: int | None = None,
                    train_samples: int | None = None, data_root=None, device: str | torch.device | None = None,
                    progress=None) -> dict:
    """The constructed solution as a model of the zoo (:mod:`analysis.core.construct`): ``source`` with identity
    blocks added up to ``depth``, written as ``name`` (safetensors and a card saying how it was made) in ``out``
    (default: the imported models). Its error and the source's are measured the same way, in float32, on the test
    images and on the training images (``samples`` / ``train_samples``: seeded subsets; default all), so that the
    card shows them equal. Returns the card."""
    import time
    from datetime import datetime, timezone

    from . import data as D
    from .construct import construct_deeper
    from .evaluate import evaluate_error

    if not NAME_OK.match(name or ""):
        raise CheckpointError(f"name {name!r}: use 1-40 letters, digits, '_', '.' or '-', starting with a letter or digit")
    if name in available() and name != source:
        raise CheckpointError(f"{name!r} is already a model; choose another name")
    dev = torch.device(device) if device else default_device()
    src = load_pretrained(source, device=dev)
    deep, new = construct_deeper(src, depth)
    errors, started, data = {}, time.perf_counter(), {}
    for split_name, n in (("test", samples), ("train", train_samples)):
        split = D.load_split(split_name, data_root, download=True, progress=progress is not None)
        data.update({"source": split.source.split(":", 1)[0], f"{split_name}_fingerprint": split.fingerprint})
        idx = D.sample_indices(len(split), n, 0)
        for who, m in (("source", src), ("constructed", deep)):
            errors[(who, split_name)] = evaluate_error(m, split.images[idx], split.labels[idx], device=dev, bf16=False)
        errors[("images", split_name)] = len(idx)
    src_card = read_card(source)
    card = {
        "name": name, "arch": deep.name, **deep.arch.describe(), "params": count_params(deep),
        "normalization": src_card.normalization,
        "constructed": {"from": source, "source_arch": src.name, "source_sha256": src_card.sha256,
                        "source_depth": src.depth, "new_blocks": new,
                        "how": "the source's trained blocks in place, an identity block after them in each stage "
                               "(analysis/core/construct.py)",
                        "source_test_error_pct": errors[("source", "test")],
                        "source_train_error_pct": errors[("source", "train")],
                        "when": datetime.now(timezone.utc).isoformat(timespec="seconds")},
        "test_error_pct": errors[("constructed", "test")], "test_images": errors[("images", "test")],
        "train_error_pct": errors[("constructed", "train")], "train_images": errors[("images", "train")],
        "error_note": "both nets measured here in float32, eval mode, on the images named under data",
        "data": {**data, "train_images": errors[("images", "train")], "test_images": errors[("images", "test")]},
        "seed": 0, "history": [], "schedule": None, "device": str(dev), "torch": torch.__version__,
        "wall_time_s": round(time.perf_counter() - started, 1),
        "command": f"python -m analysis construct {source} --depth {depth} --name {name}"
                   + (f" --samples {samples}" if samples else "") + (f" --train-samples {train_samples}" if train_samples
                                                                      else ""),
    }
    out = Path(out) if out is not None else IMPORTED
    out.mkdir(parents=True, exist_ok=True)
    card["sha256"] = save_checkpoint(deep.cpu(), out / f"{name}.safetensors", {"name": name})
    (out / f"{name}.json").write_text(json.dumps(card, indent=1) + "\n")
    return card
