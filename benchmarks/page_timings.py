"""Time from opening each page to its first chart, and of a block-deletion slider change, in Chromium.

    python benchmarks/page_timings.py        (needs Debian's chromium and CIFAR-10 via RESLENS_DATA)

Each page is opened in a fresh browser session of a fresh server (cold caches, default sidebar), then
opened again (warm caches). The slider change is measured from the key press to the end of the rerun it
starts, pressed as soon as the page is idle (benchmarks/slider_prefetch.py times it with a reader's pause).
"""

import sys
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from streamlit_server import CHROMIUM_ARGS, IDLE, PAGES, press_slider, serve  # noqa: E402

with serve() as url:
    rows = []
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        for name in PAGES:
            times = []
            for _ in range(2):  # cold, then warm
                ctx = b.new_context(viewport={"width": 1400, "height": 1200})
                page = ctx.new_page()
                page.set_default_timeout(600_000)
                t = time.perf_counter()
                page.goto(f"{url}/{name}")
                if name == "Reports":
                    page.wait_for_selector(IDLE)
                else:
                    page.get_by_test_id("stVegaLiteChart").first.wait_for()
                times.append(time.perf_counter() - t)
                ctx.close()
            rows.append((name or "Home", *times))
        ctx = b.new_context(viewport={"width": 1400, "height": 1200})
        page = ctx.new_page()
        page.set_default_timeout(600_000)
        page.goto(f"{url}/Block_deletion")
        page.wait_for_selector(IDLE)
        slider_times = press_slider(page, "k", 3)
        b.close()
print("page                first chart, cold (s)   warm (s)")
for name, cold, warm in rows:
    print(f"{name:<20}{cold:>10.1f}{warm:>20.1f}")
print("block-deletion slider change (k -> k+1), s: " + ", ".join(f"{t:.2f}" for t in slider_times))
