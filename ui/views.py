"""What the pages ask of the library besides results: declared defaults and choices, the test images, an uploaded
image, the claims and the report. Pages import ``ui`` only; this module is where the dashboard reaches the library
for them (``results.py`` does it for the analyses' tables)."""

from __future__ import annotations

import hashlib

import pandas as pd
import streamlit as st
import torch

from analysis.analyses._prefix import precision_words as deletion_precision_words  # noqa: F401  (a caption)
from analysis.analyses.gradients import precision_words  # noqa: F401  (the gradient charts' captions)
from analysis.analyses.responses import ratio_precision_words  # noqa: F401  (the residual-ratio charts' captions)
from analysis.analyses.variants import PAPER_NOTE  # noqa: F401  (a page shows it)
from analysis.core import data as D
from analysis.core.images import ImageRefused, load_image
from analysis.core.zoo import arch_of, schedule_note  # noqa: F401  (Home says it under the curves)
from analysis.engine.registry import get, load_all

from .session import Settings, friendly, get_model, is_residual

CLASSES = D.CLASSES


# ---------------------------------------------------------------------------- declarations
def defaults(analysis: str) -> dict:
    """An analysis' declared defaults (the one place they live)."""
    return dict(get(analysis).defaults)


def work(analysis: str, **params) -> float:
    """How much work one model's run of ``analysis`` is at these settings, in the unit the analysis declares (the
    Hessian: at most this many Hessian-vector products)."""
    a = get(analysis)
    return a.work(a.params(**params)) if a.work else 1.0


def choices(analysis: str, param: str) -> tuple:
    """The values a parameter of an analysis may take, as declared."""
    return tuple(get(analysis).choices[param])


def analyses() -> dict:
    """Every registered analysis by name, in run order."""
    return load_all()


def deletable_blocks(name: str) -> int:
    """How many blocks of a net can be deleted at random: every block but the two downsampling ones (read from its
    architecture; no model is loaded)."""
    a = arch_of(name)
    return 3 * ((a.depth - 2) // 6) - 2


def constructed_models() -> list[str]:
    """The zoo's constructed nets (a trained net plus identity blocks), from their cards."""
    from analysis.core.zoo import available, read_card

    out = []
    for n in available():
        try:
            if read_card(n).constructed:
                out.append(n)
        except ValueError:
            continue
    return out


def data_status() -> tuple[bool, str]:
    return D.data_status()


def device_name() -> str:
    """The accelerator in words: "GPU: <name>", or that there is none."""
    return f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU (no GPU found)"


# ---------------------------------------------------------------------------- images
@st.cache_resource(show_spinner="Reading the test images…", max_entries=2)
def _test_split(root: str) -> D.Split:
    return D.load_split("test", root)


def test_pool(cls: str) -> int:
    """How many test images there are of a class ("any": all of them)."""
    split = _test_split(str(D.resolve_root()))
    return len(split) if cls == "any" else int((split.labels == CLASSES.index(cls)).sum())


def test_image(cls: str, pos: int) -> tuple[torch.Tensor, int, str]:
    """(uint8 3x32x32 image, label, key "test/<index>") of the ``pos``-th test image of a class ("any": of all)."""
    split = _test_split(str(D.resolve_root()))
    pool = torch.arange(len(split)) if cls == "any" else (split.labels == CLASSES.index(cls)).nonzero().flatten()
    i = int(pool[pos])
    return split.images[i], int(split.labels[i]), f"test/{i}"


def read_image(data: bytes) -> tuple[torch.Tensor | None, list[str], str, str]:
    """(uint8 3x32x32 image or None, the conversion notes, key "upload/<sha256 prefix>", error sentence or '')."""
    try:
        img, notes = load_image(data)
    except ImageRefused as e:
        return None, [], "", f"This image cannot be used: {e}."
    return img, notes, "upload/" + hashlib.sha256(data).hexdigest()[:16], ""


def normalize(img: torch.Tensor) -> torch.Tensor:
    """A uint8 3x32x32 image as the nets' input (1x3x32x32, CIFAR-10 normalisation)."""
    return D.normalize(img[None])


# ---------------------------------------------------------------------------- the report
def run_report(names, s: Settings, chosen: list[str], claims: bool = False, progress=None):
    """(tables, manifest, documents) of the chosen analyses, their light settings, on the sidebar's models
    (uploads included); with ``claims``, the claims judged on the same models (claims.csv, claims.md). None when
    it fails (the reason is shown)."""
    from analysis.engine.report import compute

    extra = {n: get_model(n, s.device) for n in names}
    out = friendly(compute, names, samples=s.samples, seed=s.seed, device=s.device, only=chosen, quick=True,
                   progress=progress, models=extra) if chosen else ({}, {"models": list(names)})
    if out is None:
        return None
    tables, manifest = out
    docs = {}
    if claims:
        judged = judge_claims(names, s, heavy=False, progress=progress)
        if judged is not None:
            tables["claims"] = judged[0]
            docs["claims.md"] = claims_markdown(judged[0])
    return tables, manifest, docs


# ---------------------------------------------------------------------------- the claims
def claims():
    from analysis.claims import CLAIMS

    return CLAIMS


def heavy_claims() -> tuple[int, ...]:
    """The ids of the claims that measure only when asked (the Hessian's curvature: minutes on a CPU)."""
    from analysis.claims import HEAVY_IDS

    return HEAVY_IDS


def verdicts() -> tuple[str, ...]:
    from analysis.claims.rules import VERDICTS

    return VERDICTS


def shipped_claims():
    """(verdicts on the shipped zoo, the manifest of the command that made them) from docs/, or None."""
    from analysis.claims import shipped

    return shipped()


def verdict_line(table: pd.DataFrame) -> str:
    from analysis.claims import verdict_line as line

    return line(table)


def judge_claims(names, s: Settings, heavy: bool, progress=None):
    """(one row per claim, evidence per claim), measured through the dashboard's cached results, or None."""
    from analysis.claims import Measure, judge_all

    from .cache import results

    m = Measure(names, results=lambda a, ns, **p: results(a, ns, s, **p), samples=s.samples, seed=s.seed,
                model=lambda n: get_model(n, s.device), heavy=heavy)
    return friendly(judge_all, m, progress=progress)


def claims_markdown(table: pd.DataFrame) -> str:
    from analysis.claims import to_markdown

    return to_markdown(table)


__all__ = ["defaults", "choices", "analyses", "deletable_blocks", "data_status", "test_pool", "test_image",
           "read_image", "normalize", "device_name", "constructed_models", "run_report", "claims", "verdicts",
           "judge_claims", "claims_markdown", "shipped_claims", "verdict_line",
           "CLASSES", "PAPER_NOTE", "is_residual"]
