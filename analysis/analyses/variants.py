"""Identity mappings (He, Zhang, Ren and Sun 2016): the unit and shortcut variants of the zoo side by side.

What is here:

* :data:`PAPER_110`: the paper's ResNet-110 test errors on CIFAR-10 for the variants ResLens trains
  (He et al. 2016, Table 1 for the shortcuts, gating and dropout included, Table 2 for the units; the original PNG
  data, not the JPEG copy the zoo is trained on, so the numbers are a reference for the *ordering*, not for the
  level). "fail" is the paper's word for a run above 20 % test error. :data:`PAPER_164` holds the bottleneck
  ResNet-164's (Table 2).
* :func:`variant_table`: one row per shipped residual net, from its model card (train error: eval mode
  on the 50k un-augmented training images; test error: the 10k test images).
* :func:`variant_findings`: sentences computed from that table: each variant against the identity net of
  the same depth, and the paper's ordering of the units checked pair by pair.
"""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..core.arch import UNIT_TOKEN, UNITS, Arch, parse_name
from ..core.stats import newcombe_diff
from ..engine.registry import Analysis, Context, Table, register
from ..core.zoo import PRETRAINED, arch_of, available, read_card, zoo_table

PAPER_SOURCE = {"units": "He et al. 2016, Table 2 (ResNet-110, CIFAR-10)",
                "shortcuts": "He et al. 2016, Table 1 (ResNet-110, CIFAR-10)",
                "bottleneck": "He et al. 2016, Table 2 (ResNet-164, bottleneck, CIFAR-10)"}
# (unit, shortcut token) -> the paper's ResNet-110 test error in % (or "fail": above 20 %).
PAPER_110: dict[tuple[str, str], float | str] = {
    ("original", "identity"): 6.61,
    ("bn-after-add", "identity"): 8.17,
    ("relu-before-add", "identity"): 7.84,
    ("relu-preact", "identity"): 6.71,
    ("full-preact", "identity"): 6.37,
    ("original", "scale0.5"): "fail",
    ("original", "scale0.5f"): 12.35,
    ("original", "conv1x1"): 12.22,
    ("original", "gate0"): "fail",  # exclusive gating; the paper: b_g from 0 to -5 all fail
    ("original", "gate-6"): 8.70,
    ("original", "gate-7"): 9.81,
    ("original", "shortgate0"): 12.86,  # shortcut-only gating
    ("original", "shortgate-6"): 6.91,
    ("original", "dropout"): "fail",  # dropout 0.5 on the shortcut
}
# (unit, shortcut token) -> the paper's ResNet-164 (bottleneck) test error in %.
PAPER_164: dict[tuple[str, str], float | str] = {
    ("original", "identity"): 5.93,
    ("full-preact", "identity"): 5.46,
}
PAPER_NOTE = ("The paper's numbers are ResNet-110 on the original (PNG) CIFAR-10 with its own training runs; "
              "ResLens measures on a JPEG (quality 75) copy, so only orderings are comparable, not levels. "
              "'fail' is the paper's word for a test error above 20 %.")


def catalogue() -> list[str]:
    """Every net the papers' comparisons name, in the name grammar: plain and residual nets of 20, 56 and 110 layers
    (He et al. 2015), option B at 56 and 110, each unit and shortcut of He et al. 2016 (Tables 1 and 2, the keys of
    :data:`PAPER_110`: gating and dropout included) at 56 layers (the zoo's depth) and 110 (the paper's), and the
    bottleneck ResNet-164 with the original and the full pre-activation unit (:data:`PAPER_164`).
    ``python -m analysis models`` lists the ones not trained yet with the command that trains them.

    Example:
        >>> c = catalogue()
        >>> c[:3], "resnet110-preact" in c, "resnet56-gate-6" in c, "resnet164-bottleneck-preact" in c
        (['plain20', 'plain56', 'plain110'], True, True, True)
    """
    names = [f"{kind}{d}" for kind in ("plain", "resnet") for d in (20, 56, 110)] + ["resnet56b", "resnet110b"]
    for depth in (56, 110):
        names += [arch_for(depth, unit, sc).name for unit, sc in PAPER_110]
    names += [arch_for(164, unit, sc, bottleneck=True).name for unit, sc in PAPER_164]
    return list(dict.fromkeys(names))


def arch_for(depth: int, unit: str, shortcut: str, bottleneck: bool = False) -> Arch:
    """The architecture of a (unit, shortcut token) of the papers' tables at ``depth``.

    Example:
        >>> arch_for(110, "original", "shortgate-6").name, arch_for(164, "full-preact", "identity", bottleneck=True).name
        ('resnet110-shortgate-6', 'resnet164-bottleneck-preact')
    """
    name = f"resnet{depth}" + ("-bottleneck" if bottleneck else "") + ("" if unit == "original" else "-" + UNIT_TOKEN[unit])
    return parse_name(name + ("" if shortcut == "identity" else "-" + shortcut))


def paper_table(block: str) -> dict[tuple[str, str], float | str]:
    """The paper's figures a net of this block kind is compared with: ResNet-164's for "bottleneck", else ResNet-110's."""
    return PAPER_164 if block == "bottleneck" else PAPER_110


def paper_error(unit: str, shortcut: str, bottleneck: bool = False) -> tuple[float | str | None, str]:
    """(the paper's error or None, its source) for a unit and shortcut token: ResNet-110's for basic blocks,
    ResNet-164's for bottleneck blocks."""
    v = paper_table("bottleneck" if bottleneck else "basic").get((unit, shortcut))
    if v is None:
        return None, ""
    return v, PAPER_SOURCE["bottleneck" if bottleneck else "units" if shortcut == "identity" else "shortcuts"]


def comparisons(names) -> dict[str, list[str]]:
    """The papers' comparisons that ``names`` (e.g. the zoo) can show, in words -> the models that make each, in the
    order of the papers' tables; a comparison with fewer than two of its models present is left out.

    Example:
        >>> c = comparisons(["plain20", "resnet20", "resnet56", "resnet56-preact"])
        >>> c["He et al. 2015: plain vs residual, 20/56/110 layers"]
        ['plain20', 'resnet20', 'resnet56']
        >>> c["He et al. 2016, Table 2: residual units (56 layers)"]
        ['resnet56', 'resnet56-preact']
    """
    names = list(names)
    archs = {}
    for n in names:
        try:
            archs[n] = arch_of(n)
        except (ValueError, KeyError):
            continue
    grammar = {n: a for n, a in archs.items() if a.name == n}  # trained nets, not constructed or imported ones
    depth2015 = [f"{k}{d}" for k in ("plain", "resnet") for d in (20, 56, 110)]
    unit_order = {u: i for i, u in enumerate(("original", "bn-after-add", "relu-before-add", "relu-preact",
                                              "full-preact"))}
    units = sorted((n for n, a in grammar.items() if a.residual and a.depth == 56 and a.shortcut_token == "identity"
                    and not a.bottleneck and (a.unit, "identity") in PAPER_110), key=lambda n: unit_order[grammar[n].unit])
    shortcuts = [n for n, a in grammar.items() if a.residual and a.depth == 56 and a.unit == "original"
                 and not a.bottleneck]
    bottleneck = sorted((n for n, a in grammar.items() if a.residual and a.bottleneck and a.shortcut_token == "identity"),
                        key=lambda n: (grammar[n].depth, unit_order[grammar[n].unit]))
    basic_vs_bottleneck = [n for n in ("resnet110", "resnet164", "resnet164-bottleneck") if n in grammar]
    shortcuts.sort(key=lambda n: (grammar[n].option != "A" or grammar[n].lam != 1.0, n))
    constructed = [n for n in names if n in archs and n not in grammar and read_card(n).constructed]
    built = []
    for c in constructed:
        src = read_card(c).constructed["from"]
        built += [m for m in (src, c, archs[c].name) if m in names and m not in built]
    out = {"He et al. 2015: plain vs residual, 20/56/110 layers": [n for n in depth2015 if n in names],
           "He et al. 2016, Table 1: shortcuts (56 layers)": shortcuts,
           "He et al. 2016, Table 2: residual units (56 layers)": units,
           "He et al. 2016, Table 2: bottleneck units (ResNet-164)": bottleneck,
           "Basic vs bottleneck blocks: the paper's 1.7M pair (110 / 164-bottleneck), equal depth (164)": basic_vs_bottleneck,
           "He et al. 2015, section 1: a constructed deeper net vs the trained one": built}
    return {k: v for k, v in out.items() if len(v) >= 2}


VARIANT_COLUMNS = ("model", "depth", "block", "unit", "shortcut", "shortcut_description", "params", "train_error_pct",
                   "test_error_pct", "test_images", "iterations", "epochs", "full_recipe", "paper_test_error_pct",
                   "paper_source", "trained_on")


def variant_table(names: list[str] | None = None, root: Path = PRETRAINED) -> pd.DataFrame:
    """One row per residual model that ResLens trained (all shipped ones unless ``names`` says which): the zoo's
    table (:func:`zoo.zoo_table`, from the model cards) beside the paper's number for the same unit and shortcut.

    Example:
        >>> t = variant_table(["resnet56", "resnet56-preact", "plain56"])  # residual nets ResLens trained only
        >>> list(t["model"]), list(t["unit"])
        (['resnet56', 'resnet56-preact'], ['original', 'full-preact'])
    """
    t = zoo_table(names, root)
    t = t[t["residual"] & t["iterations"].notna()].copy()  # imported checkpoints have no training record
    t["shortcut_description"] = [arch_of(n).shortcut for n in t["model"]]
    papers = [paper_error(u, sc, b == "bottleneck") for u, sc, b in zip(t["unit"], t["shortcut"], t["block"])]
    t["paper_test_error_pct"] = [p for p, _ in papers]
    t["paper_source"] = [src for _, src in papers]
    return t.reset_index(drop=True)[list(VARIANT_COLUMNS)]


def _identity_of(table: pd.DataFrame, depth: int, block: str = "basic") -> pd.Series | None:
    ref = table[(table["depth"] == depth) & (table["block"] == block) & (table["unit"] == "original")
                & (table["shortcut"] == "identity")]
    return ref.iloc[0] if len(ref) else None


def test_diff_interval(a: pd.Series, b: pd.Series) -> tuple[float, float]:
    """The 95 % interval (Newcombe's) of net a's test error minus net b's, in points, from the cards' counts."""
    return newcombe_diff(float(a["test_error_pct"]), int(a.get("test_images", 10000)), float(b["test_error_pct"]),
                         int(b.get("test_images", 10000)))


def compare_to_identity(table: pd.DataFrame) -> pd.DataFrame:
    """Each variant against the identity net (original unit, option A) of the same depth: differences in
    train and test error (variant minus identity, percentage points), the test difference with its 95 % interval."""
    rows = []
    for _, r in table.iterrows():
        ref = _identity_of(table, r["depth"], r["block"])
        if ref is None or r["model"] == ref["model"]:
            continue
        lo, hi = test_diff_interval(r, ref)
        rows.append({"model": r["model"], "identity": ref["model"], "depth": r["depth"], "unit": r["unit"],
                     "shortcut": r["shortcut"], "train_error_pct": r["train_error_pct"],
                     "identity_train_error_pct": ref["train_error_pct"],
                     "train_diff_pts": r["train_error_pct"] - ref["train_error_pct"],
                     "test_error_pct": r["test_error_pct"], "identity_test_error_pct": ref["test_error_pct"],
                     "test_diff_pts": r["test_error_pct"] - ref["test_error_pct"], "test_diff_low": lo,
                     "test_diff_high": hi, "paper_test_error_pct": r["paper_test_error_pct"]})
    return pd.DataFrame(rows, columns=["model", "identity", "depth", "unit", "shortcut", "train_error_pct",
                                       "identity_train_error_pct", "train_diff_pts", "test_error_pct",
                                       "identity_test_error_pct", "test_diff_pts", "test_diff_low", "test_diff_high",
                                       "paper_test_error_pct"])


def unit_order_agreement(table: pd.DataFrame, depth: int, block: str = "basic") -> pd.DataFrame:
    """Every pair of units (identity shortcuts, one depth) ordered by the paper's Table 2 and by the
    measured test error: one row per pair. ``measured_better`` is "tie" when the 95 % interval of the difference
    (Newcombe's) includes 0; ``agrees`` when the measurement puts the paper's better unit ahead beyond that."""
    sub = table[(table["depth"] == depth) & (table["block"] == block) & (table["shortcut"] == "identity")].set_index("unit")
    paper_t = paper_table(block)
    units = [u for u in UNITS if u in sub.index and isinstance(paper_t.get((u, "identity")), float)]
    rows = []
    for i, a in enumerate(units):
        for b in units[i + 1:]:
            pa, pb = paper_t[(a, "identity")], paper_t[(b, "identity")]
            ma, mb = sub.loc[a, "test_error_pct"], sub.loc[b, "test_error_pct"]
            lo, hi = test_diff_interval(sub.loc[a], sub.loc[b])  # a minus b
            better = a if hi < 0 else (b if lo > 0 else "tie")
            rows.append({"depth": depth, "unit_a": a, "unit_b": b, "paper_a": pa, "paper_b": pb,
                         "measured_a": ma, "measured_b": mb, "paper_better": a if pa < pb else b,
                         "measured_better": better, "measured_gap_pts": abs(ma - mb), "diff_low": lo, "diff_high": hi,
                         "agrees": better == (a if pa < pb else b)})
    return pd.DataFrame(rows)


def _versus(r, ref) -> str:
    """'worse' / 'better' / 'no different' against the identity net, by the 95 % interval of the difference."""
    lo, hi = test_diff_interval(r, ref)
    word = "worse" if lo > 0 else ("better" if hi < 0 else "no different within the 95 % interval")
    return f"{word}; difference {lo:+.2f} to {hi:+.2f} points"


def variant_findings(table: pd.DataFrame) -> list[str]:
    """Sentences that say what the table shows, computed from its numbers. Two test errors are called different
    only when the 95 % interval of their difference (Newcombe's, on the cards' test images) excludes 0: on 10,000
    images that takes about 0.85 points."""
    out = []
    for depth, block in sorted(set(zip(table["depth"], table["block"]))):
        ref = _identity_of(table, depth, block)
        if ref is None:
            continue
        sub = table[(table["depth"] == depth) & (table["block"] == block)].sort_values("test_error_pct")
        if len(sub) < 2:
            continue
        ranked = ", ".join(f"{r.model} {r.test_error_pct:.2f} %" for r in sub.itertuples())
        where = f"{depth} layers" + (" (bottleneck blocks)" if block == "bottleneck" else "")
        paper_at = "164 layers, bottleneck" if block == "bottleneck" else "110 layers"
        out.append(f"At {where}, by test error (lowest first): {ranked}.")
        for r in sub.itertuples():
            if r.shortcut in ("scale0.5", "scale0.5f") or r.shortcut.startswith("scale"):
                word = "higher" if r.train_error_pct > ref["train_error_pct"] else "not higher"
                out.append(f"{r.model} (shortcut scaled by {parse_name(r.model).lam:g}"
                           + (", F by the rest" if r.shortcut.endswith("f") else ", F unscaled")
                           + f") ends with a {word} training error than {ref['model']}: {r.train_error_pct:.2f} % vs "
                           f"{ref['train_error_pct']:.2f} % (test {r.test_error_pct:.2f} % vs {ref['test_error_pct']:.2f} %).")
        for r in sub.itertuples():
            if r.unit != "original" or r.shortcut == "identity":
                continue
            paper = r.paper_test_error_pct
            base = paper_table(block)[("original", "identity")]
            row = table[table["model"] == r.model].iloc[0]
            lo, _ = test_diff_interval(row, ref)
            worse_here = lo > 0
            here = (f"here {r.model} has {r.test_error_pct:.2f} % against {ref['test_error_pct']:.2f} % for "
                    f"{ref['model']} ({_versus(row, ref)})")
            if paper == "fail":
                out.append(f"{r.model}: the paper's ResNet-110 with this shortcut failed (above 20 % test error); "
                           + here + (", so the failure does not reproduce at this depth." if r.test_error_pct < 20
                                     else ", a failure by the paper's definition too."))
            elif isinstance(paper, float):
                out.append(f"{r.model}: the paper has this shortcut worse than identity ({paper:.2f} vs {base:.2f} % at "
                           f"{paper_at}); " + here + ("; as in the paper." if worse_here else "; not shown here."))
            elif r.shortcut == "B":
                out.append(f"{r.model}: no CIFAR-10 number in the papers (He et al. 2015 compare options A and B on "
                           f"ImageNet, Table 3); " + here + ".")
        agree = unit_order_agreement(table, depth, block)
        if len(agree):
            n_ok = int(agree["agrees"].sum())
            n_tie = int((agree["measured_better"] == "tie").sum())
            out.append(f"Units at {where}: {n_ok} of {len(agree)} pairs are ordered as in the paper's Table 2 "
                       f"beyond the 95 % interval of their difference; {n_tie} are ties at this many test images.")
            for r in agree[~agree["agrees"]].itertuples():
                better, worse = (r.unit_a, r.unit_b) if r.paper_better == r.unit_a else (r.unit_b, r.unit_a)
                paper = {r.unit_a: r.paper_a, r.unit_b: r.paper_b}
                meas = {r.unit_a: r.measured_a, r.unit_b: r.measured_b}
                tie = r.measured_better == "tie"
                out.append(f"{'Not shown' if tie else 'Not reproduced'}: the paper has {better} ahead of {worse} "
                           f"({paper[better]:.2f} vs {paper[worse]:.2f} % at {paper_at}); here {better} has "
                           f"{meas[better]:.2f} % and {worse} {meas[worse]:.2f} %"
                           + (", a tie within the 95 % interval of the difference." if tie else ", the other way round."))
    return out


def _run(ctx: Context) -> dict[str, pd.DataFrame]:
    table = variant_table([n for n in ctx.names if n in available()])
    findings = pd.DataFrame({"topic": "variants", "sentence": variant_findings(table)}, columns=["topic", "sentence"])
    return {"variants": table, "variant_comparison": compare_to_identity(table), "variant_findings": findings}


register(Analysis(
    name="variants", title="Identity mappings: the unit and shortcut variants beside He et al. 2016", run=_run,
    scope="zoo", needs_data=False, page="pages/7_Identity_mappings.py", order=85,
    tables=(Table("variants", ("model", "depth", "unit", "shortcut", "params", "train_error_pct", "test_error_pct",
                               "iterations", "full_recipe", "paper_test_error_pct")),
            Table("variant_comparison", ("model", "identity", "depth", "train_diff_pts", "test_diff_pts", "test_diff_low",
                                         "test_diff_high")),
            Table("variant_findings", ("topic", "sentence")))))
