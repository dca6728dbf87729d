"""Training curves from the model cards: the degradation figure (He et al. 2015, Fig. 1 and 6)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .zoo import PRETRAINED, load_card


def training_curves(names: list[str], root: Path = PRETRAINED) -> pd.DataFrame:
    """One row per (model, epoch): train error (augmented batches, train mode, during the epoch),
    test error (10k test images, eval mode, after the epoch), lr and train loss."""
    rows = []
    for n in names:
        card = load_card(n, root)
        for h in card["history"]:
            rows.append({"model": n, "residual": card["residual"], "depth": card["depth"], "epoch": h["epoch"],
                         "iteration": h["iteration"], "train_error_pct": h["train_error_pct"],
                         "test_error_pct": h["test_error_pct"], "train_loss": h["train_loss"], "lr": h["lr"]})
    return pd.DataFrame(rows)
