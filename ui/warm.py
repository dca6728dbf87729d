"""What a fresh server does once, before its first visitor (``app.py`` calls :func:`warm_up` from the
server's start-up).

1. The allocator: :func:`tune_allocator` makes the process give freed memory back (README, *Numbers you can
   trust*, has the measurement).
2. The imports every page needs: the dashboard's modules (Streamlit, PyTorch, pandas, Altair, pyarrow), every
   analysis module (through the registry), Captum (which the library imports only where it attributes),
   ``torch._dynamo`` (which PyTorch's FLOP counter imports the first time it counts) and Streamlit's emoji table
   (read by ``st.set_page_config``). Without this the first page of a new server waited
   for all of it (``benchmarks/page_timings.py`` measures the difference).
3. The page list is app.py's ``st.navigation`` from the first session on. Streamlit decides whether an app
   uses its legacy ``pages/`` folder mode when the first session starts and switches it off only when
   ``st.navigation`` runs; a first visitor who came by a page's link (say /Curvature) had that page run
   without app.py, under a sidebar listing the files of ``pages/``. This sets that switch at start-up,
   where ``st.navigation`` would set it.
"""

from __future__ import annotations

import ctypes
import ctypes.util

M_MMAP_THRESHOLD, M_ARENA_MAX = -3, -8  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # bytes: larger blocks are mapped, smaller ones reuse the arenas


def tune_allocator() -> bool:
    """Make the server give freed memory back (glibc only; a no-op elsewhere).

    Streamlit runs each browser session's script in a thread of its own; glibc gives threads their own malloc
    arenas and, after a large block is freed, raises its mmap threshold so that later tensors of that size come
    from an arena, which keeps the pages. A session's temporaries (an evaluation, an upload) then stayed in the
    process (``benchmarks/upload_memory.py`` measures it). A fixed threshold of 32 MB (larger tensors are mapped
    and unmapped, smaller ones reuse the arenas) and two arenas keep it level. The 256 KB threshold used before made
    every activation a fresh mapping whose pages the kernel zeroes on first touch: the analyses ran 2-2.5x slower
    (``benchmarks/allocator.py``)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        return bool(libc.mallopt(M_ARENA_MAX, 2) == 1 and ok)
    except (OSError, AttributeError):
        return False


def release_memory() -> None:
    """Return the allocator's free pages to the system (after an upload is dropped, an analysis computed or a
    checkpoint evaluated: blocks under the mmap threshold come from the arenas, which keep freed pages otherwise)."""
    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def use_app_navigation() -> None:
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False


def warm_up() -> None:
    tune_allocator()
    use_app_navigation()
    import importlib

    for m in ("cache", "render", "session", "views"):  # `import ui` alone loads none of them (PEP 562)
        importlib.import_module(f"ui.{m}")
    from analysis.engine import registry

    registry.load_all()
    import captum.attr  # noqa: F401
    import captum.metrics  # noqa: F401
    import streamlit.emojis  # noqa: F401
    import torch._dynamo  # noqa: F401  (the FLOP counter's dispatch mode imports it on first use: 2.8 s here)
