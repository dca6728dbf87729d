"""Every page of the one page list (ui/nav.py) runs with the default sidebar, draws without an exception, and
every chart it draws has data."""

import pytest
from streamlit.testing.v1 import AppTest

from conftest import HAVE_DATA, ROOT
from streamlit_server import PAGE_SPECS


@pytest.mark.parametrize("spec", PAGE_SPECS, ids=lambda p: p.title)
def test_every_page_runs(spec):
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=600)
    at.session_state["models"] = ["plain20", "resnet20"]
    at.session_state["samples"] = 100
    at.run()
    assert not at.exception, at.exception
    if spec.path != "pages/home.py":
        at.switch_page(spec.path).run()
    assert not at.exception, at.exception
    assert at.title and at.title[0].value  # the page's own heading
    for chart in at.get("vega_lite_chart"):
        assert chart.proto.datasets and chart.proto.datasets[0].data.data, spec.title
    if HAVE_DATA and spec.url_path in ("Responses", "Gradient_flow", "Block_deletion"):
        assert at.get("vega_lite_chart"), f"{spec.title} drew no chart with the default sidebar"
