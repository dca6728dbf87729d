"""Session state and the sidebar: which models, how many test images, seed, device; cached models.

Every page draws the sidebar through :func:`page`. Its choices persist from page to page: each widget's
value is copied to a shadow key (``_models`` for ``models``, ...) when it changes, and put back before the
widget is drawn on the next page (Streamlit forgets the state of a widget that a page does not draw).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import streamlit as st
import torch

from analysis import data as D
from analysis.zoo import CheckpointError, arch_of, available, load_pretrained, load_uploaded

SAMPLE_CHOICES = [100, 250, 500, 1000, 2000, 5000, 10000]
DEFAULT_MODELS = ("plain20", "plain56", "resnet20", "resnet56")
SIDEBAR_KEYS = ("models", "samples", "seed", "device")


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    samples: int
    seed: int
    device: str

    @property
    def root(self) -> str:
        return str(D.resolve_root())


# ---------------------------------------------------------------------------- models
def uploads() -> dict[str, dict]:
    return st.session_state.setdefault("uploads", {})


def all_model_names() -> list[str]:
    return available() + list(uploads())


def is_residual(name: str) -> bool:
    if name in uploads():
        return bool(uploads()[name]["residual"])
    try:
        return arch_of(name).residual
    except (ValueError, KeyError):
        return name.startswith("resnet")


@st.cache_resource(show_spinner="Loading a model…", max_entries=16)
def _zoo_model(name: str, device: str):
    return load_pretrained(name, device=device)


@st.cache_resource(show_spinner="Loading the uploaded checkpoint…", max_entries=8)
def _upload_model(sha: str, _data: bytes, file_name: str, residual: bool, normalization: str | None, device: str):
    model, _ = load_uploaded(_data, residual=residual, file_name=file_name, normalization=normalization)
    return model.to(device)


def get_model(name: str, device: str):
    """The shared, read-only model (one copy for every session)."""
    if name in uploads():
        u = uploads()[name]
        return _upload_model(u["sha"], u["bytes"], file_name=u["file_name"], residual=u["residual"],
                             normalization=u["normalization"], device=device)
    return _zoo_model(name, device)


MAX_UPLOADS = 4  # models a session holds from uploads (their bytes stay in memory, never on disk)
MAX_UPLOAD_BYTES = 64 * 1024 * 1024  # in all, for one session


def escape_md(text: str) -> str:
    """User-supplied text (a file name) shown literally in Streamlit markdown: no formatting, no links,
    no images, no HTML."""
    out = []
    for ch in str(text):
        if ch in "\\`*_{}[]()#+-.!|<>~$&\"':/@=%":
            out.append("\\" + ch)
        elif ch in "\r\n\t":
            out.append(" ")
        else:
            out.append(ch)
    return "".join(out)


def upload_name(file_name: str, sha: str) -> str:
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", file_name.rsplit(".", 1)[0])[:24].strip("._") or "checkpoint"
    return f"upload:{stem}-{sha[:8]}"


def register_upload(file_name: str, data: bytes, residual: bool | None,
                    normalization: str | None = None) -> tuple[str, dict]:
    """Check an uploaded checkpoint (any accepted format and layout) and add it to this session's models.
    The same bytes are one model (uploading them again replaces how they are read). Raises CheckpointError."""
    sha = hashlib.sha256(data).hexdigest()
    name = upload_name(file_name, sha)
    ups = uploads()
    if name not in ups:
        if len(ups) >= MAX_UPLOADS:
            raise CheckpointError(f"this session already holds {MAX_UPLOADS} uploaded checkpoints, the most it keeps; "
                                  "forget them (below) or import one to keep it for good")
        used = sum(len(u["bytes"]) for u in ups.values())
        if used + len(data) > MAX_UPLOAD_BYTES:
            raise CheckpointError(f"this session's uploads would take {(used + len(data)) / 2**20:.0f} MB, more than the "
                                  f"{MAX_UPLOAD_BYTES // 2**20} MB it keeps; forget some first")
    model, info = load_uploaded(data, residual=residual, file_name=file_name, normalization=normalization)
    ups[name] = {"sha": sha, "bytes": data, "file_name": file_name, "residual": info["residual"],
                 "normalization": normalization, "info": info}
    return name, info


def forget_uploads() -> None:
    uploads().clear()
    if "_models" in st.session_state:
        st.session_state["_models"] = [n for n in st.session_state["_models"] if not n.startswith("upload:")]


def choose_model(name: str) -> None:
    """Put a model among the sidebar's chosen ones (e.g. a new upload), before the sidebar is drawn."""
    chosen = list(st.session_state.get("_models", st.session_state.get("models", DEFAULT_MODELS)))
    if name not in chosen:
        st.session_state["_models"] = chosen + [name]


def arch_name(name: str) -> str:
    """The zoo-style architecture name of a model (for fresh initialisation), variants included."""
    if name in uploads():
        i = uploads()[name]["info"]
        if i.get("name"):
            return i["name"]
        return f"{'resnet' if i['residual'] else 'plain'}{i['depth']}{'b' if i['option'] == 'B' else ''}"
    try:
        return arch_of(name).name
    except (ValueError, KeyError):
        return name


# ---------------------------------------------------------------------------- sidebar and page frame
def _keep(key: str) -> None:
    st.session_state["_" + key] = st.session_state[key]


def _restore(key: str, default):
    """Put a sidebar widget's last value back before it is drawn; the widget's default when there is none."""
    ss = st.session_state
    if "_" + key in ss:
        ss[key] = ss["_" + key]
    return None if key in ss else default


def sidebar() -> Settings:
    """Draw the sidebar and return its settings (the same on every page of a session)."""
    names = all_model_names()
    sb = st.sidebar
    sb.markdown("### ResLens")
    if "_models" in st.session_state:  # a model that left the zoo (or an upload of another session) is dropped
        st.session_state["_models"] = [n for n in st.session_state["_models"] if n in names]
    default = _restore("models", [n for n in DEFAULT_MODELS if n in names] or names[:2])
    models = sb.multiselect("Models", names, default=default, key="models", on_change=_keep, args=("models",),
                            help="Shipped nets, their variants and any checkpoint you uploaded on the Home page.")
    samples = sb.select_slider("Test images per measurement", SAMPLE_CHOICES, value=_restore("samples", 500),
                               key="samples", on_change=_keep, args=("samples",),
                               help="A seeded random subset of the 10,000 test images.")
    seed = int(sb.number_input("Seed", min_value=0, max_value=10_000, value=_restore("seed", 0), step=1, key="seed",
                               on_change=_keep, args=("seed",)))
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    if st.session_state.get("_device") not in devices:
        st.session_state.pop("_device", None)
    _restore("device", None)
    device = sb.selectbox("Device", devices, key="device", on_change=_keep, args=("device",),
                          help="CUDA when a GPU is present; bf16 autocast is used where the page says so.")
    for k, v in zip(SIDEBAR_KEYS, (list(models), samples, seed, device)):
        st.session_state["_" + k] = v
    found, sentence = D.data_status()
    (sb.success if found else sb.warning)(sentence)
    return Settings(tuple(models), int(samples), seed, device=device)


def page(title: str, icon: str = "🔬") -> Settings:
    """The sidebar's settings, drawn on this page (app.py sets the page config and the navigation)."""
    return sidebar()


def data_found() -> bool:
    return D.data_status()[0]


def need_data() -> bool:
    """True when CIFAR-10 is there; otherwise says in one sentence where to put it."""
    found, sentence = D.data_status()
    if not found:
        st.info(sentence + " This part of the page needs the test images; everything else still works.")
    return found


def need_models(s: Settings, residual_only: bool = False) -> list[str]:
    names = [n for n in s.models if is_residual(n)] if residual_only else list(s.models)
    if not names:
        st.info("Choose at least one " + ("residual " if residual_only else "") + "model in the sidebar.")
    return names


def friendly(fn, *args, **kwargs):
    """Run ``fn``; show a one-sentence error instead of a traceback. Returns None on failure."""
    try:
        return fn(*args, **kwargs)
    except (D.DataNotFound, CheckpointError, ValueError, KeyError) as e:
        st.error(str(e))
    except torch.cuda.OutOfMemoryError:
        st.error("The GPU ran out of memory even at the smallest batch; choose fewer test images or the CPU.")
    return None


def link(target: str, label: str, icon: str = "➡️") -> None:
    """A link to another page; where the page list is not known (a page run on its own, as in AppTest),
    its name in words instead of an error."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(target, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.markdown(f"{icon} {label}")
