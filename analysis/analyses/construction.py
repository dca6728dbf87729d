"""The constructed solution beside the trained net of the same depth (He et al. 2015, section 1), from the cards.

A constructed net (``python -m analysis construct``, :mod:`analysis.core.construct`) computes exactly what its
shallower source computes; its card records both errors, measured the same way (float32, this machine). Beside it,
the net of the same architecture that was *trained*, from its own card. If the trained deeper net's training error
is above the construction's, a solution at least as good existed at that depth and training did not find it: an
optimisation failure, not a lack of capacity. Differences of error rates carry Newcombe's 95 % interval.
"""

from __future__ import annotations

import pandas as pd

from ..core.stats import newcombe_diff
from ..core.zoo import available, read_card
from ..engine.registry import Analysis, Context, Table, register

COLUMNS = ("model", "source", "source_depth", "depth", "trained", "constructed_train_error_pct",
           "constructed_test_error_pct", "source_train_error_pct", "source_test_error_pct", "trained_train_error_pct",
           "trained_test_error_pct", "trained_minus_constructed_train_low", "trained_minus_constructed_train_high",
           "train_images", "test_images", "new_blocks")


def construction_table(names) -> pd.DataFrame:
    """One row per constructed model of the zoo that is among ``names`` or was made from one of them: its errors, its
    source's, and the trained net's of its architecture (when the zoo has one).

    Example:
        >>> list(construction_table(["resnet20"])["model"])  # resnet20 is the source of a shipped construction
        ['resnet56-from-resnet20']
        >>> len(construction_table(["resnet110"]))  # nothing was constructed from resnet110
        0
    """
    rows = []
    have = set(available())
    chosen = set(names)
    for n in sorted(have):
        card = read_card(n)
        c = card.constructed
        if not c or not (n in chosen or c["from"] in chosen):
            continue
        trained = card.arch.name if card.arch.name in have else None
        t = read_card(trained) if trained else None
        lo = hi = float("nan")
        if t is not None and t.train_error_pct is not None:
            lo, hi = newcombe_diff(t.train_error_pct, t.train_images or 50_000, card.train_error_pct, card.train_images)
        rows.append({"model": n, "source": c["from"], "source_depth": c["source_depth"], "depth": card.depth,
                     "trained": trained, "constructed_train_error_pct": card.train_error_pct,
                     "constructed_test_error_pct": card.test_error_pct,
                     "source_train_error_pct": c["source_train_error_pct"],
                     "source_test_error_pct": c["source_test_error_pct"],
                     "trained_train_error_pct": None if t is None else t.train_error_pct,
                     "trained_test_error_pct": None if t is None else t.test_error_pct,
                     "trained_minus_constructed_train_low": lo, "trained_minus_constructed_train_high": hi,
                     "train_images": card.train_images, "test_images": card.test_images,
                     "new_blocks": len(c["new_blocks"])})
    return pd.DataFrame(rows, columns=list(COLUMNS))


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    return {"construction": construction_table([n for n in ctx.names if n in available()])}


register(Analysis(
    name="construction", title="The constructed solution: a deeper net made of a trained one plus identity blocks",
    run=_run, scope="zoo", needs_data=False, page="pages/10_Depth.py", order=35,
    tables=(Table("construction", COLUMNS),)))
