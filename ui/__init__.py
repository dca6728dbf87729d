"""The dashboard's helpers, by concern: ``session`` (sidebar, settings, shared models), ``results`` (every
analysis through ``results(name, models, settings, **params)``, cached, with background prefetch),
``render`` (colours, charts with their CSV, progress bars, images) and ``nav`` (the one page list).

Pages stay thin: they read the settings, ask for results and draw them.
"""

from analysis.core import data as D  # noqa: F401  (pages read data status and class names through ui.D)
from analysis.core.zoo import available  # noqa: F401

from .nav import PAGES, PageSpec  # noqa: F401
from .render import (JPEG_NOTE, Progress, color, depth_chart, heat_png, image_png, model_color,  # noqa: F401
                     show_chart, with_bar, zip_tables)
from .results import (Prefetcher, _batch, _prefix, batch, cached_error, prefetch, prefetch_depth, prefetch_key,  # noqa: F401
                      prefetcher, results, zoo_table)
from .session import (Settings, _zoo_model, all_model_names, arch_name, data_found, friendly,  # noqa: F401
                      get_model, is_residual, link, need_data, need_models, page, register_upload, sidebar, uploads,
                      MAX_UPLOADS, choose_model, escape_md, forget_uploads, upload_name, upload_key,
                      take_upload, NORMALIZATION_CHOICES, KIND_CHOICES, upload_warning,
                      import_upload)
