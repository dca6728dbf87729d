"""The view in the URL: the sidebar's settings and each page's main controls live in the query string, so that a
reload or a copied link in another browser shows the same view.

Every such control is drawn through :func:`bound` (``ui.bound(st.radio, "Layer order", options, key="order")``):

* before the control is drawn, a value that a link just opened asks for (``?order=sorted+by+magnitude``) is checked
  and put in place; a value that is not a choice, out of range or not a model of this server or session is dropped,
  and one sentence above the control says so;
* a value the session already has (the user moved the control, or came back from another page) is kept: the link
  is applied once, when it is opened, not on every rerun;
* after the control is drawn, its value is written to the URL.

Streamlit clears the query string when the user switches pages; each page writes its controls back, and the
sidebar's settings (kept in the session) come with it.
"""

from __future__ import annotations

import math

import streamlit as st

_OPTIONS = ("radio", "selectbox", "select_slider", "multiselect", "segmented_control", "pills")
_NUMBERS = ("slider", "number_input")
_SWITCHES = ("toggle", "checkbox")
_DEFAULTS = ("value", "default", "index")


def _query() -> dict[str, list[str]]:
    return {k: st.query_params.get_all(k) for k in st.query_params}


def begin() -> None:
    """At the start of every run (``ui.page``): the query values of a link just opened are marked to be applied, once."""
    ss = st.session_state
    now = _query()
    ss["_url_fresh"] = dict(now) if now and now != ss.get("_url_last") else {}
    # Streamlit forgets a widget's state when the page changes (its identity includes the page): note the switch
    page = _page_id()
    ss["_url_switched"] = page != ss.get("_page_was")
    ss["_page_was"] = page


def _page_id() -> str:
    """The page this run draws: its script run's page hash. ``st.navigation`` sets it in the server; AppTest's
    ``switch_page`` sets it too but runs the page's file without app.py, so a value app.py wrote would stay the first
    page's there, and the sidebar's settings would fall back to the widgets' first choices on every other page (the
    page tests and benchmarks ran with 100 test images where a browser keeps 500)."""
    from streamlit.runtime.scriptrunner import get_script_run_ctx

    ctx = get_script_run_ctx()
    return ctx.page_script_hash if ctx is not None else ""


def _text(value) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, float) and value.is_integer():
        return str(value)
    return str(value)


def _number(raw: str, like):
    v = float(raw)
    if not math.isfinite(v):
        raise ValueError(raw)
    if isinstance(like, int) and not isinstance(like, bool):
        if not v.is_integer():
            raise ValueError(raw)
        return int(v)
    return v


def _from_link(kind: str, label: str, raw: list[str], args: tuple, kw: dict, unknown: str | None):
    """(value, sentence): the control's value from the link's ``raw`` values, and a sentence on what was dropped."""
    what = label.split(" (")[0]
    if kind in _OPTIONS:
        options = list(kw.get("options", args[0] if args else []))
        by_text = {_text(o): o for o in options}
        if kind == "multiselect":
            raw = [r for r in raw if r != ""]
            keep = [by_text[r] for r in dict.fromkeys(raw) if r in by_text]
            bad = [r for r in dict.fromkeys(raw) if r not in by_text]
            sentence = ""
            if bad:
                shown = ", ".join(f"“{b[:40]}”" for b in bad[:5]) + (" …" if len(bad) > 5 else "")
                sentence = (f"The link asked for {shown} under “{what}”, "
                            + (unknown or "which is not among the choices here") + "; it was left out.")
            return keep, sentence
        r = raw[-1]
        if r in by_text:
            return by_text[r], ""
        return None, f"The link's “{r[:40]}” for “{what}” is not among the choices here; the control keeps its value."
    if kind in _NUMBERS:
        lo = kw.get("min_value", args[0] if len(args) > 0 else None)
        hi = kw.get("max_value", args[1] if len(args) > 1 else None)
        like = kw.get("value", args[2] if len(args) > 2 else lo)
        try:
            v = _number(raw[-1], like if like is not None else 0.0)
        except ValueError:
            try:
                whole = math.isfinite(float(raw[-1]))  # a number, but the control takes whole ones
            except ValueError:
                whole = False
            return None, (f"The link's “{raw[-1][:40]}” for “{what}” is not a {'whole ' if whole else ''}number; "
                          "the control keeps its value.")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            return None, (f"The link's {raw[-1][:40]} for “{what}” is outside {lo}–{hi}; the control keeps its value.")
        return v, ""
    if kind in _SWITCHES:
        r = raw[-1].lower()
        if r in ("1", "true", "on"):
            return True, ""
        if r in ("0", "false", "off"):
            return False, ""
        return None, f"The link's “{r[:40]}” for “{what}” is neither on (1) nor off (0); the control keeps its value."
    raise TypeError(f"ui.bound does not know the control {kind!r}")


def bound(widget, label: str, *args, key: str, unknown: str | None = None, where=None, **kw):
    """Draw ``widget`` (a Streamlit input, e.g. ``st.radio`` or ``col.slider``) with its value kept in the URL under
    ``key`` (module docstring). ``unknown``: how to say that a multiselect's value from a link is not a choice
    (default: "which is not among the choices here"); ``where``: the container for the sentence on a dropped value
    (default: just above the control). Returns the widget's value."""
    kind = widget.__name__
    ss = st.session_state
    fresh = ss.setdefault("_url_fresh", {})
    if key in fresh:
        value, sentence = _from_link(kind, label, fresh.pop(key), args, kw, unknown)
        if sentence:
            (where or st).warning(sentence)
        if value is not None and not (kind == "multiselect" and not value and sentence):
            ss[key] = value  # a link whose every choice was dropped leaves the control as it was
    elif "_" + key in ss and (key not in ss or ss.get("_url_switched")):  # after a page switch: the session's value
        ss[key] = ss["_" + key]
    if key in ss:  # the state wins; a default beside it would only draw Streamlit's warning
        kw = {k: v for k, v in kw.items() if k not in _DEFAULTS}
    value = widget(label, *args, key=key, **kw)
    ss["_" + key] = value
    write(key, value)
    return value


def write(key: str, value) -> None:
    """Put one value in the URL (a list as repeated parameters) and remember the URL as this session's own."""
    text = [_text(v) for v in value] if isinstance(value, (list, tuple)) else _text(value)
    if isinstance(text, list) and not text:
        text = ""
    if st.query_params.get_all(key) != (text if isinstance(text, list) else [text]):
        st.query_params[key] = text
    st.session_state["_url_last"] = _query()
