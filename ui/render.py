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


def legend(title: str, **kw) -> alt.Legend:
    """A legend under the chart that never cuts a label or its title, in as many columns as fit."""
    return alt.Legend(title=title, orient="bottom", labelLimit=0, titleLimit=0, columns=kw.pop("columns", 4), **kw)


def color(names, legend_on: bool = True) -> alt.Color:
    from .session import uploads

    names = list(dict.fromkeys(names))
    ups = list(uploads())
    return alt.Color("model:N", scale=alt.Scale(domain=names, range=[model_color(n, ups) for n in names]),
                     legend=legend("model", symbolOpacity=1) if legend_on else None)  # a faint band layer shares it


def dash(field: str, title: str, domain=None, styles=None) -> alt.StrokeDash:
    """A dash-style encoding whose legend shows each style as a line sample (not the point markers, which look alike).
    ``styles``: the dash pattern of each value of ``domain`` (e.g. [[4, 3], [1, 0]] for dashed, solid)."""
    scale = alt.Scale(domain=list(domain), **({"range": styles} if styles else {})) if domain is not None \
        else alt.Undefined
    return alt.StrokeDash(field, title=title, scale=scale,
                          legend=legend(title, symbolType="stroke", symbolSize=900, symbolStrokeWidth=2,
                                        symbolStrokeColor="#333", columns=3))


def log_if_wide(values, ratio: float = 30.0) -> bool:
    """True when positive values span more than ``ratio``x: a linear axis would flatten all but the largest."""
    v = pd.Series(values).astype(float)
    v = v[v > 0]
    return bool(len(v)) and float(v.max() / v.min()) > ratio


def auto_scale(values, ratio: float = 30.0) -> tuple[alt.Scale | alt.UndefinedType, str]:
    """(the y scale, a sentence): a log scale with the sentence saying why when the positive values span more than
    ``ratio``x (one model would flatten the rest), else the linear default and no sentence."""
    v = pd.Series(values).astype(float)
    v = v[v > 0]
    if log_if_wide(v, ratio):
        return alt.Scale(type="log"), (f"Log scale: the values shown span {float(v.max() / v.min()):,.0f}x "
                                        f"({float(v.min()):.3g} to {float(v.max()):.3g}).")
    return alt.Undefined, ""


def depth_chart(df: pd.DataFrame, y: str, y_title: str, color_enc: alt.Color | None = None, dash_by: str | None = None,
                dash_title: str | None = None, log: bool = True, height: int = 340) -> alt.Chart:
    """A measurement per block through depth (x = block index), one line per model (and per ``dash_by``)."""
    enc = dict(
        x=alt.X("block_index:Q", title="block (input side → output side)", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y(f"{y}:Q", title=y_title, scale=alt.Scale(type="log") if log else alt.Undefined,
                axis=alt.Axis(titleLimit=0)),
        color=color_enc if color_enc is not None else color(df["model"]),
        tooltip=[c for c in ("model", "state", "lambda", "block") if c in df.columns]
        + [alt.Tooltip(f"{y}:Q", format=".3e")],
    )
    if dash_by:
        enc["strokeDash"] = dash(f"{dash_by}:N", dash_title or dash_by)
    return lines_with_points(df, **enc).properties(height=height)


def lines_with_points(data: pd.DataFrame, **enc):
    """A line per series with a point at each value. Where the dash style encodes a field, the points are a layer of
    their own: a line mark with ``point=True`` draws its legend symbols as points, and the dash samples vanish."""
    if "strokeDash" not in enc:
        return alt.Chart(data).mark_line(point=True).encode(**enc)
    line = alt.Chart(data).mark_line().encode(**enc)
    points = alt.Chart(data).mark_point(filled=True, size=28, opacity=1).encode(
        **{k: v for k, v in enc.items() if k != "strokeDash"})
    return line + points


# Column names in words, with their units, for tables shown on the pages (the CSVs keep the names of the library).
COLUMN_WORDS = {
    "model": "model", "depth": "layers", "residual": "shortcuts", "unit": "residual unit", "shortcut": "shortcut",
    "variant": "variant of", "params": "parameters", "train_error_pct": "training error (%)",
    "train_images": "training images", "test_error_pct": "test error (%)", "test_images": "test images",
    "iterations": "iterations", "epochs": "epochs", "full_recipe": "the paper's full schedule",
    "first_lr_drop_epoch": "first learning-rate drop (epoch)", "stopped_early": "stopped early", "trained_on": "trained on", "layers": "layers measured",
    "median_std": "median std, per channel", "median_std_all": "median std, all values",
    "mean_ratio": "mean ‖F(x)‖/‖x‖", "first_over_last": "first block / last block", "k": "blocks deleted (k)",
    "trials": "trials", "error_pct": "error (%)", "error_low": "95 % interval, low (%)",
    "error_high": "95 % interval, high (%)", "mean_error_pct": "mean error (%)", "images": "test images",
    "first_epoch_below": "first epoch with training error < 10 %", "paper_test_error_pct":
    "paper's test error (%), its net in the next column", "shortcut_description": "shortcut", "paper_source": "paper's table",
}


def column_words(name: str) -> str:
    """A column's name in words: from :data:`COLUMN_WORDS`, else its parts spelled out ("_pct" as "(%)")."""
    if name in COLUMN_WORDS:
        return COLUMN_WORDS[name]
    words = name.replace("_pct", " (%)").replace("_", " ")
    return words.replace(" low", ", 95 % low").replace(" high", ", 95 % high")


def table(df: pd.DataFrame, **kw) -> None:
    """A table with its columns in words and its numbers readable: thousands separated, percentages to two
    decimals, other fractions to three significant digits; shortcuts (a bool) as yes/no."""
    cfg = {}
    shown = df.copy()
    for c in df.columns:
        label = column_words(str(c))
        col = df[c]
        if col.dtype == bool or (col.dtype == object and col.dropna().map(type).eq(bool).all() and len(col.dropna())):
            shown[c] = col.map({True: "yes", False: "no"})
            cfg[c] = st.column_config.TextColumn(label)
        elif pd.api.types.is_integer_dtype(col):
            cfg[c] = st.column_config.NumberColumn(label, format="localized")
        elif pd.api.types.is_float_dtype(col):
            whole = col.dropna()
            fmt = ("localized" if len(whole) and (whole == whole.round()).all() and whole.abs().max() >= 1000
                   else "%.2f" if "(%)" in label or "%" in str(c) else "%.3g")
            cfg[c] = st.column_config.NumberColumn(label, format=fmt)
        else:
            cfg[c] = st.column_config.TextColumn(label)
    st.dataframe(shown, hide_index=True, width="stretch", column_config=cfg, **kw)


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
