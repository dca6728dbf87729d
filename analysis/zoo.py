"""The model zoo: checkpoints in ``pretrained/`` (safetensors weights + a JSON model card).

Weights are only ever read with safetensors, never unpickled, and every zoo file is checked against
the sha256 recorded in its card before it is used.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load as st_load_bytes
from safetensors.torch import load_file, save_file

from .models import UNITS, Arch, CifarResNet, build_model, count_params, parse_name

PRETRAINED = Path(__file__).resolve().parent.parent / "pretrained"
ZOO = ("plain20", "plain56", "plain110", "resnet20", "resnet56", "resnet110")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in one sentence."""


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
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    meta = {"depth": str(model.depth), "residual": str(model.residual).lower(), "option": model.option,
            "arch": model.name}
    meta.update({k: str(v) for k, v in (metadata or {}).items()})
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    save_file(state, str(tmp), metadata=meta)
    tmp.replace(path)
    return sha256_file(path)


def available(root: Path = PRETRAINED) -> list[str]:
    """Names of the shipped checkpoints that have both weights and a card, zoo order first."""
    have = {p.stem for p in root.glob("*.safetensors") if (root / f"{p.stem}.json").is_file()}
    return [n for n in ZOO if n in have] + sorted(have - set(ZOO), key=zoo_order)


def zoo_order(name: str) -> tuple:
    """Sort key: depth, then the units in He et al. 2016's order, then the shortcuts; unknown names last."""
    try:
        a = parse_name(name)
    except ValueError:
        return (1, 0, 0, 0, 0.0, name)
    shortcut = {"A": 0, "B": 1, "conv1x1": 2}[a.option] + (3 + a.scale_branch if a.lam != 1.0 else 0)
    return (0, a.depth, UNITS.index(a.unit), shortcut, a.lam, name)


def load_card(name: str, root: Path = PRETRAINED) -> dict:
    path = root / f"{name}.json"
    if not path.is_file():
        raise CheckpointError(f"no model card for {name!r} in {root}; shipped models: {', '.join(available(root)) or 'none'}")
    return json.loads(path.read_text())


def infer_architecture(state: dict[str, torch.Tensor]) -> tuple[int, str]:
    """(depth, option) from the tensors of a 6n+2 net: n = blocks per stage."""
    blocks = {m.group(1) for k in state if (m := re.match(r"^stage1\.(block\d+)\.conv1\.weight$", k))}
    if not blocks or "stem.conv.weight" not in state or "fc.weight" not in state:
        raise CheckpointError("this file does not hold a ResLens 6n+2 network (no stem.conv, stage1.block*.conv1 or fc tensors)")
    n = len(blocks)
    if "stage1.block0.projection.0.weight" in state:
        option = "conv1x1"
    else:
        option = "B" if any(".projection." in k for k in state) else "A"
    return 6 * n + 2, option


def infer_unit(state: dict[str, torch.Tensor]) -> str | None:
    """The unit when the tensors tell it (full pre-activation has ``bn0`` and a final BN); None when
    they do not (original, bn-after-add, relu-before-add and relu-preact have the same tensors)."""
    if "post.bn.weight" in state or any(re.match(r"^stage\d\.block\d+\.bn0\.", k) for k in state):
        return "full-preact"
    return None


def model_from_state(state: dict[str, torch.Tensor], residual: bool, option: str | None = None,
                     depth: int | None = None, arch: Arch | None = None) -> CifarResNet:
    """Build the net that ``state`` describes (or ``arch`` names) and load it strictly, with a
    one-sentence error on mismatch."""
    inf_depth, inf_option = infer_architecture(state)
    if arch is None:
        arch = Arch(depth or inf_depth, residual, unit=infer_unit(state) or "original", option=option or inf_option)
    depth = arch.depth
    if "fc.weight" in state and tuple(state["fc.weight"].shape) != (10, 64):
        raise CheckpointError(f"the classifier has shape {tuple(state['fc.weight'].shape)}, not (10, 64): "
                              "ResLens needs 10 CIFAR-10 classes and 16/32/64 filters")
    model = build_model(arch)
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"{len(missing)} missing (e.g. {missing[0]})")
        if unexpected:
            parts.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
        raise CheckpointError(f"tensors do not match {arch.name} ({depth} layers, {arch.unit} unit, "
                              f"{arch.shortcut} shortcut): " + ", ".join(parts))
    for k, v in expected.items():
        if tuple(state[k].shape) != tuple(v.shape):
            raise CheckpointError(f"tensor {k} has shape {tuple(state[k].shape)}, expected {tuple(v.shape)} "
                                  f"for a {depth}-layer net")
        if not (state[k].is_floating_point() or k.endswith("num_batches_tracked")):
            raise CheckpointError(f"tensor {k} has dtype {state[k].dtype}, expected floating point")
        if state[k].is_floating_point() and not torch.isfinite(state[k]).all():
            raise CheckpointError(f"tensor {k} holds NaN or infinite values")
    model.load_state_dict({k: state[k].to(v.dtype) for k, v in expected.items()}, strict=True)
    return model


def load_pretrained(name: str, device: str | torch.device | None = None, root: Path = PRETRAINED,
                    verify: bool = True) -> CifarResNet:
    """A shipped model in eval mode on ``device`` (CUDA if available, else CPU), sha256-checked."""
    try:
        arch = parse_name(name)
    except ValueError as e:
        raise CheckpointError(str(e)) from None
    weights = root / f"{name}.safetensors"
    if not weights.is_file():
        raise CheckpointError(f"unknown model {name!r}: shipped models are {', '.join(available(root)) or 'none'}")
    card = load_card(name, root)
    if verify and card.get("sha256") and sha256_file(weights) != card["sha256"]:
        raise CheckpointError(f"{weights.name} is damaged: its sha256 does not match the model card")
    try:
        state = load_file(str(weights))
    except (SafetensorError, OSError, ValueError) as e:
        raise CheckpointError(f"{weights.name} is not a readable safetensors file ({e})") from None
    model = model_from_state(state, residual=arch.residual, arch=arch)
    return model.to(device or default_device()).eval()


def load_uploaded(data: bytes, residual: bool | None = None) -> tuple[CifarResNet, dict]:
    """A user's .safetensors bytes -> (model in eval mode on the CPU, info). Never unpickles.

    ``residual`` is taken from the file's metadata when present (ResLens writes it); plain and residual
    option-A nets have identical tensors, so otherwise the caller must say which it is.
    """
    if len(data) < 8:
        raise CheckpointError("the file is too short to be a safetensors checkpoint")
    try:
        state = st_load_bytes(data)
    except Exception as e:  # safetensors raises several kinds for corrupt headers
        raise CheckpointError(f"not a readable .safetensors file ({str(e).splitlines()[0][:120]}); "
                              "export with safetensors.torch.save_file(model.state_dict(), path)") from None
    meta = {}
    try:
        n = int.from_bytes(data[:8], "little")
        meta = json.loads(data[8:8 + n]).get("__metadata__", {}) or {}
    except Exception:
        meta = {}
    if "arch" in meta:  # written by ResLens: the whole architecture, variants included
        try:
            arch = parse_name(meta["arch"])
        except ValueError:
            arch = None
        if arch is not None:
            model = model_from_state(state, residual=arch.residual, arch=arch)
            return model.eval(), {"depth": model.depth, "residual": model.residual, "option": model.option,
                                  "unit": model.unit, "name": model.name, "params": count_params(model), "metadata": meta}
    if residual is None and "residual" in meta:
        residual = meta["residual"] == "true"
    if residual is None:
        raise CheckpointError("say whether this checkpoint is plain or residual: option-A plain and residual "
                              "nets have identical tensors")
    model = model_from_state(state, residual=residual)
    info = {"depth": model.depth, "residual": residual, "option": model.option, "unit": model.unit,
            "name": model.name, "params": count_params(model), "metadata": meta}
    return model.eval(), info


def fresh_model(name: str, seed: int, device: str | torch.device | None = None) -> CifarResNet:
    """The same architecture freshly initialised with ``seed`` (for 'at initialisation' analyses)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = build_model(name)
    return model.to(device or default_device()).eval()
