"""Time from opening each page to its first chart, and of a block-deletion slider change, in Chromium.

    python benchmarks/page_timings.py        (needs Debian's chromium and CIFAR-10 via RESLENS_DATA)

Each page is opened in a fresh browser session of a fresh server (cold caches, default sidebar, an empty
on-disk result store), then opened again (warm caches). Then the server is stopped and a new one started
on the same result store (a restart: Streamlit's caches are empty, the disk holds the results), and every
page is opened once more. The slider change is measured from the key press to the end of the rerun it
starts, pressed as soon as the page is idle (benchmarks/slider_prefetch.py times it with a reader's pause).
"""

import sys
import tempfile
import time
from pathlib import Path

from playwright.sync_api import sync_playwright

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from streamlit_server import CHROMIUM_ARGS, IDLE, PAGES, press_slider, serve  # noqa: E402

# Pages whose heavy work waits for a button or a toggle: timed until the page is idle.
NO_CHART = {"Reports", "Curvature", "Claims"}


def open_page(browser, url: str, name: str) -> float:
    ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
    page = ctx.new_page()
    page.set_default_timeout(900_000)
    t = time.perf_counter()
    page.goto(f"{url}/{name}")
    if name in NO_CHART:
        page.wait_for_selector(IDLE)
    else:
        page.get_by_test_id("stVegaLiteChart").first.wait_for()
    secs = time.perf_counter() - t
    ctx.close()
    return secs


store = tempfile.mkdtemp(prefix="reslens-results-")
rows: dict[str, list[float]] = {}
with sync_playwright() as p:
    b = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
    with serve({"RESLENS_RESULTS": store}) as url:
        for name in PAGES:
            rows[name or "Home"] = [open_page(b, url, name), open_page(b, url, name)]  # cold, then warm
        ctx = b.new_context(viewport={"width": 1400, "height": 1200})
        page = ctx.new_page()
        page.set_default_timeout(600_000)
        page.goto(f"{url}/Block_deletion")
        page.wait_for_selector(IDLE)
        slider_times = press_slider(page, "k", 3)
        ctx.close()
    with serve({"RESLENS_RESULTS": store}) as url:  # a restart on the same result store
        for name in PAGES:
            rows[name or "Home"].append(open_page(b, url, name))
    b.close()
print("page                first start, cold (s)   warm (s)   after a restart (s)")
for name, (cold, warm, again) in rows.items():
    print(f"{name:<20}{cold:>10.1f}{warm:>20.1f}{again:>14.1f}")
print("block-deletion slider change (k -> k+1), s: " + ", ".join(f"{t:.2f}" for t in slider_times))
