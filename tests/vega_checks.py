"""What a readable chart must satisfy, checked on the Vega-Lite specs a browser received.

The browser test records the websocket frames Streamlit sends (protobuf ``ForwardMsg``), takes every Vega-Lite
element out of them with its data sets, and runs :func:`problems` on each:

* a legend wherever an encoding (colour, dash, shape) separates more than one series in the data;
* no axis title that is a raw column name (``error_pct``, ``grad_input_l2``): an axis has a title in words, or
  deliberately none;
* an axis of error rates stays inside 0-100 %: its explicit domain, else the values it draws.

``tests/dashboard/test_vega_checks.py`` shows each rule catching a chart that breaks it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field

import pandas as pd

SERIES = ("color", "strokeDash", "shape")
AXES = ("x", "y")


@dataclass
class Chart:
    spec: dict
    data: dict[str, pd.DataFrame] = field(default_factory=dict)  # named data sets; "" for the unnamed one


def charts_in_frames(frames: list[bytes]) -> list[Chart]:
    """Every Vega-Lite chart in Streamlit's websocket frames (binary ForwardMsg protobufs), in order."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
    from streamlit.dataframe_util import convert_arrow_bytes_to_pandas_df

    out = []
    for raw in frames:
        if not isinstance(raw, (bytes, bytearray)):
            continue
        msg = ForwardMsg()
        try:
            msg.ParseFromString(bytes(raw))
        except Exception:  # noqa: BLE001 - not a ForwardMsg (e.g. a heartbeat)
            continue
        if not msg.HasField("delta") or not msg.delta.HasField("new_element"):
            continue
        el = msg.delta.new_element
        if not el.HasField("vega_lite_chart"):
            continue
        v = el.vega_lite_chart
        data = {}
        for ds in v.datasets:
            data[ds.name if ds.has_name else ""] = convert_arrow_bytes_to_pandas_df(ds.data.data)
        if v.HasField("data") and v.data.data:
            data[""] = convert_arrow_bytes_to_pandas_df(v.data.data)
        out.append(Chart(json.loads(v.spec), data))
    return out


def _layers(spec: dict, inherited: dict | None = None, data_name: str | None = None):
    """(encoding, mark, data name) of every leaf view, with encodings inherited from the parent layer."""
    enc = {**(inherited or {}), **spec.get("encoding", {})}
    name = spec.get("data", {}).get("name", data_name) if isinstance(spec.get("data"), dict) else data_name
    kids = spec.get("layer") or ([spec["spec"]] if "spec" in spec else [])
    if kids:
        for k in kids:
            yield from _layers(k, enc, name)
    elif "mark" in spec:
        yield enc, spec["mark"], name


def _frame(chart: Chart, name: str | None) -> pd.DataFrame:
    if name is not None and name in chart.data:
        return chart.data[name]
    frames = list(chart.data.values())
    return max(frames, key=len) if frames else pd.DataFrame()


def _field(ch: dict) -> str | None:
    f = ch.get("field")
    return f.split(":")[0] if isinstance(f, str) else None


def problems(chart: Chart) -> list[str]:
    """What makes this chart hard to read, by the rules of the module docstring (empty: nothing)."""
    out = []
    layers = list(_layers(chart.spec))
    # legends: per (channel, field) the series in the data, and whether any layer shows a legend for it
    seen: dict[tuple[str, str], list[bool]] = {}
    counts: dict[tuple[str, str], int] = {}
    for enc, _, name in layers:
        df = _frame(chart, name)
        for channel in SERIES:
            ch = enc.get(channel)
            if not isinstance(ch, dict):
                continue
            f = _field(ch)
            if f is None or f not in df.columns:
                continue
            key = (channel, f)
            seen.setdefault(key, []).append(ch.get("legend", {}) is not None)
            counts[key] = max(counts.get(key, 0), int(df[f].nunique()))
    for (channel, f), shown in seen.items():
        if counts[(channel, f)] > 1 and not all(shown):  # one layer's legend: null drops the merged legend
            out.append(f"{counts[(channel, f)]} series of {f!r} by {channel} and no legend"
                       + (" (a layer hides it, and Vega-Lite then drops the legend it shares)" if any(shown) else ""))
    for enc, mark, _ in layers:
        ch = enc.get("strokeDash")
        if isinstance(ch, dict) and _field(ch) and isinstance(mark, dict) and mark.get("point"):
            out.append(f"the dash legend of {_field(ch)!r} is drawn as point markers (a line with point=True): "
                       "its line samples vanish")
    for enc, _, name in layers:
        df = _frame(chart, name)
        for axis in AXES:
            ch = enc.get(axis)
            if not isinstance(ch, dict) or _field(ch) is None:
                continue
            f = _field(ch)
            title = ch.get("title", f) if "title" in ch else f
            axis_spec = ch.get("axis", {})
            if axis_spec is None:
                continue  # no axis drawn
            if title is not None and title == f and "_" in f:
                out.append(f"{axis} axis titled with the raw column name {f!r}")
            words = f"{f} {title or ''}".lower()
            if "error" in words and ("pct" in words or "%" in words):
                dom = (ch.get("scale") or {}).get("domain")
                if isinstance(dom, list) and len(dom) == 2:
                    if dom[0] < 0 or dom[1] > 100:
                        out.append(f"{axis} axis of {f!r} spans {dom}, outside 0-100 %")
                else:
                    cols = [f] + [_field(enc[c]) for c in (axis + "2",) if isinstance(enc.get(c), dict)]
                    vals = pd.concat([pd.to_numeric(df[c], errors="coerce") for c in cols if c in df.columns])
                    if len(vals.dropna()) and (vals.min() < 0 or vals.max() > 100):
                        out.append(f"{axis} axis of {f!r} draws values from {vals.min():.3g} to {vals.max():.3g}")
    return sorted(set(out))
