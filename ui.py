"""The dashboard's one helper module: sidebar, cached models and results, charts with CSV downloads.

Pages stay thin: widgets, one call into ``analysis/`` through the cached wrappers here, Altair charts.
Models are held with ``st.cache_resource`` (one copy for every browser session, never mutated: every
analysis works on forward-pass options, private copies or ``functional_call``); results with
``st.cache_data``, keyed by every input that changes them.
"""

from __future__ import annotations

import hashlib
import io
import os
import threading
import zipfile
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st
import torch

from analysis import data as D
from analysis.attributions import METHODS, attribute_image, conductance_per_block
from analysis.common import Batch, random_sample, eval_sample
from analysis.curves import training_curves
from analysis.deletion import (PrefixCache, delete_random, delete_single, path_distribution, path_gradients, reorder,
                               summarize_random)
from analysis.gradients import gradient_flow
from analysis.landscape import grid, landscape
from analysis.models import UNIT_TOKEN, parse_name
from analysis.train import evaluate_error
from analysis.variants import variant_table
from analysis.responses import compare_responses, responses, summarize_responses
from analysis.zoo import ZOO, CheckpointError, available, default_device, fresh_model, load_card, load_pretrained, load_uploaded

PLAIN_COLORS = {"plain20": "#fdae6b", "plain56": "#e6550d", "plain110": "#8c2d04"}
RESIDUAL_COLORS = {"resnet20": "#9ecae1", "resnet56": "#3182bd", "resnet110": "#08306b"}
# Variants (He et al. 2016) by the part of the name that differs from the original unit with identity shortcuts.
VARIANT_COLORS = {"preact": "#2ca02c", "relupreact": "#98df8a", "bnafter": "#d62728", "relubefore": "#ff7f0e",
                  "scale": "#9467bd", "scalef": "#e377c2", "conv1x1": "#8c564b", "b": "#17becf"}
UPLOAD_COLORS = ["#31a354", "#756bb1", "#636363", "#d6616b"]
SAMPLE_CHOICES = [100, 250, 500, 1000, 2000, 5000, 10000]
JPEG_NOTE = ("Errors are measured on the JPEG (quality 75) copy of CIFAR-10 the zoo was trained on; "
             "they are not comparable to published CIFAR-10 numbers.")


@dataclass(frozen=True)
class Settings:
    models: tuple[str, ...]
    samples: int
    seed: int
    device: str


# ---------------------------------------------------------------------------- models
def uploads() -> dict[str, dict]:
    return st.session_state.setdefault("uploads", {})


def all_model_names() -> list[str]:
    return available() + list(uploads())


def is_residual(name: str) -> bool:
    if name in uploads():
        return bool(uploads()[name]["residual"])
    return name.startswith("resnet")


def model_color(name: str) -> str:
    if name in PLAIN_COLORS:
        return PLAIN_COLORS[name]
    if name in RESIDUAL_COLORS:
        return RESIDUAL_COLORS[name]
    ups = list(uploads())
    if name in ups:
        return UPLOAD_COLORS[ups.index(name) % len(UPLOAD_COLORS)]
    try:
        a = parse_name(name)
    except ValueError:
        return "#969696"
    if a.unit != "original":
        return VARIANT_COLORS[UNIT_TOKEN[a.unit]]
    if a.lam != 1.0:
        return VARIANT_COLORS["scalef" if a.scale_branch else "scale"]
    return VARIANT_COLORS["conv1x1" if a.option == "conv1x1" else "b"] if a.option != "A" else "#969696"


def color(names, legend: bool = True) -> alt.Color:
    """The same colour for a model on every page: oranges for plain nets, blues for residual nets."""
    names = list(dict.fromkeys(names))
    return alt.Color("model:N", scale=alt.Scale(domain=names, range=[model_color(n) for n in names]),
                     legend=alt.Legend(title="model", orient="bottom") if legend else None)


@st.cache_resource(show_spinner="Loading a model…", max_entries=12)
def _zoo_model(name: str, device: str):
    return load_pretrained(name, device=device)


@st.cache_resource(show_spinner="Loading the uploaded checkpoint…", max_entries=8)
def _upload_model(sha: str, _data: bytes, residual: bool, device: str):
    model, _ = load_uploaded(_data, residual=residual)
    return model.to(device)


def get_model(name: str, device: str):
    if name in uploads():
        u = uploads()[name]
        return _upload_model(u["sha"], u["bytes"], u["residual"], device)
    return _zoo_model(name, device)


def register_upload(file_name: str, data: bytes, residual: bool | None) -> tuple[str, dict]:
    """Check an uploaded .safetensors and add it to this session's models. Raises CheckpointError."""
    model, info = load_uploaded(data, residual=residual)
    sha = hashlib.sha256(data).hexdigest()
    stem = file_name.rsplit(".", 1)[0][:24] or "checkpoint"
    name = f"upload:{stem}-{sha[:8]}"
    uploads()[name] = {"sha": sha, "bytes": data, "residual": info["residual"], "info": info}
    return name, info


def arch_name(name: str) -> str:
    """The zoo-style architecture name of a model (for fresh initialisation), variants included."""
    if name in uploads():
        i = uploads()[name]["info"]
        if i.get("name"):
            return i["name"]
        return f"{'resnet' if i['residual'] else 'plain'}{i['depth']}{'b' if i['option'] == 'B' else ''}"
    return name


# ---------------------------------------------------------------------------- page frame
def page(title: str, icon: str = "🔬") -> Settings:
    st.set_page_config(page_title=f"ResLens · {title}", page_icon=icon, layout="wide")
    return sidebar()


def sidebar() -> Settings:
    names = all_model_names()
    default = [n for n in ("plain20", "plain56", "resnet20", "resnet56") if n in names] or names[:2]
    sb = st.sidebar
    sb.markdown("### ResLens")
    models = sb.multiselect("Models", names, default=default, key="models",
                            help="Shipped nets and any checkpoint you uploaded on the Home page.")
    samples = sb.select_slider("Test images per measurement", SAMPLE_CHOICES, value=500, key="samples",
                               help="A seeded random subset of the 10,000 test images.")
    seed = int(sb.number_input("Seed", min_value=0, max_value=10_000, value=0, step=1, key="seed"))
    devices = ["cuda", "cpu"] if torch.cuda.is_available() else ["cpu"]
    device = sb.selectbox("Device", devices, key="device",
                          help="CUDA when a GPU is present; bf16 autocast is used where the page says so.")
    found, sentence = D.data_status()
    (sb.success if found else sb.warning)(sentence)
    return Settings(tuple(models), int(samples), seed, device)


def link(target: str, label: str, icon: str = "➡️") -> None:
    """A link to another page; where the page list is not known (a page run on its own, as in AppTest),
    its name in words instead of an error."""
    from streamlit.errors import StreamlitPageNotFoundError

    try:
        st.page_link(target, label=label, icon=icon)
    except StreamlitPageNotFoundError:
        st.markdown(f"{icon} {label}")


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


class Progress:
    """A ``st.progress`` bar fed by the analyses' (fraction, message) callbacks."""

    def __init__(self, label: str) -> None:
        self.bar = st.progress(0.0, text=label)

    def __call__(self, frac: float, msg: str) -> None:
        self.bar.progress(min(1.0, max(0.0, float(frac))), text=msg)

    def done(self) -> None:
        self.bar.empty()


def with_bar(label: str, fn, *args, **kwargs):
    """Run ``fn(*args, progress=bar, **kwargs)`` with a progress bar created here, inside the cached
    function (Streamlit replays elements made inside a cached function, never ones made outside)."""
    bar = Progress(label)
    try:
        return fn(*args, progress=bar, **kwargs)
    finally:
        bar.done()


def depth_chart(df: pd.DataFrame, y: str, y_title: str, color: alt.Color | None = None, dash: str | None = None,
                dash_title: str | None = None, log: bool = True, height: int = 340) -> alt.Chart:
    """A measurement per block through depth (x = block index), one line per model (and per ``dash``)."""
    enc = dict(
        x=alt.X("block_index:Q", title="block (input side → output side)", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(type="log") if log else alt.Undefined),
        color=color if color is not None else color_for(df),
        tooltip=[c for c in ("model", "state", "lambda", "block") if c in df.columns]
        + [alt.Tooltip(f"{y}:Q", format=".3e")],
    )
    if dash:
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", title=dash_title or dash)
    return alt.Chart(df).mark_line(point=True).encode(**enc).properties(height=height)


def color_for(df: pd.DataFrame) -> alt.Color:
    return color(df["model"])


def show_chart(chart: alt.Chart, df: pd.DataFrame, file_name: str, caption: str, key: str) -> None:
    """The chart, a caption that says what is measured, and the CSV of exactly what it plots."""
    st.altair_chart(chart, width="stretch")
    st.caption(caption)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=f"dl_{key}")


def friendly(fn, *args, **kwargs):
    """Run ``fn``; show a one-sentence error instead of a traceback. Returns None on failure."""
    try:
        return fn(*args, **kwargs)
    except (D.DataNotFound, CheckpointError, ValueError, KeyError) as e:
        st.error(str(e))
    except torch.cuda.OutOfMemoryError:
        st.error("The GPU ran out of memory even at the smallest batch; choose fewer test images or the CPU.")
    return None


# ---------------------------------------------------------------------------- data
@st.cache_resource(show_spinner="Reading the test images…", max_entries=6)
def _batch(samples: int, seed: int, device: str, root: str) -> Batch:
    return eval_sample(samples, seed, torch.device(device), root)


def batch(s: Settings, samples: int | None = None) -> Batch:
    return _batch(samples or s.samples, s.seed, s.device, str(D.resolve_root()))


@st.cache_resource(show_spinner=False, max_entries=6)
def _prefix(name: str, samples: int, seed: int, device: str, root: str) -> PrefixCache:
    return PrefixCache(get_model(name, device), _batch(samples, seed, device, root))


def prefix(name: str, s: Settings) -> PrefixCache:
    return _prefix(name, s.samples, s.seed, s.device, str(D.resolve_root()))


# ---------------------------------------------------------------------------- cached results
@st.cache_data(show_spinner=False, max_entries=64)
def zoo_table() -> pd.DataFrame:
    rows = []
    for n in available():
        c = load_card(n)
        a = parse_name(n)
        rows.append({"model": n, "depth": c["depth"], "residual": c["residual"], "unit": a.unit,
                     "shortcut": a.shortcut_token if a.residual else "none", "params": c["params"],
                     "train_error_pct": round(c["train_error_pct"], 2), "test_error_pct": round(c["test_error_pct"], 2),
                     "epochs": c["schedule"]["epochs"], "iterations": c["schedule"]["iterations"],
                     "trained_on": c["device"]})
    return pd.DataFrame(rows)


@st.cache_data(show_spinner=False, max_entries=8)
def variants(names: tuple[str, ...] | None = None) -> pd.DataFrame:
    return variant_table(list(names) if names is not None else None)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_error(name: str, samples: int, seed: int, device: str, root: str) -> float:
    """Top-1 test error (%) of a model on the sidebar's sample, eval mode, bf16 autocast (as `evaluate`)."""
    b = _batch(samples, seed, device, root)
    split = D.load_split("test")
    idx = b.indices
    return evaluate_error(get_model(name, device), split.images[idx], split.labels[idx], torch.device(device))


@st.cache_data(show_spinner=False, max_entries=8)
def curves(names: tuple[str, ...]) -> pd.DataFrame:
    return training_curves([n for n in names if n in available()])


@st.cache_data(show_spinner=False, max_entries=64)
def cached_responses(name: str, samples: int, seed: int, device: str, root: str):
    return with_bar(f"Measuring the responses of {name}…", responses, get_model(name, device),
                    _batch(samples, seed, device, root), name)


@st.cache_data(show_spinner=False, max_entries=128)
def cached_gradients(name: str, state: str, lam: float | None, samples: int, seed: int, device: str, root: str,
                     random_input: bool) -> pd.DataFrame:
    dev = torch.device(device)
    b = random_sample(samples, seed, dev) if random_input else _batch(samples, seed, device, root)
    model = get_model(name, device) if state == "trained" else fresh_model(arch_name(name), seed, dev)
    df = with_bar(f"Back-propagating through {name} ({state})…", gradient_flow, model, b, name, state, lam=lam)
    df["input"] = b.source
    return df


@st.cache_data(show_spinner=False, max_entries=64)
def cached_single(name: str, samples: int, seed: int, device: str, root: str) -> pd.DataFrame:
    return with_bar(f"Deleting the blocks of {name} one at a time…", delete_single, get_model(name, device),
                    _batch(samples, seed, device, root), name, cache=_prefix(name, samples, seed, device, root))


class Prefetcher:
    """Computes likely next results on one background thread while the user looks at the page.

    Jobs call the library only (no Streamlit), on objects that are only read (a cached model, a PrefixCache),
    so they are safe beside the script threads. A job's result is handed over once, by ``take``; a job that
    failed is dropped and the work is redone in the foreground, where its error is reported properly.
    """

    def __init__(self, max_jobs: int = 256) -> None:
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="reslens-prefetch")
        self._jobs: dict[tuple, Future] = {}
        self._seen: set[tuple] = set()
        self._lock = threading.Lock()
        self.max_jobs = max_jobs

    def submit(self, key: tuple, fn, *args, **kwargs) -> bool:
        """Queue ``fn(*args, **kwargs)`` unless ``key`` is queued or was already computed; True if queued."""
        with self._lock:
            if key in self._jobs or key in self._seen:
                return False
            if len(self._jobs) >= self.max_jobs:  # results nobody collected (the user went elsewhere): oldest out
                done = [k for k, f in self._jobs.items() if f.done()]
                if not done:
                    return False
                del self._jobs[done[0]]
            self._jobs[key] = self._pool.submit(fn, *args, **kwargs)
            return True

    def take(self, key: tuple):
        """The prefetched result for ``key`` (waiting for it if it is running), or None."""
        with self._lock:
            self._seen.add(key)
            fut = self._jobs.pop(key, None)
        if fut is None:
            return None
        try:
            return fut.result()
        except Exception:  # noqa: BLE001 - recomputed in the foreground, which shows the error
            return None


@st.cache_resource(show_spinner=False)
def prefetcher() -> Prefetcher:
    return Prefetcher()


def _random_k(name: str, k: int, trials: int, samples: int, seed: int, device: str, root: str,
              model=None, cache: PrefixCache | None = None) -> pd.DataFrame:
    # Each k is drawn from its own seeded stream, so that adding a k never changes the others.
    model = model if model is not None else get_model(name, device)
    cache = cache if cache is not None else _prefix(name, samples, seed, device, root)
    return delete_random(model, cache.batch, name, [k], trials, seed * 1000 + k, cache=cache)


@st.cache_data(show_spinner=False, max_entries=512)
def cached_random_k(name: str, k: int, trials: int, samples: int, seed: int, device: str, root: str) -> pd.DataFrame:
    key = (name, k, trials, samples, seed, device, root)
    got = prefetcher().take(key)
    return got if got is not None else _random_k(*key)


def prefetch_random_k(name: str, k: int, trials: int, samples: int, seed: int, device: str, root: str) -> None:
    """Start computing ``cached_random_k`` for one more k in the background (the slider's likely next step).

    ``RESLENS_PREFETCH=0`` turns this off (benchmarks/slider_prefetch.py compares the two)."""
    if os.environ.get("RESLENS_PREFETCH", "1") == "0":
        return
    key = (name, k, trials, samples, seed, device, root)
    prefetcher().submit(key, _random_k, *key, model=get_model(name, device),
                        cache=_prefix(name, samples, seed, device, root))


@st.cache_data(show_spinner=False, max_entries=64)
def cached_reorder(name: str, trials: int, samples: int, seed: int, device: str, root: str):
    return with_bar(f"Reordering the blocks of {name}…", reorder, get_model(name, device),
                    _batch(samples, seed, device, root), name, trials, seed, cache=_prefix(name, samples, seed, device, root))


@st.cache_data(show_spinner=False, max_entries=32)
def cached_paths(name: str, per_length: int, samples: int, seed: int, device: str, root: str):
    return with_bar(f"Back-propagating along the paths of {name}…", path_gradients, get_model(name, device),
                    _batch(samples, seed, device, root), name, per_length, 16, seed)


@st.cache_data(show_spinner=False, max_entries=64)
def cached_attributions(name: str, image_key: str, _x: torch.Tensor, label: int | None, methods: tuple[str, ...],
                        seed: int, device: str):
    r = with_bar(f"Attributing with {name}…", attribute_image, get_model(name, device), _x, name, image_key, label,
                 methods, seed=seed)
    return r.maps, r.gradcam, r.frame()


@st.cache_data(show_spinner=False, max_entries=32)
def cached_conductance(name: str, image_key: str, _x: torch.Tensor, device: str) -> pd.DataFrame:
    return with_bar(f"Conductance through the blocks of {name}…", conductance_per_block, get_model(name, device), _x, name)


@st.cache_data(show_spinner=False, max_entries=32)
def cached_landscape(name: str, dims: int, steps: int, radius: float, samples: int, seed: int, device: str, root: str) -> pd.DataFrame:
    g = grid(steps, radius)
    return with_bar(f"Evaluating the loss of {name} on the grid…", landscape, get_model(name, device),
                    _batch(samples, seed, device, root), name, g, g if dims == 2 else None, seed)


def zip_tables(tables: dict[str, pd.DataFrame], manifest: dict) -> bytes:
    import json

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, df in tables.items():
            z.writestr(f"{k}.csv", df.to_csv(index=False))
        z.writestr("manifest.json", json.dumps(manifest, indent=1, default=str))
    return buf.getvalue()


def heat_png(img: np.ndarray, attr: np.ndarray, scale: int = 6) -> bytes:
    """The image (H x W x 3 uint8) with a signed attribution map blended over it (red +, blue -), as PNG."""
    from PIL import Image

    a = attr / (np.abs(attr).max() + 1e-12)
    rgb = np.zeros(a.shape + (3,))
    rgb[..., 0] = np.clip(a, 0, 1)
    rgb[..., 2] = np.clip(-a, 0, 1)
    alpha = np.abs(a)[..., None] * 0.8
    gray = img.mean(2, keepdims=True).repeat(3, 2) / 255.0
    out = (1 - alpha) * gray + alpha * rgb
    pil = Image.fromarray((out * 255).astype(np.uint8)).resize((32 * scale, 32 * scale), Image.NEAREST)
    b = io.BytesIO()
    pil.save(b, format="PNG")
    return b.getvalue()


def image_png(img: np.ndarray, scale: int = 6) -> bytes:
    from PIL import Image

    b = io.BytesIO()
    Image.fromarray(img).resize((32 * scale, 32 * scale), Image.NEAREST).save(b, format="PNG")
    return b.getvalue()


__all__ = ["METHODS", "ZOO", "compare_responses", "path_distribution", "summarize_random", "summarize_responses",
           "default_device"]
