"""The dashboard's one page list: ``app.py`` builds ``st.navigation`` from it, and the browser test and
the page-timing benchmark read it (no Streamlit import here)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class PageSpec:
    path: str  # relative to app.py
    title: str
    url_path: str  # "" for the default page
    icon: str  # a Material Symbol, drawn from Streamlit's own font (no emoji font needed)


PAGES: tuple[PageSpec, ...] = (
    PageSpec("pages/home.py", "Home", "", ":material/home:"),
    PageSpec("pages/1_Responses.py", "Responses", "Responses", ":material/straighten:"),
    PageSpec("pages/2_Gradient_flow.py", "Gradient flow", "Gradient_flow", ":material/waves:"),
    PageSpec("pages/3_Block_deletion.py", "Block deletion", "Block_deletion", ":material/content_cut:"),
    PageSpec("pages/4_Attributions.py", "Attributions", "Attributions", ":material/local_fire_department:"),
    PageSpec("pages/5_Loss_landscape.py", "Loss landscape", "Loss_landscape", ":material/landscape:"),
    PageSpec("pages/7_Identity_mappings.py", "Identity mappings", "Identity_mappings", ":material/fork_right:"),
    PageSpec("pages/6_Reports.py", "Reports", "Reports", ":material/inventory_2:"),
)


def spec(path: str) -> PageSpec:
    for p in PAGES:
        if p.path == path:
            return p
    raise KeyError(f"{path} is not in the page list (ui/nav.py)")
