"""Block-deletion k slider in Chromium: background prefetch of k + 1 on vs off, side by side in one run.

    python benchmarks/slider_prefetch.py [--presses 4] [--pause 8]     (Debian's chromium, RESLENS_DATA)

For each setting a fresh server opens the Block deletion page with the default sidebar, waits until it is
idle, then moves the k slider one step right ``--presses`` times, pausing ``--pause`` seconds before each
press (a reader looking at the chart; the prefetch runs in that pause). Each time is from the key press to
the end of the rerun it starts. Prints every time, the medians, and their ratio.
"""

import argparse
import statistics
import sys
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from streamlit_server import CHROMIUM_ARGS, IDLE, press_slider, serve  # noqa: E402

ap = argparse.ArgumentParser()
ap.add_argument("--presses", type=int, default=4)
ap.add_argument("--pause", type=float, default=8.0)
a = ap.parse_args()

results = {}
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
    for label, flag in (("prefetch off", "0"), ("prefetch on", "1")):
        with serve({"RESLENS_PREFETCH": flag}) as url:
            ctx = b.new_context(viewport={"width": 1400, "height": 1200})
            page = ctx.new_page()
            page.set_default_timeout(600_000)
            page.goto(f"{url}/Block_deletion")
            page.get_by_test_id("stVegaLiteChart").first.wait_for()
            page.wait_for_selector(IDLE)
            results[label] = press_slider(page, "k", a.presses, pause_s=a.pause)
            ctx.close()
    b.close()
for label, times in results.items():
    print(f"{label:<13} k -> k+1, s: " + ", ".join(f"{t:.2f}" for t in times)
          + f"   median {statistics.median(times):.2f}")
off, on = (statistics.median(results[k]) for k in ("prefetch off", "prefetch on"))
print(f"median slider step, prefetch off / on: {off:.2f} / {on:.2f} s = {off / on:.2f}x")
