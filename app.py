"""ResLens: ``streamlit run app.py``. The page list is ``ui.nav.PAGES``, the only one; each page draws the
sidebar, whose choices persist from page to page.

Streamlit reads this file in two ways: ``streamlit run`` imports it to find ``app``, the server (an
``st.App``), whose start-up imports the library once before the first visitor (``ui.warm``); every browser
session then runs it as ``__main__``, which draws the navigation."""

import streamlit as st

if __name__ == "__main__":  # a browser session's run
    import ui

    st.set_page_config(page_title="ResLens", page_icon="🔭", layout="wide")
    chosen = st.navigation([st.Page(p.path, title=p.title, icon=p.icon, default=(i == 0),
                                    **({"url_path": p.url_path} if p.url_path else {}))
                            for i, p in enumerate(ui.PAGES)])
    try:
        chosen.run()
    finally:  # the page's temporaries go back to the system once, when its script ends (stopped or not)
        from ui.warm import release_memory

        release_memory()
else:  # imported by `streamlit run app.py`: the server
    from ui.warm import tune_allocator

    tune_allocator()  # before the server starts its threads: each thread that allocates first would get an arena
    import time
    from contextlib import asynccontextmanager

    from streamlit.logger import get_logger

    @asynccontextmanager
    async def _start(_app):
        t = time.perf_counter()
        from ui.warm import warm_up

        warm_up()
        get_logger("reslens").info("ResLens: library imported in %.1f s, before the first visitor",
                                   time.perf_counter() - t)
        yield

    app = st.App(__file__, lifespan=_start)
