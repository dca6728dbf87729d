"""The dashboard layer, by concern: ``session`` (sidebar, settings, shared models, uploads), ``cache`` (every
analysis through ``results(name, models, settings, **params)``, cached, with background prefetch), ``views``
(declared defaults and choices, test images, uploads of images, the report, the claims), ``render`` (colours,
charts with their CSV, progress bars, images), ``url`` (controls whose values live in the URL) and ``nav`` (the one
page list).

Pages import ``ui`` only and use the names below; they read widgets, hand the settings over and draw. The names
are loaded on first use (PEP 562), so ``import ui`` alone imports neither Streamlit nor PyTorch (the browser test
and the benchmarks read ``ui.nav`` without them).
"""

from __future__ import annotations

import importlib

_EXPORTS = {
    "nav": ("PAGES", "PageSpec"),
    "render": ("JPEG_NOTE", "Progress", "color", "dash", "depth_chart", "heat_png", "image_png", "legend",
               "lines_with_points", "log_if_wide", "model_color", "pixel_map", "show_chart", "with_bar", "zip_tables", "auto_scale", "table",
               "column_words", "COLUMN_WORDS"),
    "cache": ("Prefetcher", "cached_error", "estimate", "prefetch", "prefetch_depth", "prefetch_key", "prefetcher", "results",
                "zoo_table"),
    "session": ("DEFAULT_SAMPLES", "KIND_CHOICES", "MAX_UPLOADS", "MAX_UPLOAD_MB", "NORMALIZATION_CHOICES", "Settings", "all_model_names", "arch_name",
                "available", "choose_model", "data_found", "escape_md", "forget_uploads", "friendly", "get_model",
                "import_upload", "is_residual", "link", "need_data", "need_models", "page", "presets", "register_upload",
                "sidebar", "take_upload", "upload_key", "upload_name", "upload_warning", "uploads"),
    "url": ("bound",),
    "views": ("CLASSES", "PAPER_NOTE", "analyses", "choices", "claims", "claims_markdown", "constructed_models",
              "data_status", "defaults", "device_name",
              "deletable_blocks", "heavy_claims", "precision_words", "ratio_precision_words", "deletion_precision_words", "judge_claims", "schedule_note", "normalize", "read_image", "run_report", "shipped_claims",
              "test_image", "test_pool", "verdict_line", "verdicts", "work"),
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}
__all__ = sorted(_WHERE)


def __getattr__(name: str):
    if name in _EXPORTS:  # a submodule: ui.nav, ui.warm, ...
        return importlib.import_module(f"{__name__}.{name}")
    module = _WHERE.get(name)
    if module is None:
        if name in ("warm",):
            return importlib.import_module(f"{__name__}.{name}")
        raise AttributeError(f"module 'ui' has no attribute {name!r}")
    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
