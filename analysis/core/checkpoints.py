"""Bring your own checkpoint: read the files researchers have, in the layouts of the public CIFAR ResNet code.

Formats: ``.safetensors``, and ``.pt`` / ``.pth`` / ``.th`` / ``.ckpt`` (``torch.save``'s zip format and the old
pre-1.6 one) read **only** by :mod:`analysis.core.torchfile`: a restricted unpickler that builds tensors and plain
containers, turns any other class (an ``argparse.Namespace``, numpy scalars) into an inert placeholder that is
dropped, refuses every function, and checks every storage's declared size against the bytes really in the file
before allocating it, so no code in a file ever runs and a small file cannot claim gigabytes. The usual containers
are unwrapped (``state_dict``, ``model_state_dict``, ``model``, ``net``, ``module``) and the prefixes
``module.`` (DataParallel), ``_orig_mod.`` (torch.compile) and ``model.`` (Lightning) removed.

Key layouts (each a declared list of renaming rules; the first under which every key has a place wins):

* ``reslens``: ResLens's own names (``stem.conv``, ``stage1.block0.conv1``, ``fc``, ...).
* ``akamaster``: akamaster/pytorch_resnet_cifar10 (``conv1``, ``bn1``, ``layer{1,2,3}.{i}.conv1``, ...,
  ``linear``; option A has no shortcut tensors, option B ``shortcut.0/1``). Trained with ImageNet's mean/std.
* ``torchvision-cifar``: torchvision-style CIFAR ResNets (``conv1``, ``bn1``, ``layer*``, ``fc``, option B as
  ``downsample.0/1`` or ``shortcut.0/1``). Assumed trained with CIFAR-10's mean/std.

Everything is checked before a net is built: the depth against :data:`MAX_DEPTH`, a safetensors header
against the file's size, the classifier's shape, then every tensor's shape, dtype and finiteness, with all
problems of a file reported in one sentence. Missing ``num_batches_tracked`` counters (older PyTorch) are
filled with zeros, as ``load_state_dict`` itself would accept; float16, bfloat16 and float64 weights are
converted to float32, with a note.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field

import torch

from .arch import Arch, parse_name
from .models import NORMALIZATIONS, CifarResNet, build_model, count_params, normalization_label

MAX_DEPTH = 1202  # the deepest net He et al. 2015 trained on CIFAR-10; deeper declarations are refused unbuilt
MAX_BYTES = 64 * 1024 * 1024
FORMATS = (".safetensors", ".pt", ".pth", ".th", ".ckpt")
CONTAINERS = ("state_dict", "model_state_dict", "model", "net", "module", "network")
PREFIXES = ("module.", "_orig_mod.", "model.")


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message says why in one sentence."""


CheckpointRefused = CheckpointError


@dataclass(frozen=True)
class Layout:
    name: str
    description: str
    normalization: str  # the layout's default input normalisation (a key of models.NORMALIZATIONS)
    rules: tuple[tuple[str, str], ...]  # (regex on the file's key, replacement giving ResLens's key)

    def rename(self, key: str) -> str | None:
        for pattern, repl in self.rules:
            if re.fullmatch(pattern, key):
                return re.sub(pattern, repl, key)
        return None


_BLOCK = r"(conv1|bn1|conv2|bn2|conv3|bn3|bn0|gate)"
_BN = r"(weight|bias|running_mean|running_var|num_batches_tracked)"
# The stem and the blocks as torch-style CIFAR ResNet code names them (conv1, bn1, layer{1,2,3}.{i}.*).
_LAYER_RULES = (
    (r"conv1\.weight", r"stem.conv.weight"),
    (r"bn1\." + _BN, r"stem.bn.\1"),
    (r"layer([123])\.(\d+)\.(conv1|bn1|conv2|bn2)\.(.+)", r"stage\1.block\2.\3.\4"),
)
LAYOUTS: tuple[Layout, ...] = (
    Layout("reslens", "ResLens's own names: stem.conv, stem.bn, stage{1,2,3}.block{i}.conv1/bn1/conv2/bn2, fc",
           "cifar10", (
               (r"stem\.(conv|bn)\.(.+)", r"stem.\1.\2"),
               (rf"stage([123])\.block(\d+)\.{_BLOCK}\.(.+)", r"stage\1.block\2.\3.\4"),
               (r"stage([123])\.block(\d+)\.projection\.([01])\.(.+)", r"stage\1.block\2.projection.\3.\4"),
               (r"post\.bn\.(.+)", r"post.bn.\1"),
               (r"fc\.(weight|bias)", r"fc.\1"),
           )),
    Layout("akamaster", "akamaster/pytorch_resnet_cifar10: conv1, bn1, layer{1,2,3}.{i}.conv1/bn1/conv2/bn2, "
                        "shortcut.0/1 (option B), linear", "imagenet", _LAYER_RULES + (
               (r"layer([123])\.(\d+)\.shortcut\.([01])\.(.+)", r"stage\1.block\2.projection.\3.\4"),
               (r"linear\.(weight|bias)", r"fc.\1"),
           )),
    Layout("torchvision-cifar", "torchvision-style CIFAR ResNets: conv1, bn1, layer{1,2,3}.{i}.conv1/bn1/conv2/bn2, "
                                "downsample.0/1 or shortcut.0/1 (option B), fc", "cifar10", _LAYER_RULES + (
               (r"layer([123])\.(\d+)\.(?:downsample|shortcut)\.([01])\.(.+)", r"stage\1.block\2.projection.\3.\4"),
               (r"fc\.(weight|bias)", r"fc.\1"),
           )),
)
KNOWN = "; ".join(f"{l.name} ({l.description})" for l in LAYOUTS)


@dataclass
class Loaded:
    """A checkpoint read and checked: the model (eval mode, CPU) and everything the user should see."""

    model: CifarResNet
    arch: Arch
    layout: str
    normalization: str
    normalization_source: str  # "metadata", "your choice" or "the layout's default"
    residual_source: str  # "metadata", "your choice" or "the tensors" (option B / conv1x1 / pre-activation)
    file_format: str
    sha256: str
    notes: list[str] = field(default_factory=list)
    metadata: dict = field(default_factory=dict)

    def info(self) -> dict:
        return {"name": self.arch.name, "depth": self.arch.depth, "residual": self.arch.residual,
                "option": self.arch.option, "unit": self.arch.unit, "params": count_params(self.model),
                "layout": self.layout, "normalization": self.normalization,
                "normalization_source": self.normalization_source, "residual_source": self.residual_source,
                "format": self.file_format, "sha256": self.sha256, "notes": list(self.notes), "metadata": self.metadata}


# ---------------------------------------------------------------------------- reading the bytes
def _first_line(e: BaseException, limit: int = 160) -> str:
    """The first line of an error's text, printable (no terminal escapes) and cut at a word."""
    from .torchfile import _clean

    s = str(e).strip().splitlines()
    return _clean(s[0] if s else e.__class__.__name__, limit)


def _read_safetensors(data: bytes) -> tuple[dict[str, torch.Tensor], dict]:
    from safetensors.torch import load as st_load

    if len(data) < 8:
        raise CheckpointRefused("the file is too short to be a safetensors checkpoint")
    n = int.from_bytes(data[:8], "little")
    if n > len(data) - 8:
        raise CheckpointRefused(f"the safetensors header claims {n:,} bytes but the file has only {len(data) - 8:,} "
                                "after it: the file is truncated or not a safetensors file")
    try:
        header = json.loads(data[8:8 + n])
    except (UnicodeDecodeError, json.JSONDecodeError) as e:
        raise CheckpointRefused(f"the safetensors header is not valid JSON ({_first_line(e)})") from None
    if not isinstance(header, dict):
        raise CheckpointRefused("the safetensors header is not a JSON object")
    meta = header.pop("__metadata__", None) or {}
    end = max((int(v.get("data_offsets", [0, 0])[1]) for v in header.values() if isinstance(v, dict)), default=0)
    if end != len(data) - 8 - n:
        raise CheckpointRefused(f"the safetensors header describes {end:,} bytes of tensors but the file holds "
                                f"{len(data) - 8 - n:,}: truncated or damaged")
    try:
        state = st_load(data)
    except Exception as e:  # noqa: BLE001 - safetensors raises several kinds for damaged files
        raise CheckpointRefused(f"not a readable .safetensors file ({_first_line(e)})") from None
    return state, {str(k): str(v) for k, v in meta.items()} if isinstance(meta, dict) else {}


def _read_torch(data: bytes) -> tuple[object, list[str]]:
    from .torchfile import TorchFileRefused, load

    try:
        return load(data)
    except TorchFileRefused as e:
        raise CheckpointRefused(str(e)) from None


def _unwrap(obj: object, path: str = "") -> tuple[dict[str, torch.Tensor], str]:
    """The state dict inside the usual containers, and where it was found."""
    if isinstance(obj, dict):
        tensors = {k: v for k, v in obj.items() if isinstance(v, torch.Tensor)}
        if tensors and len(tensors) >= len(obj) / 2:
            return tensors, path or "the file itself"
        for key in CONTAINERS:
            if key in obj and isinstance(obj[key], dict):
                return _unwrap(obj[key], f"{path}{key}/")
    raise CheckpointRefused("no state dict found in the file (looked at the top level and under "
                            + ", ".join(CONTAINERS) + ")")


def _strip_prefixes(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], list[str]]:
    removed = []
    changed = True
    while changed:
        changed = False
        for p in PREFIXES:
            if state and all(k.startswith(p) for k in state):
                state = {k[len(p):]: v for k, v in state.items()}
                removed.append(p)
                changed = True
    return state, removed


def read_state(data: bytes, file_name: str = "checkpoint") -> tuple[dict[str, torch.Tensor], dict, str, list[str]]:
    """(state dict, metadata, format, notes) from the bytes of an accepted file."""
    if not data:
        raise CheckpointRefused("the file is empty")
    if len(data) > MAX_BYTES:
        raise CheckpointRefused(f"the file is {len(data) / 2**20:.0f} MB; checkpoints up to {MAX_BYTES // 2**20} MB "
                                "are accepted (a 110-layer CIFAR net is about 7 MB)")
    suffix = "." + file_name.rsplit(".", 1)[-1].lower() if "." in file_name else ""
    if suffix not in FORMATS:
        raise CheckpointRefused(f"the file name ends in {suffix or 'nothing'}; accepted: {', '.join(FORMATS)}")
    notes = []
    if suffix == ".safetensors":
        state, meta = _read_safetensors(data)
        fmt = "safetensors"
    else:
        obj, ignored = _read_torch(data)
        state, where = _unwrap(obj)
        meta = {}
        fmt = f"torch ({suffix}, tensors only)"
        if where != "the file itself":
            notes.append(f"state dict found under {where.rstrip('/')}")
        if ignored:
            notes.append("ignored the file's other objects (" + ", ".join(ignored[:4])
                         + (", ..." if len(ignored) > 4 else "") + "): only tensors are read")
    state, removed = _strip_prefixes(state)
    if removed:
        notes.append("removed the key prefix " + " and ".join(f"'{p}'" for p in removed))
    return state, meta, fmt, notes


# ---------------------------------------------------------------------------- layout, architecture, checks
def match_layout(keys: list[str]) -> tuple[Layout, dict[str, str]]:
    """The first layout under which every key has a place, and its renaming; else one sentence naming the
    first key that has none (under the closest layout) and the layouts ResLens knows."""
    best, best_mapped, best_missing = None, -1, None
    for layout in LAYOUTS:
        mapping, missing = {}, None
        for k in keys:
            new = layout.rename(k)
            if new is None:
                missing = missing or k
            else:
                mapping[k] = new
        if missing is None and mapping:
            return layout, mapping
        if len(mapping) > best_mapped:
            best, best_mapped, best_missing = layout, len(mapping), missing
    raise CheckpointRefused(f"no known key layout fits this file: '{best_missing}' has no place in it (closest: "
                            f"{best.name}, {best_mapped} of {len(keys)} keys). ResLens reads: {KNOWN}")


def parse_bool(value: str, what: str) -> bool:
    v = str(value).strip().lower()
    if v in ("true", "1", "yes"):
        return True
    if v in ("false", "0", "no"):
        return False
    raise CheckpointRefused(f"the metadata says {what} = {value!r}, which is neither true nor false")


def infer_arch(state: dict[str, torch.Tensor], residual: bool | None, meta: dict) -> tuple[Arch, str, list[str]]:
    """(architecture, who decided residual-or-plain, notes) from ResLens-named tensors, checked before building."""
    notes = []
    per_stage = {s: {int(m.group(1)) for k in state if (m := re.fullmatch(rf"stage{s}\.block(\d+)\.conv1\.weight", k))}
                 for s in (1, 2, 3)}
    n = len(per_stage[1])
    if n == 0 or "stem.conv.weight" not in state or "fc.weight" not in state:
        raise CheckpointRefused("this file does not hold a 6n+2 CIFAR network (no stem conv, stage-1 blocks or classifier)")
    if len(per_stage[2]) != n or len(per_stage[3]) != n or per_stage[1] != set(range(n)):
        raise CheckpointRefused(f"the stages have {len(per_stage[1])}, {len(per_stage[2])} and {len(per_stage[3])} "
                                "blocks: a 6n+2 net has n in each, numbered from 0")
    bottleneck = "stage1.block0.conv3.weight" in state
    depth = (9 if bottleneck else 6) * n + 2
    if depth > MAX_DEPTH:
        raise CheckpointRefused(f"the tensors describe {n:,} blocks per stage ({depth:,} layers); ResLens builds nets "
                                f"of at most {MAX_DEPTH} layers")
    fc, want = tuple(state["fc.weight"].shape), (10, 256 if bottleneck else 64)
    if fc != want:
        raise CheckpointRefused(f"the classifier has shape {fc}, not {want}: ResLens needs 10 CIFAR-10 classes and "
                                + ("16/32/64 bottleneck filters expanded to 64/128/256" if bottleneck else
                                   "16/32/64 filters"))
    if "stage1.block0.projection.0.weight" in state:
        option = "conv1x1"
    elif any(".projection." in k for k in state):
        option = "B"
    else:
        option = "A"
    unit = "full-preact" if ("post.bn.weight" in state or any(".bn0." in k for k in state)) else "original"
    if "arch" in meta:  # ResLens writes the whole architecture (units the tensors cannot tell apart included)
        try:
            arch = parse_name(meta["arch"])
        except ValueError:
            raise CheckpointRefused(f"the metadata names the architecture {meta['arch']!r}, which ResLens does not know") from None
        if arch.depth != depth:
            raise CheckpointRefused(f"the metadata says {arch.name} but the tensors describe {depth} layers")
        return arch, "metadata", notes
    if any(".gate." in k for k in state):
        raise CheckpointRefused("this file has gate tensors, but no 'arch' in its metadata to say which gating and which "
                                "b_g: ResLens's own gated checkpoints name it (e.g. resnet56-gate-6)")
    source = "your choice"
    if "residual" in meta:
        meta_res = parse_bool(meta["residual"], "residual")
        if residual is not None and residual != meta_res:
            notes.append(f"the metadata says {'residual' if meta_res else 'plain'}, which overrides your choice")
        residual, source = meta_res, "metadata"
    if option != "A" or unit != "original":
        if residual is False:
            raise CheckpointRefused("the file has shortcut or pre-activation tensors, so it is a residual net, not plain")
        residual, source = True, "the tensors" if source != "metadata" else source
    if residual is None:
        raise CheckpointRefused("say whether this checkpoint is plain or residual: option-A plain and residual nets "
                                "have identical tensors")
    if unit == "original":
        notes.append("unit: original (bn-after-add, relu-before-add and relu-preact have the same tensors; "
                     "ResLens's own files name theirs in the metadata)")
    return Arch(depth, residual=residual, unit=unit, option=option, bottleneck=bottleneck), source, notes


def check_tensors(state: dict[str, torch.Tensor], model: CifarResNet) -> tuple[dict[str, torch.Tensor], list[str]]:
    """The state converted to what ``model`` expects, with notes; every problem of the file in one sentence."""
    expected = model.state_dict()
    notes, problems = [], []
    state = dict(state)
    missing = sorted(set(expected) - set(state))
    counters = [k for k in missing if k.endswith("num_batches_tracked")]
    for k in counters:
        state[k] = torch.zeros_like(expected[k])
    if counters:
        notes.append(f"filled {len(counters)} missing BN num_batches_tracked counters with 0 (older PyTorch does not "
                     "save them; they do not change any output)")
    missing = [k for k in missing if k not in counters]
    unexpected = sorted(set(state) - set(expected))
    if missing:
        problems.append(f"{len(missing)} tensors missing (e.g. {missing[0]})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected (e.g. {unexpected[0]})")
    shapes = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if shapes:
        k = shapes[0]
        problems.append(f"{len(shapes)} with the wrong shape (e.g. {k}: {tuple(state[k].shape)}, expected "
                        f"{tuple(expected[k].shape)})")
    converted = sorted({str(state[k].dtype).replace("torch.", "") for k in expected if k in state
                        and state[k].is_floating_point() and state[k].dtype != torch.float32})
    bad_dtype = [k for k in expected if k in state and not state[k].is_floating_point()
                 and not k.endswith("num_batches_tracked")]
    if bad_dtype:
        problems.append(f"{len(bad_dtype)} not floating point (e.g. {bad_dtype[0]}: {state[bad_dtype[0]].dtype})")
    nonfinite = [k for k in expected if k in state and state[k].is_floating_point() and not torch.isfinite(state[k]).all()]
    if nonfinite:
        problems.append(f"{len(nonfinite)} holding NaN or infinite values (e.g. {nonfinite[0]})")
    if problems:
        raise CheckpointRefused(f"the tensors do not fit a {model.depth}-layer {model.name}: " + "; ".join(problems))
    if converted:
        notes.append(f"{', '.join(converted)} weights converted to float32")
    return {k: state[k].to(v.dtype) for k, v in expected.items()}, notes


def parse_normalization(value: str | None) -> tuple[tuple, tuple] | None:
    """'cifar10', 'imagenet', 'none' or 'm1,m2,m3/s1,s2,s3' -> (mean, std); None for 'the default'."""
    if value is None or str(value).strip().lower() in ("", "default", "layout"):
        return None
    v = str(value).strip().lower()
    if v in NORMALIZATIONS:
        return NORMALIZATIONS[v]
    try:
        mean_s, std_s = v.split("/")
        mean, std = tuple(float(x) for x in mean_s.split(",")), tuple(float(x) for x in std_s.split(","))
    except ValueError:
        raise CheckpointRefused(f"normalisation {value!r}: write cifar10, imagenet, none, or mean/std as "
                                "'0.5,0.5,0.5/0.25,0.25,0.25'") from None
    if len(mean) != 3 or len(std) != 3 or any(s <= 0 for s in std):
        raise CheckpointRefused(f"normalisation {value!r}: three means and three positive standard deviations")
    return mean, std


def load_checkpoint(data: bytes, file_name: str, residual: bool | None = None, normalization: str | None = None) -> Loaded:
    """Read, adapt and check a checkpoint; the model is built only once everything about it is known."""
    state, meta, fmt, notes = read_state(data, file_name)
    layout, mapping = match_layout(list(state))
    state = {mapping[k]: v for k, v in state.items()}
    arch, residual_source, arch_notes = infer_arch(state, residual, meta)
    model = build_model(arch)
    state, tensor_notes = check_tensors(state, model)
    model.load_state_dict(state, strict=True)
    norm = parse_normalization(meta.get("normalization")) if meta.get("normalization") else None
    if norm is not None:
        n_source = "metadata"
    elif (user := parse_normalization(normalization)) is not None:
        norm, n_source = user, "your choice"
    else:
        norm, n_source = NORMALIZATIONS[layout.normalization], "the layout's default"
    model.input_norm.set(*norm)
    return Loaded(model=model.eval(), arch=arch, layout=layout.name, normalization=normalization_label(*norm),
                  normalization_source=n_source, residual_source=residual_source, file_format=fmt,
                  sha256=hashlib.sha256(data).hexdigest(), notes=notes + arch_notes + tensor_notes, metadata=meta)


CHANCE_WARNING_PCT = 80.0  # CIFAR-10 has 10 classes: a trained net near 90 % error is guessing


def plausibility_warning(error_pct: float, info: dict) -> str:
    """A sentence when a checkpoint's measured error is near chance after it was read, naming the likely causes
    (a correctly read trained net is far from 90 %); '' otherwise."""
    if error_pct < CHANCE_WARNING_PCT:
        return ""
    causes = []
    if info.get("residual_source") != "metadata" and info.get("option") == "A" and info.get("unit") == "original":
        other = "plain" if info.get("residual") else "residual"
        causes.append(f"it may be a {other} net (option-A plain and residual nets have identical tensors; it was read "
                      f"as {'residual' if info.get('residual') else 'plain'} by {info.get('residual_source')})")
    if info.get("normalization_source") != "metadata":
        causes.append(f"its inputs may have been normalised otherwise than {info.get('normalization')} "
                      f"({info.get('normalization_source')})")
    if info.get("option") == "A" and info.get("residual"):
        causes.append("its option-A shortcut may pad the new channels elsewhere: ResLens pads them centred, half "
                      "before and half after the old ones, as akamaster's and most CIFAR code does")
    return (f"{error_pct:.1f} % error is near chance (90 %): the file was probably read wrongly"
            + ("; " + "; or ".join(causes) if causes else "") + ".")
