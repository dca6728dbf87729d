"""Training curves from the model cards: the degradation figure (He et al. 2015, Fig. 1 and 6)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..engine.registry import Analysis, Context, Table, register
from ..core.zoo import PRETRAINED, available, read_card


def training_curves(names: list[str], root: Path = PRETRAINED) -> pd.DataFrame:
    """One row per (model, epoch): train error (augmented batches, train mode, during the epoch),
    test error (10k test images, eval mode, after the epoch), lr and train loss.

    Example:
        >>> c = training_curves(["resnet20"])  # a shipped model: its card's history, one row per epoch
        >>> int(c["epoch"].max()) == len(c)
        True
    """
    rows = []
    for n in names:
        card = read_card(n, root)
        for h in card.history:
            rows.append({"model": n, "residual": card.residual, "depth": card.depth, "epoch": h["epoch"],
                         "iteration": h["iteration"], "train_error_pct": h["train_error_pct"],
                         "test_error_pct": h["test_error_pct"], "train_loss": h["train_loss"], "lr": h["lr"]})
    return pd.DataFrame(rows)


def epochs_to_reach(curves: pd.DataFrame, train_error_pct: float = 10.0) -> pd.DataFrame:
    """Per model: the first epoch whose training error (augmented batches, train mode) is below
    ``train_error_pct`` (None if never), and the last epoch's train and test error."""
    rows = []
    for m, c in curves.groupby("model", sort=False):
        c = c.sort_values("epoch")
        hit = c[c["train_error_pct"] < train_error_pct]
        rows.append({"model": m, "threshold_pct": train_error_pct,
                     "first_epoch_below": int(hit["epoch"].iloc[0]) if len(hit) else None,
                     "epochs": int(c["epoch"].iloc[-1]), "last_train_error_pct": float(c["train_error_pct"].iloc[-1]),
                     "last_test_error_pct": float(c["test_error_pct"].iloc[-1])})
    return pd.DataFrame(rows)


SPEED_THRESHOLDS = (10.0, 20.0)  # training error (%) whose first epoch below it is reported (pages and claims)


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    curves = training_curves([n for n in ctx.names if n in available()])
    speed = pd.concat([epochs_to_reach(curves, t) for t in SPEED_THRESHOLDS], ignore_index=True) if len(curves) else \
        pd.DataFrame(columns=list(SPEED_COLUMNS))
    return {"training": curves, "training_speed": speed}


SPEED_COLUMNS = ("model", "threshold_pct", "first_epoch_below", "epochs", "last_train_error_pct", "last_test_error_pct")


register(Analysis(
    name="training", title="Training curves from the model cards (the degradation figure)", run=_run, scope="zoo",
    needs_data=False, page="pages/home.py", order=80,
    tables=(Table("training", ("model", "residual", "depth", "epoch", "iteration", "train_error_pct",
                               "test_error_pct", "train_loss", "lr")),
            Table("training_speed", SPEED_COLUMNS))))
