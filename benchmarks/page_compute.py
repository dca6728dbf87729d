"""Each page's computation at the default settings, on this machine's device (CUDA when present), without a
browser: Streamlit's AppTest runs the page script in this process.

    RESLENS_DATA=... python benchmarks/page_compute.py [--pages Responses,Gradient_flow] [--slider 3]

For each page of ``ui/nav.py``: the whole page script with empty caches ("cold": Streamlit's caches cleared
first and the on-disk result store off, so the models are loaded and every analysis computed; the imports a server
makes at start-up, ``ui.warm.warm_up``, made before the first page) and the rerun
after it ("warm"). The browser benchmark (page_timings.py) times the first chart instead, which a page
shows while it computes the rest. Then the
block-deletion page's k slider moved up by one, ``--slider`` times back to back (each step collects what the
background prefetch has ready). A page's background jobs end before the next page is timed (not counted).

"Default settings" are a browser's: the sidebar's 500 test images per measurement and its four models (before
this round AppTest lost the sidebar's values on a page switch and these pages ran on 100 images).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
import time
from pathlib import Path

import streamlit as st
import torch
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
os.environ.setdefault("RESLENS_RESULTS", "off")  # cold means computed, not read from an earlier run's disk store

from ui.nav import PAGES  # noqa: E402


def timed_run(at: AppTest) -> float:
    t = time.perf_counter()
    at.run()
    if at.exception:
        raise SystemExit(f"{at.exception[0].message}")
    return time.perf_counter() - t


def open_cold(spec) -> AppTest:
    """An AppTest on page ``spec`` (of ``ui.nav.PAGES``) whose next run is cold: Streamlit's caches cleared after the
    Home page's run that a page switch needs."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
    st.cache_data.clear()
    st.cache_resource.clear()
    if spec.url_path:
        at.run()
        st.cache_data.clear()
        st.cache_resource.clear()
        at.switch_page(spec.path)
    return at


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--pages", default="", help="page titles or url paths, comma-separated (default: every page)")
    p.add_argument("--slider", type=int, default=3)
    a = p.parse_args()
    wanted = {s for s in a.pages.split(",") if s}
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else "CPU"
    import ui.cache as ui_cache
    from ui.warm import warm_up

    warm_up()  # what the server does before its first visitor: the imports (cold here means empty caches)
    importlib.import_module("torch._dynamo")  # in warm_up since this round; imported here too so older trees compare fairly
    rows = []
    for spec in PAGES:
        if wanted and not {spec.url_path, spec.title} & wanted:
            continue
        at = open_cold(spec)
        cold = timed_run(at)
        warm = timed_run(at)
        ui_cache.prefetcher().drain()  # a page's background jobs (the slider's next steps) end before the next page
        rows.append((spec.title, cold, warm))
        print(f"{spec.title:<20}{cold:>9.1f}{warm:>9.2f}", flush=True)
    steps = []
    if a.slider and (not wanted or {"Block_deletion", "Block deletion"} & wanted):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=1800)
        at.run()
        at.switch_page("pages/3_Block_deletion.py")
        timed_run(at)
        for _ in range(a.slider):
            s = at.slider(key="k")
            s.set_value(s.value + 1)
            steps.append(timed_run(at))
    print(f"\npage computation at the default settings on {dev} (AppTest, seconds)")
    print(f"{'page':<20}{'cold':>9}{'warm':>9}")
    for name, cold, warm in rows:
        print(f"{name:<20}{cold:>9.1f}{warm:>9.2f}")
    if steps:
        print("block-deletion k slider, one step up, back to back (s): " + ", ".join(f"{t:.2f}" for t in steps))


if __name__ == "__main__":
    main()
