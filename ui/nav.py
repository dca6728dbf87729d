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
    PageSpec("pages/home.py", "Home", url_path="", icon=":material/home:"),
    PageSpec("pages/1_Responses.py", "Responses", url_path="Responses", icon=":material/straighten:"),
    PageSpec("pages/2_Gradient_flow.py", "Gradient flow", url_path="Gradient_flow", icon=":material/waves:"),
    PageSpec("pages/3_Block_deletion.py", "Block deletion", url_path="Block_deletion", icon=":material/content_cut:"),
    PageSpec("pages/4_Attributions.py", "Attributions", url_path="Attributions", icon=":material/local_fire_department:"),
    PageSpec("pages/5_Loss_landscape.py", "Loss landscape", url_path="Loss_landscape", icon=":material/landscape:"),
    PageSpec("pages/8_Curvature.py", "Curvature", url_path="Curvature", icon=":material/query_stats:"),
    PageSpec("pages/7_Identity_mappings.py", "Identity mappings", url_path="Identity_mappings", icon=":material/fork_right:"),
    PageSpec("pages/10_Depth.py", "Depth", url_path="Depth", icon=":material/layers:"),
    PageSpec("pages/9_Claims.py", "Claims", url_path="Claims", icon=":material/gavel:"),
    PageSpec("pages/6_Reports.py", "Reports", url_path="Reports", icon=":material/inventory_2:"),
)
