"""Serve `streamlit run app.py` on loopback for the browser test and the page-timing benchmark."""

from __future__ import annotations

import contextlib
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# Flags that keep Debian's Chromium off the network (../shared/docs/TESTING.md).
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
IDLE = '[data-testid="stApp"][data-test-connection-state="CONNECTED"][data-test-script-state="notRunning"]'


def _page_specs():
    """The app's one page list (ui/nav.py), read by its path: importing the ``ui`` package would import
    Streamlit's caches, PyTorch and every analysis into the harness too."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("_reslens_nav", ROOT / "ui" / "nav.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # dataclasses look their module up while the class is built
    spec.loader.exec_module(mod)
    return mod.PAGES


PAGE_SPECS = _page_specs()
PAGES = [p.url_path for p in PAGE_SPECS]


class ServerURL(str):
    """The server's URL; ``pid`` is the server process (for its memory)."""

    pid: int = 0


def rss_mb(pid: int) -> float:
    """Resident memory of a process in MB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024.0
    return float("nan")


@contextlib.contextmanager
def serve(env: dict | None = None, timeout_s: float = 60.0, args: tuple[str, ...] = ()):
    """Yield the URL of a healthy server on a free loopback port; stop it by its own PID afterwards. The
    on-disk results are off unless ``env`` (or the environment) names a folder for them."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "streamlit", "run", "app.py", "--server.headless", "true",
                             "--server.port", str(port), "--server.address", "127.0.0.1",
                             *args], cwd=ROOT,  # usage statistics are off in .streamlit/config.toml
                            env={"RESLENS_RESULTS": "off", **os.environ, **(env or {})},
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = ServerURL(f"http://127.0.0.1:{port}")
    url.pid = proc.pid
    try:
        deadline = time.time() + timeout_s
        while True:
            try:
                if urllib.request.urlopen(f"{url}/_stcore/health", timeout=1).read() == b"ok":
                    break
            except OSError:
                if time.time() > deadline or proc.poll() is not None:
                    raise RuntimeError("streamlit did not become healthy") from None
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()


# Installed before an action: records when the app's script state goes to "running" and back to "notRunning",
# so that a rerun is timed from the action to its end however fast it is.
_WATCH = """() => {
  const app = document.querySelector('[data-testid="stApp"]');
  // A run already under way when the action comes (a rerun the app asked for, or the previous action's) counts:
  // a click then re-runs the script without the state ever leaving "running", and only its end is seen.
  window.__rerun = {ran: app.getAttribute('data-test-script-state') === 'running', doneAt: null};
  const obs = new MutationObserver(() => {
    const st = app.getAttribute('data-test-script-state');
    if (st === 'running') window.__rerun.ran = true;
    else if (window.__rerun.ran && st === 'notRunning' && window.__rerun.doneAt === null) window.__rerun.doneAt = performance.now();
  });
  obs.observe(app, {attributes: true, attributeFilter: ['data-test-script-state']});
  return performance.now();
}"""


def time_rerun(page, action, timeout_ms: int = 600_000) -> float:
    """Seconds from ``action()`` (e.g. a key press) to the end of the rerun it starts, in the browser's clock."""
    t0 = page.evaluate(_WATCH)
    action()
    # Done when the run ends; an action that starts no run at all (the app idle 5 s after it) ends the wait too,
    # and the caller's own check of the page then says what went wrong instead of a 10-minute timeout.
    page.wait_for_function("""() => {
      const r = window.__rerun;
      if (r.doneAt !== null) return true;
      const idle = document.querySelector('[data-testid="stApp"]').getAttribute('data-test-script-state') === 'notRunning';
      if (!r.ran && idle && performance.now() - %s > 5000) { r.doneAt = performance.now(); return true; }
      return false;
    }""" % t0, timeout=timeout_ms, polling=250)
    return (page.evaluate("() => window.__rerun.doneAt") - t0) / 1000.0


def press_slider(page, key: str, presses: int, pause_s: float = 0.0) -> list[float]:
    """Move the slider with widget key ``key`` one step right ``presses`` times; the time of each rerun.

    ``pause_s`` waits after each rerun before the next press, as a reader looking at the chart would."""
    k = page.locator(f".st-key-{key}")
    thumb = k.get_by_role("slider")
    times = []
    for _ in range(presses):
        if pause_s:
            page.wait_for_timeout(int(pause_s * 1000))
        thumb.focus()
        times.append(time_rerun(page, lambda: thumb.press("ArrowRight")))
        page.wait_for_selector(IDLE)
    return times
