"""Drawing: model colours, charts with their CSV, progress bars, images, ZIPs."""

from __future__ import annotations

import io
import json
import zipfile

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from analysis.core.arch import UNIT_TOKEN, parse_name

PLAIN_COLORS = {"plain20": "#fdae6b", "plain56": "#e6550d", "plain110": "#8c2d04"}
RESIDUAL_COLORS = {"resnet20": "#9ecae1", "resnet56": "#3182bd", "resnet110": "#08306b"}
# Variants (He et al. 2016) by the part of the name that differs from the original unit with identity shortcuts.
VARIANT_COLORS = {"preact": "#2ca02c", "relupreact": "#98df8a", "bnafter": "#d62728", "relubefore": "#ff7f0e",
                  "scale": "#9467bd", "scalef": "#e377c2", "conv1x1": "#8c564b", "b": "#17becf"}
UPLOAD_COLORS = ["#31a354", "#756bb1", "#636363", "#d6616b"]
JPEG_NOTE = ("Errors are measured on the JPEG (quality 75) copy of CIFAR-10 the zoo was trained on; "
             "they are not comparable to published CIFAR-10 numbers.")


def model_color(name: str, uploads: list[str] = ()) -> str:
    """The same colour for a model on every page: oranges for plain nets, blues for residual nets, one hue
    per variant, greens and purples for uploads."""
    if name in PLAIN_COLORS:
        return PLAIN_COLORS[name]
    if name in RESIDUAL_COLORS:
        return RESIDUAL_COLORS[name]
    ups = list(uploads)
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
    if a.option != "A":
        return VARIANT_COLORS["conv1x1" if a.option == "conv1x1" else "b"]
    return "#969696"


def color(names, legend: bool = True) -> alt.Color:
    from .session import uploads

    names = list(dict.fromkeys(names))
    ups = list(uploads())
    return alt.Color("model:N", scale=alt.Scale(domain=names, range=[model_color(n, ups) for n in names]),
                     legend=alt.Legend(title="model", orient="bottom") if legend else None)


def depth_chart(df: pd.DataFrame, y: str, y_title: str, color_enc: alt.Color | None = None, dash: str | None = None,
                dash_title: str | None = None, log: bool = True, height: int = 340) -> alt.Chart:
    """A measurement per block through depth (x = block index), one line per model (and per ``dash``)."""
    enc = dict(
        x=alt.X("block_index:Q", title="block (input side → output side)", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(type="log") if log else alt.Undefined),
        color=color_enc if color_enc is not None else color(df["model"]),
        tooltip=[c for c in ("model", "state", "lambda", "block") if c in df.columns]
        + [alt.Tooltip(f"{y}:Q", format=".3e")],
    )
    if dash:
        enc["strokeDash"] = alt.StrokeDash(f"{dash}:N", title=dash_title or dash)
    return alt.Chart(df).mark_line(point=True).encode(**enc).properties(height=height)


def show_chart(chart: alt.Chart, df: pd.DataFrame, file_name: str, caption: str, key: str) -> None:
    """The chart, a caption that says what is measured, and the CSV of exactly what it plots."""
    st.altair_chart(chart, width="stretch")
    st.caption(caption)
    st.download_button("Download CSV", df.to_csv(index=False).encode(), file_name=file_name, mime="text/csv",
                       key=f"dl_{key}")


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


def zip_tables(tables: dict[str, pd.DataFrame], manifest: dict, extra: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as z:
        for k, df in tables.items():
            z.writestr(f"{k}.csv", df.to_csv(index=False))
        for name, text in (extra or {}).items():
            z.writestr(name, text)
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


def pixel_map(df: pd.DataFrame, **where) -> np.ndarray:
    """The H x W array of one map of a tidy pixel table (e.g. ``pixel_map(maps, model=m, method="Saliency")``)."""
    sel = df
    for k, v in where.items():
        sel = sel[sel[k] == v]
    value = [c for c in sel.columns if c not in ("model", "image", "method", "stage", "y", "x")][0]
    h, w = int(sel["y"].max()) + 1, int(sel["x"].max()) + 1
    out = np.zeros((h, w), dtype=np.float64)
    out[sel["y"].to_numpy(), sel["x"].to_numpy()] = sel[value].to_numpy()
    return out
