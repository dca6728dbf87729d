"""Block-deletion k slider in Chromium: background prefetch off, one step ahead and two steps ahead (the
default), side by side in one run.

    python benchmarks/slider_prefetch.py [--presses 4] [--pause 8] [--depths 0,1,2]   (Debian's chromium, RESLENS_DATA)

For each setting a fresh server opens the Block deletion page with the default sidebar, waits until it is
idle, then moves the k slider one step right ``--presses`` times, pausing ``--pause`` seconds before each
press (a reader looking at the chart; the prefetch runs in that pause; ``--pause 0`` presses the moment the
page is idle). Each time is from the key press to the end of the rerun it starts. Prints every time, the
medians, and their ratios to "off".
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
ap.add_argument("--depths", default="0,1,2", help="RESLENS_PREFETCH settings: steps prefetched ahead (0 = off)")
a = ap.parse_args()

results = {}
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
    for flag in a.depths.split(","):
        label = "prefetch off" if flag == "0" else f"{flag} ahead"
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
if "prefetch off" in results:
    off = statistics.median(results["prefetch off"])
    print("median slider step vs prefetch off: " + ", ".join(
        f"{label} {statistics.median(t):.2f} s = {off / statistics.median(t):.2f}x" for label, t in results.items()
        if label != "prefetch off"))
