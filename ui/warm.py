"""What a fresh server does once, before its first visitor: the imports that every page needs.

Importing this module imports the ``ui`` package, hence PyTorch, pandas, Altair and pyarrow (about 2 s on
this project's 2-core CPU); :func:`warm_up` adds every analysis module (through the registry), Captum (which
the library imports only where it attributes: with its matplotlib, about 1 s) and Streamlit's emoji table
(read by ``st.set_page_config``). Without it the first page of a new server waited for all of that (Home's
first chart 4.8-4.9 s after a restart, 2.7 s with it: ``benchmarks/page_timings.py``).
"""

from __future__ import annotations


def warm_up() -> None:
    from analysis import registry

    registry.load_all()
    import captum.attr  # noqa: F401
    import captum.metrics  # noqa: F401
    import streamlit.emojis  # noqa: F401
