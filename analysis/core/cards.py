"""A model card read once into one typed record (as torchvision's ``Weights.meta``), and the zoo's one table.

Every model in ``pretrained/`` (and every imported one) has a JSON card written by the command that made it
(``train`` or ``import``). :func:`read_card` turns it into a :class:`ModelCard`; :func:`zoo_table` makes the
zoo's table from the cards. The Home page, ``python -m analysis models``, the variants analysis and the claims all
read these, never the JSON.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd

from .arch import Arch, parse_name

FULL_RECIPE_ITERATIONS = 64_000  # He et al. 2015, section 4.2: 64k iterations on CIFAR-10


@dataclass(frozen=True)
class ModelCard:
    """What a card records: the architecture, how the net was made, and its measured errors."""

    name: str
    arch: Arch
    params: int | None = None  # None only in a hand-written card that records the weights' sha256 alone
    test_error_pct: float | None = None
    test_images: int = 10_000
    train_error_pct: float | None = None  # eval mode on the un-augmented training images; None if imported
    train_images: int | None = None
    iterations: int | None = None  # None: not trained by ResLens (imported)
    epochs: float | None = None
    milestones: tuple[int, ...] = ()
    steps_per_epoch: int | None = None
    stopped_early: bool = False
    trained_on: str = ""  # the device that trained it, or "imported"
    command: str = ""
    sha256: str | None = None
    normalization: dict | None = None  # mean, std (and label, source) of the inputs the net was trained on
    imported: dict | None = None  # file, layout, sha256 of the source, ... (imported models)
    constructed: dict | None = None  # from which net, which blocks were added (constructed models)
    history: tuple[dict, ...] = ()  # per epoch: train/test error, loss, lr
    raw: dict = field(default_factory=dict, repr=False, compare=False)

    @property
    def residual(self) -> bool:
        return self.arch.residual

    @property
    def depth(self) -> int:
        return self.arch.depth

    @property
    def trained_here(self) -> bool:
        """Trained by ResLens's own command (the card has its training record)."""
        return self.iterations is not None

    @property
    def full_recipe(self) -> bool:
        return bool(self.iterations and self.iterations >= FULL_RECIPE_ITERATIONS and not self.stopped_early)

    @property
    def first_lr_drop_epoch(self) -> float | None:
        """The epoch at which the learning rate first drops (None where the card has no step schedule)."""
        if not self.milestones or not self.steps_per_epoch:
            return None
        return self.milestones[0] / self.steps_per_epoch

    def row(self) -> dict:
        """One row of the zoo's table (the columns of :data:`ZOO_COLUMNS`)."""
        a = self.arch
        return {"model": self.name, "depth": a.depth, "residual": a.residual, "block": a.block_kind, "unit": a.unit,
                "shortcut": a.shortcut_token if a.residual else "none", "variant": a.is_variant,
                "params": self.params, "train_error_pct": self.train_error_pct, "train_images": self.train_images,
                "test_error_pct": self.test_error_pct, "test_images": self.test_images,
                "iterations": self.iterations, "epochs": self.epochs, "full_recipe": self.full_recipe,
                "first_lr_drop_epoch": self.first_lr_drop_epoch, "stopped_early": self.stopped_early,
                "trained_on": self.trained_on}


ZOO_COLUMNS = ("model", "depth", "residual", "block", "unit", "shortcut", "variant", "params", "train_error_pct", "train_images",
               "test_error_pct", "test_images", "iterations", "epochs", "full_recipe", "first_lr_drop_epoch",
               "stopped_early", "trained_on")


def card_from_json(d: dict, name: str | None = None) -> ModelCard:
    """The record of a card's JSON (a shipped, trained or imported model)."""
    name = name or d.get("name", "")
    arch = parse_name(d.get("arch") or name)
    sched = d.get("schedule") or {}
    data = d.get("data") or {}
    imported = d.get("imported")
    return ModelCard(
        name=name, arch=arch, params=None if d.get("params") is None else int(d["params"]),
        test_error_pct=None if d.get("test_error_pct") is None else float(d["test_error_pct"]),
        test_images=int(d.get("test_images") or data.get("test_images") or 10_000),
        train_error_pct=None if d.get("train_error_pct") is None else float(d["train_error_pct"]),
        train_images=int(d.get("train_images") or data.get("train_images", 50_000))
        if d.get("train_error_pct") is not None else None,
        iterations=sched.get("iterations"), epochs=sched.get("epochs"),
        milestones=tuple(sched.get("milestones") or ()), steps_per_epoch=sched.get("steps_per_epoch"),
        stopped_early=bool(d.get("stopped_early")),
        trained_on="imported" if imported else (f"constructed from {d['constructed']['from']}" if d.get("constructed")
                                                else d.get("device", "")),
        command=d.get("command", ""), sha256=d.get("sha256"), normalization=d.get("normalization"),
        imported=imported, constructed=d.get("constructed"), history=tuple(d.get("history") or ()), raw=d)


_CACHE: dict[Path, tuple[float, ModelCard]] = {}


def read_card_file(path: Path, name: str) -> ModelCard:
    """The card at ``path``, read again only when the file changed."""
    mtime = path.stat().st_mtime
    got = _CACHE.get(path)
    if got is None or got[0] != mtime:
        got = (mtime, card_from_json(json.loads(path.read_text()), name))
        _CACHE[path] = got
    return got[1]


def table(cards: list[ModelCard]) -> pd.DataFrame:
    """The zoo's one table: a row per card (:meth:`ModelCard.row`)."""
    return pd.DataFrame([c.row() for c in cards], columns=list(ZOO_COLUMNS))
