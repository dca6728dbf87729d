"""A real browser (Playwright driving Debian's Chromium) against `streamlit run app.py` on loopback."""

import shutil
from pathlib import Path

import pytest

from conftest import DATA, HAVE_DATA
from streamlit_server import CHROMIUM_ARGS, IDLE, PAGE_SPECS, PAGES, ROOT, serve

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


def _open(ctx, url):
    page = ctx.new_page()
    page.set_default_timeout(240_000)
    page.goto(url)
    page.wait_for_selector(IDLE)
    return page


def _set_models(page, names):
    """Use the sidebar's model picker as a person would: clear it, then pick each name."""
    box = page.get_by_test_id("stSidebar").get_by_test_id("stMultiSelect").first
    clear = box.locator('[aria-label="Clear all"]')
    if clear.count():
        clear.first.click()
    for n in names:
        box.locator("input").fill(n)
        page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    page.wait_for_selector(IDLE)


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
        assert page.url.endswith("/Claims")
        assert page.locator("h1").first.inner_text().startswith("Claims")
        assert page.get_by_test_id("stException").count() == 0
        ctx.close()


@pytest.mark.skipif(not HAVE_DATA, reason="CIFAR-10 not found")
def test_every_page_and_the_deletion_slider(server, browser):
    from playwright.sync_api import expect

    ART.mkdir(parents=True, exist_ok=True)
    ctx = browser.new_context(viewport={"width": 1400, "height": 2200})
    page = _open(ctx, server)
    # the navigation is the app's one page list, titled by hand: "Home" first, no file-name label ("app")
    labels = _nav_labels(page)
    assert labels == [p.title for p in PAGE_SPECS], labels
    for name in PAGES:
        page.goto(f"{server}/{name}")
        page.wait_for_selector(IDLE)
        expect(page.get_by_test_id("stStatusWidget")).to_have_count(0)
        page.wait_for_selector(IDLE)
        if name not in ("Reports", "Curvature", "Claims"):  # these two measure when asked: minutes on a CPU
            page.get_by_test_id("stVegaLiteChart").first.wait_for()
            page.wait_for_selector(IDLE)
        page.screenshot(path=str(ART / f"{name or 'Home'}.png"))
        assert page.get_by_test_id("stException").count() == 0, name
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
    pb.wait_for_selector(IDLE)
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
