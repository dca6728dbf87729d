"""The server's memory while checkpoints are uploaded one after another, each in a fresh browser session.

    python benchmarks/upload_memory.py [--uploads 10] [--depth 110]   (needs Debian's chromium; CIFAR-10 optional)

A fresh server; then, ``--uploads`` times: a new browser session opens Home, uploads a different checkpoint
(a freshly initialised resnet110 by default, about 7 MB), waits for its confirmation (with its error on
1,000 test images when CIFAR-10 is there), and closes. The server's resident memory (VmRSS) is read before the
first upload and after each one, once the closed session has been let go. A server that gives an upload's
memory back levels off; one that keeps it grows by about the same amount per upload.

Streamlit keeps a closed session for ``server.disconnectedSessionTTL`` seconds (120 by default) in case the
browser reconnects, and lets it go when its session store is next touched (a later visit). The benchmark runs
the server with ``--ttl`` (default 5 s) so that each closed session is let go before the next upload; with the
default 120 s, sessions closed within two minutes are all still held (about 20 MB each for a 7 MB upload: the
file, its bytes in the session, the model).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch
from safetensors.torch import save as st_save

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from streamlit_server import CHROMIUM_ARGS, IDLE, rss_mb, serve  # noqa: E402

from analysis.core.models import build_model  # noqa: E402


def checkpoint(depth: int, seed: int) -> bytes:
    torch.manual_seed(seed)
    m = build_model(f"resnet{depth}")
    return st_save({k: v.contiguous() for k, v in m.state_dict().items()}, metadata={"residual": "true"})


def upload_once(browser, url: str, data: bytes, name: str) -> float:
    """Seconds from choosing the file to the confirmation; the session is closed afterwards."""
    ctx = browser.new_context(viewport={"width": 1400, "height": 1600})
    page = ctx.new_page()
    page.set_default_timeout(300_000)
    page.goto(url)
    page.wait_for_selector(IDLE)
    t = time.perf_counter()
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(
        files=[{"name": name, "mimeType": "application/octet-stream", "buffer": data}])
    page.get_by_test_id("stAlertContentSuccess").filter(has_text="parameters").first.wait_for()
    page.wait_for_selector(IDLE)
    secs = time.perf_counter() - t
    ctx.close()
    return secs


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--uploads", type=int, default=10)
    ap.add_argument("--depth", type=int, default=110)
    ap.add_argument("--settle", type=float, default=3.0, help="seconds after a session closes before reading RSS")
    ap.add_argument("--ttl", type=int, default=5, help="the server's server.disconnectedSessionTTL (seconds)")
    a = ap.parse_args()
    from playwright.sync_api import sync_playwright

    files = [checkpoint(a.depth, i) for i in range(a.uploads)]
    print(f"{a.uploads} uploads of resnet{a.depth} checkpoints ({len(files[0]) / 2**20:.1f} MB each), each in a "
          "fresh browser session")
    settle = max(a.settle, a.ttl + 3.0)
    with serve({"OMP_NUM_THREADS": "2"}, args=("--server.disconnectedSessionTTL", str(a.ttl))) as url, \
            sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=CHROMIUM_ARGS, headless=True)
        ctx = browser.new_context()  # a first visit, so that the libraries are loaded before the baseline
        page = ctx.new_page()
        page.goto(url)
        page.wait_for_selector(IDLE)
        ctx.close()
        time.sleep(settle)
        base = rss_mb(url.pid)
        print(f"server RSS before any upload: {base:.0f} MB")
        rows = []
        for i, data in enumerate(files, start=1):
            secs = upload_once(browser, url, data, f"net{i}.safetensors")
            time.sleep(settle)  # the closed session outlives its TTL; the next visit lets it go
            r = rss_mb(url.pid)
            rows.append((i, secs, r))
            print(f"after upload {i:2d}: {r:7.0f} MB (+{r - base:5.0f} MB since the first visit; upload took {secs:.1f} s)")
        browser.close()
    first, mid, last = rows[0][2], rows[min(4, len(rows) - 1)][2], rows[-1][2]
    print(f"RSS after 1, 5 and {len(rows)} uploads: {first:.0f}, {mid:.0f}, {last:.0f} MB; growth from upload 5 to "
          f"{len(rows)}: {last - mid:+.0f} MB ({(last - mid) / max(1, len(rows) - 5):+.1f} MB per upload)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
