"""Session state and the sidebar: which models, how many test images, seed, device; cached models.

Every page draws the sidebar through :func:`page`. Its choices persist from page to page and live in the URL
(:mod:`ui.url`: each value is copied to a shadow key, ``_models`` for ``models``, and put back before the widget is
drawn on the next page, since Streamlit forgets the state of a widget that a page does not draw).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

import streamlit as st
import torch

from analysis.core import data as D
from analysis.core.checkpoints import MAX_BYTES
from analysis.engine.context import DEFAULT_SAMPLES
from analysis.core.zoo import CheckpointError, arch_of, available, load_pretrained, load_uploaded

SAMPLE_CHOICES = [100, 250, 500, 1000, 2000, 5000, 10000]
DEFAULT_MODELS = ("plain20", "plain56", "resnet20", "resnet56")
SIDEBAR_KEYS = ("models", "samples", "seed", "device")  # also their names in the URL


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


def get_model(name: str, device: str):
    """The read-only model: a zoo or imported one is shared by every session (one cached copy); an upload
    belongs to the session that uploaded it and is held in its state, so that it goes when the session ends or
    its uploads are forgotten."""
    if name in uploads():
        u = uploads()[name]
        models = u.setdefault("models", {})
        if device not in models:
            model, _ = load_uploaded(u["bytes"], residual=u["residual"], file_name=u["file_name"],
                                     normalization=u["normalization"])
            models[device] = model.to(device)
        return models[device]
    return _zoo_model(name, device)


MAX_UPLOADS = 4  # models a session holds from uploads (their bytes stay in memory, never on disk)
# One file at most (analysis.core.checkpoints.MAX_BYTES; .streamlit/config.toml's server.maxUploadSize tells the
# uploader the same, and tests/dashboard/test_app.py checks that they agree), and all of a session's uploads together.
MAX_UPLOAD_MB = MAX_BYTES // 2**20
MAX_UPLOAD_BYTES = MAX_UPLOAD_MB * 1024 * 1024  # in all, for one session


_AUTOLINK = re.compile(r"(?i)(https?|ftp|file|mailto|www)(:|\.)|(@)")


def escape_md(text: str) -> str:
    """The one helper for user text (names typed or uploaded, file names, and every error message, which may
    quote them): shown literally in Streamlit markdown, with no formatting, no links, no images, no HTML.

    Every markdown character is backslash-escaped; a zero-width space goes after "http", "www" and "@" (and the
    like), because GitHub-flavoured markdown turns a bare address into a link even when its characters are
    escaped. What a reader sees is the text as typed."""
    text = _AUTOLINK.sub(lambda m: (m.group(1) + "\u200b" + m.group(2)) if m.group(1) else "@\u200b", str(text))
    out = []
    for ch in text:
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
                 "normalization": normalization, "info": info, "models": {"cpu": model}}
    return name, info


def upload_warning(name: str, error_pct: float | None) -> str:
    """A sentence when an upload's measured error is near chance (read wrongly, probably), naming the likely causes."""
    if error_pct is None or name not in uploads():
        return ""
    from analysis.core.checkpoints import plausibility_warning

    return plausibility_warning(error_pct, uploads()[name]["info"])


def import_upload(name: str, new_name: str) -> dict:
    """Import one of this session's uploads for good under ``new_name`` (as ``python -m analysis import``);
    the card it wrote. It is chosen in the sidebar."""
    from analysis.core.zoo import import_checkpoint

    u = uploads()[name]
    card = import_checkpoint(u["bytes"], u["file_name"], new_name, residual=u["residual"],
                             normalization=u["normalization"])
    choose_model(new_name)
    return card


def upload_key() -> str:
    """The checkpoint uploader's widget key; a new one after the uploads are forgotten (which lets Streamlit
    drop the file it holds for the old widget)."""
    gen = st.session_state.get("_upload_generation", 0)
    return "upload_ckpt" if gen == 0 else f"upload_ckpt{gen}"


def forget_uploads() -> None:
    """Drop this session's uploads (bytes, models) and give their memory back."""
    from .warm import release_memory

    uploads().clear()  # the sidebar drops the chosen uploads on the next run
    for k in ("_upload_seen", "_upload_result"):
        st.session_state.pop(k, None)
    st.session_state["_upload_generation"] = st.session_state.get("_upload_generation", 0) + 1
    import gc

    gc.collect()
    release_memory()


NORMALIZATION_CHOICES = {"the layout's default": None, "CIFAR-10 mean/std": "cifar10", "ImageNet mean/std": "imagenet",
                         "none ([0, 1] inputs)": "none", "other…": "custom"}
KIND_CHOICES = {"read from the file's metadata": None, "plain net": False, "residual net": True}


def take_upload() -> tuple[tuple[str, dict] | None, str | None]:
    """Register the checkpoint in the uploader (before the sidebar is drawn, so that it is chosen on this run):
    (name, info) or an error sentence. The same file with the same choices is read once; the outcome is kept."""
    ss = st.session_state
    up = ss.get(upload_key())
    if up is None:
        return None, None
    choices = (up.file_id, ss.get("upload_kind"), ss.get("upload_norm"), ss.get("upload_norm_custom"))
    if ss.get("_upload_seen") == choices:
        return ss.get("_upload_result", (None, None))
    norm = NORMALIZATION_CHOICES.get(ss.get("upload_norm"))
    if norm == "custom":
        norm = ss.get("upload_norm_custom")
    done, error = None, None
    try:
        done = register_upload(up.name, up.getvalue(), KIND_CHOICES.get(ss.get("upload_kind")), normalization=norm)
        choose_model(done[0])
    except CheckpointError as e:
        error = f"This checkpoint cannot be used: {e}"
    ss["_upload_seen"], ss["_upload_result"] = choices, (done, error)
    return done, error


def choose_model(name: str) -> None:
    """Put a model among the sidebar's chosen ones (e.g. a new upload), before the sidebar is drawn."""
    ss = st.session_state
    chosen = list(ss.get("models", ss.get("_models", DEFAULT_MODELS)))
    if name not in chosen:
        ss["models"] = ss["_models"] = chosen + [name]


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
OWN_CHOICE = "your own choice"


def presets(names) -> dict[str, list[str]]:
    """The papers' comparisons among ``names`` (:func:`analysis.analyses.variants.comparisons`)."""
    from analysis.analyses.variants import comparisons

    return comparisons([n for n in names if not n.startswith("upload:")])


def _apply_preset(options: dict[str, list[str]]) -> None:
    chosen = st.session_state.get("preset")
    if chosen in options:
        st.session_state["models"] = st.session_state["_models"] = list(options[chosen])


def sidebar() -> Settings:
    """Draw the sidebar and return its settings (the same on every page of a session, and in the URL)."""
    from .url import bound

    ss = st.session_state
    names = all_model_names()
    sb = st.sidebar
    sb.markdown("### ResLens")
    for k in ("models", "_models"):  # a model that left the zoo (or an upload that was forgotten) is dropped
        if k in ss:
            ss[k] = [n for n in ss[k] if n in names]
    slot = sb.container()  # the preset picker, drawn above the models once they are known
    models = bound(sb.multiselect, "Models", names, default=[n for n in DEFAULT_MODELS if n in names] or names[:2],
                   key="models", where=st, unknown="which is not a model of this server or of this browser session "
                   "(an upload belongs to the session that made it)",
                   help="Shipped nets, their variants and any checkpoint you uploaded on the Home page.")
    options = presets(names)
    ss["preset"] = next((label for label, ms in options.items() if list(ms) == list(models)), OWN_CHOICE)
    slot.selectbox("Compare as the papers do", [OWN_CHOICE, *options], key="preset", on_change=_apply_preset,
                   args=(options,), help="Picks the models of one of the papers' comparisons; the models below "
                   "can then be changed freely.")
    samples = bound(sb.select_slider, "Test images per measurement", SAMPLE_CHOICES, value=DEFAULT_SAMPLES,
                    key="samples", where=st, help="A seeded random subset of the 10,000 test images.")
    seed = int(bound(sb.number_input, "Seed", min_value=0, max_value=10_000, value=0, step=1, key="seed", where=st))
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    for k in ("device", "_device"):
        if ss.get(k) not in devices:
            ss.pop(k, None)
    device = bound(sb.selectbox, "Device", devices, key="device", where=st,
                   help="CUDA when a GPU is present; bf16 autocast is used where the page says so.")
    found, sentence = D.data_status()
    (sb.success if found else sb.warning)(sentence)
    return Settings(tuple(models), int(samples), seed, device=device)


def page() -> Settings:
    """The sidebar's settings, drawn on this page (app.py sets the page config and the navigation); a link's
    values are applied first (:mod:`ui.url`)."""
    from .url import begin

    begin()
    return sidebar()


def data_found() -> bool:
    return D.data_status()[0]


@st.cache_data(ttl=30, show_spinner="Reading the test images…", max_entries=4)
def _test_split_state(root: str) -> tuple[bool, str]:
    """(usable, one sentence): the test split read (and checked) once; the sentence names what was left out or
    why the split was refused. Read again after 30 s, so that a repaired folder is seen."""
    try:
        split = D.load_split("test", root)
    except D.DataNotFound as e:
        return False, str(e)
    return True, split.note


def need_data() -> bool:
    """True when CIFAR-10 is there and usable; otherwise says in one sentence where to put it, or why the folder
    was refused (a class missing, too many unreadable files). Files that were skipped are named."""
    found, sentence = D.data_status()
    if not found:
        st.info(sentence + " This part of the page needs the test images; everything else still works.")
        return False
    ok, note = _test_split_state(str(D.resolve_root()))
    if not ok:
        st.error(escape_md(note))
        return False
    if note:
        st.warning(escape_md(note))
    return True


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
        st.error(escape_md(str(e).strip("'\"") if isinstance(e, KeyError) else str(e)))
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
