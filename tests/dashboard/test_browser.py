"""A real browser (Playwright driving Debian's Chromium) against `streamlit run app.py` on loopback."""

import re
import shutil
from pathlib import Path

import pytest

from conftest import DATA, HAVE_DATA
from streamlit_server import CHROMIUM_ARGS, IDLE, PAGE_SPECS, PAGES, ROOT, serve, time_rerun

ART = ROOT / "tests" / "artifacts"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [pytest.mark.slow, pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed")]


@pytest.fixture(scope="module")
def server():
    with serve({"RESLENS_DATA": str(DATA), "OMP_NUM_THREADS": "2"}) as url:
        yield url


@pytest.fixture(scope="module")
def browser(tmp_path_factory):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield b
        b.close()


def _open(ctx, url, frames: list | None = None):
    """A new tab at ``url``, idle; with ``frames``, every websocket frame it receives is appended to that list."""
    page = ctx.new_page()
    page.set_default_timeout(240_000)
    if frames is not None:
        page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
    page.goto(url)
    _settle(page)
    return page


def _settle(page) -> None:
    """Wait until the page's script has run: the sidebar's model picker is drawn (every page draws it) and the app is
    idle. The idle state alone also holds for a moment after connecting, before the first run starts."""
    page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first.wait_for()
    page.wait_for_selector(IDLE)


def _set_models(page, names):
    """Use the sidebar's model picker as a person would: clear it, then pick each name."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first
    clear = box.locator('[aria-label="Clear all"]')
    if clear.count():
        time_rerun(page, lambda: clear.first.click())
        assert _chips(page) == [], _chips(page)
        page.wait_for_selector(IDLE)
    for n in names:
        box.locator("input").fill(n)
        option = page.get_by_role("option", name=n, exact=True)  # the exact name: the filter also lists near matches
        time_rerun(page, lambda: option.click())
        page.wait_for_selector(IDLE)
    page.keyboard.press("Escape")
    page.wait_for_selector(IDLE)
    assert _chips(page) == list(names), _chips(page)


def _k(page):
    """The block-deletion page's k slider (Streamlit gives a widget with key=k the class st-key-k)."""
    return page.locator(".st-key-k")


def _slider_value(page) -> str:
    return _k(page).get_by_test_id("stSliderThumbValue").inner_text()


def _nav_labels(page) -> list[str]:
    links = page.get_by_test_id("stSidebarNavLink")
    links.first.wait_for()
    return [t.strip().split("\n")[-1] for t in links.all_inner_texts()]  # the icon, then the title


def test_a_fresh_server_opened_at_a_page_url_lists_the_app_pages(browser):
    """The first visitor of a new server who comes by a page's link (a bookmark of /Claims) gets that page and
    the app's own page list, not Streamlit's legacy list of the files in pages/ ("app", "home", ...)."""
    with serve({"RESLENS_DATA": str(DATA), "OMP_NUM_THREADS": "2"}) as url:
        ctx = browser.new_context(viewport={"width": 1400, "height": 1200})
        page = _open(ctx, f"{url}/Claims")
        page.wait_for_selector(IDLE)
        assert _nav_labels(page) == [p.title for p in PAGE_SPECS]
        assert page.url.split("?")[0].endswith("/Claims")  # the sidebar's settings follow in the query string
        assert page.locator("h1").first.inner_text().startswith("Claims")
        assert page.get_by_test_id("stException").count() == 0
        ctx.close()


def _record(page) -> list:
    """The websocket frames the page receives from now on (Streamlit's ForwardMsg protobufs)."""
    frames: list = []
    page.on("websocket", lambda ws: ws.on("framereceived", lambda f: frames.append(f)))
    return frames


def _walk(page, base: str, frames: list, query: str = "", tag: str = "") -> dict[str, list[str]]:
    """Open every page (with ``query``), wait until it has computed, screenshot it, check its charts' specs; returns
    {page: the problems of its charts} and asserts no page raised an exception."""
    from playwright.sync_api import expect

    from vega_checks import charts_in_frames, problems

    bad, seen = {}, {}
    for name in PAGES:
        frames.clear()
        page.goto(f"{base}/{name}{query}")
        page.wait_for_selector(IDLE)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
        page.wait_for_selector(IDLE)
        if name not in ("Reports", "Curvature", "Claims"):  # these measure when asked: minutes on a CPU
            page.get_by_test_id("stVegaLiteChart").first.wait_for()
            page.wait_for_selector(IDLE)
        page.screenshot(path=str(ART / f"{name or 'Home'}{tag}.png"), full_page=True)
        assert page.get_by_test_id("stException").count() == 0, name
        charts = charts_in_frames(frames)
        seen[name or "Home"] = len(charts)
        found = [f"chart {i}: {p}" for i, c in enumerate(charts) for p in problems(c)]
        if found:
            bad[name or "Home"] = found
    return bad, seen


@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found")
def test_every_page_and_the_deletion_slider(server, browser):
    """Every page as a new user sees it (the default sidebar): no exception, and every chart readable by the rules of
    tests/vega_checks.py (a legend for every set of series, axis titles in words, error axes in 0-100 %). Then the
    block-deletion slider."""
    from playwright.sync_api import expect

    ART.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 2200})
    page = _open(ctx, server)
    # the navigation is the app's one page list, titled by hand: "Home" first, no file-name label ("app")
    labels = _nav_labels(page)
    assert labels == [p.title for p in PAGE_SPECS], labels
    frames = _record(page)
    bad, seen = _walk(page, server, frames)
    assert not bad, bad
    assert seen["Home"] >= 1 and seen["Block_deletion"] >= 4 and seen["Depth"] >= 5, seen  # the specs were read
    page.goto(f"{server}/Block_deletion")
    page.wait_for_selector(IDLE)
    before = _slider_value(page)
    thumb = _k(page).get_by_role("slider")
    thumb.focus()
    thumb.press("ArrowRight")
    expect(_k(page).get_by_test_id("stSliderThumbValue")).to_have_text(str(int(before) + 1))
    page.wait_for_selector(IDLE)
    assert page.get_by_test_id("stException").count() == 0
    page.screenshot(path=str(ART / "Block_deletion_after_slider.png"))
    ctx.close()


@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found")
def test_the_papers_depths_side_by_side_stay_readable(server, browser):
    """The 2015 comparison (six nets, 20/56/110 layers, picked by the sidebar's preset) on the pages where plain110's
    large responses used to flatten the rest: log scale where the values span orders of magnitude, legends whole."""
    from vega_checks import charts_in_frames, problems

    ctx = browser.new_context(viewport={"width": 1400, "height": 2200})
    frames: list = []
    page = _open(ctx, f"{server}/Responses?samples=100", frames)
    page.get_by_test_id("stSidebar").get_by_test_id("stSelectbox").first.click()
    preset = page.get_by_role("option", name="He et al. 2015: plain vs residual, 20/56/110 layers")
    time_rerun(page, lambda: preset.click())
    page.wait_for_selector(IDLE)
    page.get_by_test_id("stVegaLiteChart").first.wait_for()
    page.wait_for_selector(IDLE)
    assert _chips(page) == ["plain20", "plain56", "plain110", "resnet20", "resnet56", "resnet110"]
    page.screenshot(path=str(ART / "Responses_six_nets.png"), full_page=True)
    charts = [c for c in charts_in_frames(frames) if any(len(set(df.get("model", []))) == 6 for df in c.data.values())]
    assert charts and not [p for c in charts for p in problems(c)]
    std = next(c for c in charts if c.spec.get("encoding", {}).get("y", {}).get("field") in ("std", "std_all"))
    assert std.spec["encoding"]["y"]["scale"]["type"] == "log", std.spec["encoding"]["y"]
    assert "Log scale" in page.get_by_test_id("stCaptionContainer").first.inner_text()
    ctx.close()


def _chips(page) -> list[str]:
    """The models chosen in the sidebar, as its multiselect shows them."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first
    return box.locator("[data-tag]").evaluate_all("els => els.map(e => e.getAttribute('aria-label'))")


@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found")
def test_the_view_lives_in_the_url(server, browser):
    """Choose models and k on Block deletion: the URL says so; a reload and the copied link in another browser show
    the same view; a link with an unknown model and out-of-range values says in one sentence what it dropped; a page
    switch keeps the sidebar and writes it back to the URL."""
    from playwright.sync_api import expect

    ctx = browser.new_context(viewport={"width": 1400, "height": 1800})
    page = _open(ctx, f"{server}/Block_deletion?samples=100")
    _set_models(page, ["resnet20", "resnet56-preact"])
    thumb = _k(page).get_by_role("slider")
    start = int(_slider_value(page))
    thumb.focus()
    time_rerun(page, lambda: thumb.press("ArrowRight"))
    expect(_k(page).get_by_test_id("stSliderThumbValue")).to_have_text(str(start + 1))
    page.wait_for_selector(IDLE)
    url = page.url
    assert "models=resnet56-preact" in url and f"k={start + 1}" in url and "samples=100" in url, url
    page.reload()
    _settle(page)
    assert _chips(page) == ["resnet20", "resnet56-preact"] and _slider_value(page) == str(start + 1)
    other = browser.new_context(viewport={"width": 1400, "height": 1800})  # a colleague opening the copied link
    p2 = _open(other, url)
    assert _chips(p2) == ["resnet20", "resnet56-preact"] and _slider_value(p2) == str(start + 1)
    p2.screenshot(path=str(ART / "Block_deletion_from_link.png"))
    p3 = _open(other, f"{server}/Block_deletion?models=resnet20&models=nosuchnet&k=999&samples=7&seed=5")
    warnings = " ".join(p3.get_by_test_id("stAlertContentWarning").all_inner_texts())
    assert "nosuchnet" in warnings and "left out" in warnings, warnings
    assert "999" in warnings and "“7”" in warnings, warnings
    assert _chips(p3) == ["resnet20"] and p3.locator(".st-key-seed input").input_value() == "5"
    assert p3.get_by_test_id("stException").count() == 0
    p3.screenshot(path=str(ART / "Block_deletion_bad_link.png"))
    p3.get_by_test_id("stSidebarNavLink").filter(has_text="Responses").click()
    p3.wait_for_selector(IDLE)
    expect(p3).to_have_url(re.compile(r"/Responses\?.*models=resnet20"))
    assert "seed=5" in p3.url and "nosuchnet" not in p3.url and _chips(p3) == ["resnet20"]
    ctx.close()
    other.close()


@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found")
def test_two_browser_sessions_are_independent(server, browser):
    from playwright.sync_api import expect

    a, b = browser.new_context(viewport={"width": 1400, "height": 1600}), browser.new_context(viewport={"width": 1400, "height": 1600})
    pa, pb = _open(a, f"{server}/Block_deletion"), _open(b, f"{server}/Block_deletion")
    start = _slider_value(pb)
    thumb = _k(pa).get_by_role("slider")
    thumb.focus()
    for _ in range(2):
        thumb.press("ArrowRight")
    expect(_k(pa).get_by_test_id("stSliderThumbValue")).to_have_text(str(int(start) + 2))
    pa.wait_for_selector(IDLE)
    pb.reload()
    _settle(pb)
    assert _slider_value(pb) == start  # the other session still shows its own k
    assert pa.get_by_test_id("stException").count() == 0 and pb.get_by_test_id("stException").count() == 0
    a.close()
    b.close()


def test_uploads_show_names_literally_and_say_what_happened(server, browser):
    """A checkpoint named with markdown and HTML shows its name as typed; bad images each get a message."""
    import io

    from playwright.sync_api import expect
    from safetensors.torch import save as st_save

    from analysis.core.models import build_model

    ctx = browser.new_context(viewport={"width": 1400, "height": 2000})
    requests: list[str] = []
    ctx.on("request", lambda r: requests.append(r.url))
    page = _open(ctx, server)
    # .streamlit/config.toml: the uploader states the true limit, readers see no Deploy button
    expect(page.get_by_test_id("stFileUploaderDropzoneInstructions").first).to_contain_text("64MB")
    assert page.get_by_test_id("stAppDeployButton").count() == 0
    evil = "**bold**_i_[l](http://x)![](//HOST/a)<b>x</b>.safetensors"
    data = st_save({k: v.contiguous() for k, v in build_model("resnet20").state_dict().items()},
                   metadata={"residual": "true"})
    page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(
        files=[{"name": evil, "mimeType": "application/octet-stream", "buffer": data}])
    ok = page.get_by_test_id("stAlertContentSuccess").filter(has_text="parameters").first
    try:
        ok.wait_for(timeout=120_000)
    finally:
        ART.mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(ART / "upload_literal_name.png"))
    expect(ok).to_contain_text("**bold**_i_[l](http://x)![](//HOST/a)<b>x</b>", timeout=120_000)
    assert ok.locator("img").count() == 0 and ok.locator("a").count() == 0 and ok.locator("b").count() == 0
    page.wait_for_selector(IDLE)
    assert page.get_by_test_id("stException").count() == 0
    # a name typed for Import is shown as typed, in the error that refuses it: no image fetched, no link
    trap = "![p](http://127.0.0.1:9/p.png)"
    name_box = page.locator(".st-key-import_name input")
    name_box.fill(trap)
    name_box.press("Enter")
    page.wait_for_selector(IDLE)
    page.get_by_role("button", name="Import", exact=True).click()
    err = page.get_by_test_id("stAlertContentError").filter(has_text="127.0.0.1:9").first
    err.wait_for(timeout=120_000)
    assert trap in err.inner_text().replace("\u200b", "")  # as typed (a zero-width space keeps it from being a link)
    assert err.locator("img").count() == 0 and err.locator("a").count() == 0
    page.wait_for_selector(IDLE)
    page.screenshot(path=str(ART / "import_literal_name.png"))
    assert not [u for u in requests if "127.0.0.1:9/" in u], "the typed name made the browser fetch an image"
    assert page.get_by_test_id("stException").count() == 0
    # nothing left the machine: no usage statistics, no fonts or scripts from elsewhere
    assert all(u.startswith(server) or u.startswith(("data:", "blob:")) for u in requests), \
        sorted({u for u in requests if not u.startswith(server)})[:5]
    if HAVE_DATA:
        page.goto(f"{server}/Attributions")
        page.wait_for_selector(IDLE)
        page.get_by_text("upload", exact=True).click()
        page.wait_for_selector(IDLE)
        from PIL import Image

        b = io.BytesIO()
        Image.new("RGB", (64, 64), (10, 200, 30)).save(b, "JPEG")
        jpeg = b.getvalue()
        for name, payload, words in [("notes.png", b"just text, not a picture", "not an image"),
                                     ("cut.jpg", jpeg[: len(jpeg) // 2], "damaged or truncated")]:
            page.get_by_test_id("stFileUploaderDropzoneInput").first.set_input_files(
                files=[{"name": name, "mimeType": "image/png", "buffer": payload}])
            expect(page.get_by_test_id("stAlertContentError").first).to_contain_text(words, timeout=120_000)
            page.wait_for_selector(IDLE)
            assert page.get_by_test_id("stException").count() == 0
    ctx.close()
