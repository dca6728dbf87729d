"""What a fresh server does once, before its first visitor (``app.py`` calls :func:`warm_up` from the
server's start-up).

1. The allocator: :func:`tune_allocator` makes the process give freed memory back and keep what a computation
   reuses (README, *Numbers you can trust*, has the measurement); ``app.py`` also calls it when the server imports
   it, before the server's threads start.
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

M_TRIM_THRESHOLD, M_MMAP_THRESHOLD, M_ARENA_MAX = -1, -3, -8  # glibc's mallopt parameters (malloc.h)
MMAP_THRESHOLD = 32 * 1024 * 1024  # bytes: larger blocks are mapped, smaller ones reuse the heap
TRIM_THRESHOLD = 128 * 1024 * 1024  # bytes: free memory the heap keeps at its top until the page's script ends
ARENA_MAX = 1  # every thread allocates from the main heap (a thread's own arena unmaps each heap as it empties)


def tune_allocator() -> bool:
    """Make the server give freed memory back (glibc only; a no-op elsewhere).

    Streamlit runs each browser session's script in a thread of its own; glibc gives threads their own malloc
    arenas and, after a large block is freed, raises its mmap threshold so that later tensors of that size come
    from an arena, which keeps the pages. A session's temporaries (an evaluation, an upload) then stayed in the
    process (``benchmarks/upload_memory.py`` measures it). A fixed mmap threshold of 32 MB (larger tensors are mapped
    and unmapped, smaller ones reuse the heap) keeps it level; the server hands the free pages back when a page's
    script ends and after each background result (:func:`release_memory`). The 256 KB threshold used before made
    every activation a fresh mapping whose pages the kernel zeroes on first touch: the analyses ran 2-2.5x slower.
    Fixing the mmap threshold also fixes glibc's trim threshold, at 128 KB: an activation freed at the heap's top
    went back to the system at once and the next one was faulted in again, mid-computation (the Block deletion page
    1.4x slower). The trim threshold of 128 MB keeps such memory for the next tensor until the page's script ends.
    One arena: a thread's own arena is made of 64 MB heaps, and glibc unmaps each one as soon as it empties,
    whatever the trim threshold; a page computed in such a thread faulted its activations in again (Block deletion
    after Gradient flow in one process: 8.6-10.5 s with two arenas, 8.4-8.9 s with one). One arena also hands all
    its free pages back at once (``benchmarks/allocator.py --pages``; ``tests/dashboard/test_allocator.py`` counts
    the page faults)."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        ok = libc.mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
        ok = libc.mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1 and ok
        return bool(libc.mallopt(M_ARENA_MAX, ARENA_MAX) == 1 and ok)
    except (OSError, AttributeError):
        return False


def release_memory() -> None:
    """Return the allocator's free pages to the system: when a page's script ends (``app.py``), after a prefetched
    result, an upload dropped or a checkpoint evaluated (blocks under the mmap threshold come from the arenas, which
    keep freed pages otherwise). Not after each analysis of a page: the next one would fault the same pages in
    again (the Depth page's 16 runs 1.1x slower, 2.6 s of its CPU time in the kernel against 0.8;
    ``benchmarks/allocator.py --pages``)."""
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
