"""ResLens: ``streamlit run app.py``. The page list is ``ui.nav.PAGES``, the only one; each page draws the
sidebar, whose choices persist from page to page."""

import streamlit as st

import ui

st.set_page_config(page_title="ResLens", page_icon="🔭", layout="wide")
st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0),
                       **({"url_path": p.url_path} if p.url_path else {}))
               for i, p in enumerate(ui.PAGES)]).run()
