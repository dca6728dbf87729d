"""The claims in words: what each claim says, exactly what is measured, its rule in words, and the page whose
chart shows the evidence; and the report a student can hand in (:func:`to_markdown`). No verdict is here: the
judges (:mod:`.judges`) measure and the rules (:mod:`.rules`) decide."""

from __future__ import annotations

from dataclasses import dataclass

import pandas as pd

from .rules import VERDICTS


@dataclass(frozen=True)
class ClaimText:
    id: int
    title: str
    statement: str  # the claim, one sentence
    measurement: str  # exactly what is measured
    rule: str  # the fixed rule, in words
    page: str  # the page (and chart) that shows the evidence
    chart: str


TEXTS: tuple[ClaimText, ...] = (
    ClaimText(1, "Degradation is not overfitting",
          "Deeper plain nets have a higher training error than shallower ones, so their higher test error is not "
          "overfitting.",
          "Final training error of each plain zoo net, in eval mode on the 50,000 un-augmented training images "
          "(from the model cards).",
          "holds if every deeper plain net has the higher training error (the 95 % interval of the difference, Newcombe's, "
          "above 0); does not hold if every one has the lower; depends otherwise, or where an interval includes 0.",
          "pages/home.py", "Degradation: training curves"),
    ClaimText(2, "Vanishing gradients cause degradation",
          "Degradation is caused by vanishing gradients (the notes), against He et al. 2015: with BN, gradients do "
          "not vanish.",
          "For each trained plain net, the mean over test images (up to 256) of ‖∂loss/∂x‖ at the first block over "
          "the same at the last block (BN with batch statistics, float32).",
          "holds if the ratio's 95 % interval (from the two means' intervals over images) lies under 0.1 in every plain "
          "net; does not hold if it lies above 0.1 in every one; depends otherwise, or where it includes 0.1.",
          "pages/2_Gradient_flow.py", "Gradient flow through depth"),
    ClaimText(3, "Residual functions respond less",
          "The residual functions of a ResNet have smaller responses than the layers of a plain net (He et al. 2015, "
          "Fig. 7).",
          "Per pair of equal depth: the median over the 3x3 layers of each layer's std (per channel, then the mean; "
          "and over all values at once), and the mean over blocks of ‖F(x)‖/‖x‖.",
          "holds if the residual net is smaller in all three readings at every depth; does not hold if in none; "
          "depends (on the reading) otherwise.",
          "pages/1_Responses.py", "Layer responses"),
    ClaimText(4, "Deeper ResNets respond less",
          "The deeper the ResNet, the smaller the magnitudes of its responses.",
          "For the residual nets chosen: the median layer std (both readings) and the mean ‖F(x)‖/‖x‖, by depth.",
          "holds if all three decrease with depth; does not hold if none does; depends otherwise.",
          "pages/1_Responses.py", "Layer responses"),
    ClaimText(5, "Shortcuts are free",
          "Identity shortcuts add no parameters and no computation.",
          "Parameters; FLOPs counted with PyTorch's formulas (torch.utils.flop_counter: convs and matrix products) on "
          "one image; the shortcut's additions, counted apart; time per image of plain vs residual nets measured in "
          "turns, the cost analysis' rounds (7).",
          "holds if parameters and counted FLOPs are equal and the interval of the time ratio (the median over rounds "
          "of side-by-side timings, its order-statistic interval) lies within 15 % of 1; does not hold if parameters or FLOPs "
          "differ in every pair; depends otherwise, the timing's interval reaching beyond 15 % included.",
          "pages/9_Claims.py", "Cost"),
    ClaimText(6, "A conv layer costs H·W·C_in·C_out·k²",
          "A convolution costs H·W·C_in·C_out·k² multiply-adds.",
          "Every conv layer: the formula against the FLOP counter's count (2 FLOPs per multiply-add).",
          "holds if every layer matches exactly; does not hold if none does; depends otherwise.",
          "pages/9_Claims.py", "Cost"),
    ClaimText(7, "λ > 1 explodes, λ < 1 vanishes",
          "With y = F(x) + λx, a shortcut scale λ > 1 makes the gradient explode and λ < 1 makes it vanish.",
          "First-block over last-block input-gradient norm: at initialisation for λ = 0.5, 1, 1.5 on the deepest "
          "residual net chosen, and for nets trained with λ = 0.5 against the identity net.",
          "holds if λ > 1 grows the gradient more than λ = 1 and λ < 1 makes it shrink towards the input (at "
          "initialisation, and in the trained λ nets when chosen), each judged on the ratios' 95 % intervals; does not "
          "hold if neither; depends otherwise, or where the intervals overlap the comparison.",
          "pages/2_Gradient_flow.py", "Scaled shortcuts"),
    ClaimText(8, "Full pre-activation is the best unit",
          "Full pre-activation is better than the original unit, and BN after addition is worse.",
          "Test error on the 10,000 test images (model cards) of resnetD, resnetD-preact and resnetD-bnafter.",
          "holds if pre-activation is lower and BN-after-addition higher than the original, each difference's 95 % "
          "interval (Newcombe's, on the 10,000 test images) excluding 0; does not hold if both the other way; depends "
          "otherwise, or where an interval includes 0.",
          "pages/7_Identity_mappings.py", "The variant zoo"),
    ClaimText(9, "Projection shortcuts beat zero-padding",
          "Option B (1x1 projections where the shape changes) is slightly better than option A (zero-padding).",
          "Test error (model cards) of resnetDb against resnetD.",
          "holds if option B's error is lower, the difference's 95 % interval (Newcombe's) below 0; does not hold if "
          "that interval lies above 0; depends (a tie at this many test images) where it includes 0.",
          "pages/7_Identity_mappings.py", "The variant zoo"),
    ClaimText(10, "A ResNet is 2^n paths",
          "A ResNet of n blocks unrolls into 2^n paths (3 blocks: 8 paths), whose lengths are Binomial(n, ½).",
          "A linear residual net of 3, 5 and 8 blocks unrolled path by path (float64): the count, the sum of the "
          "paths against the net's output, the length histogram; and each chosen net's path-length distribution.",
          "holds if the counts are 2^n, the paths sum to the output to 1e-9, and the lengths are binomial.",
          "pages/3_Block_deletion.py", "Paths"),
    ClaimText(11, "Deleting a block barely hurts a ResNet",
          "Deleting one block barely hurts a ResNet while a plain net collapses; deleting more blocks degrades a "
          "ResNet smoothly (Veit et al. 2016).",
          "Test error with each non-downsampling block deleted (median over blocks), and with k random blocks "
          "deleted, for the deletion analysis' k list and trials (k = 0, 2, …, 20 where the net has that many "
          "deletable blocks; 5 trials each).",
          "holds if one deletion raises a ResNet's error by under 5 points on median, leaves a plain net above 50 % "
          "error (each median's order-statistic interval over blocks on the right side), and no step of k changes a "
          "ResNet's mean error by more than 20 points (each step's Welch interval over trials within ±20); does not hold if "
          "none of these; depends otherwise, or where an interval reaches its threshold.",
          "pages/3_Block_deletion.py", "Delete one block / Delete k random blocks"),
    ClaimText(12, "The gradient comes from short paths",
          "The gradient comes mainly from short paths (Veit et al. 2016 find lengths 5-17 of 54 blocks).",
          "Veit et al.'s measurement: the gradient at block 0's input carried by paths of each length k, times the "
          "number of such paths; where it peaks.",
          "holds if every length that could be the peak (its 95 % interval over the draws reaches the highest lower "
          "bound) lies below n/2, the typical path length, in every residual net; does not hold if all lie at or "
          "above n/2; depends otherwise.",
          "pages/3_Block_deletion.py", "Paths"),
    ClaimText(13, "The gradient has an identity term",
          "Through a residual block the gradient has an identity term, ∂(F(x) + x)/∂x = ∂F/∂x + I, that carries much "
          "of it.",
          "Per block, the part of ∂loss/∂x that flows back through the shortcut and the part through the branch; "
          "the shortcut's share of their norms, mean over the test images (up to 64).",
          "holds if the shortcut carries at least half at the median block of every residual net (the 95 % interval "
          "over images above 0.5); does not hold if below 0.5 in every one; depends otherwise.",
          "pages/2_Gradient_flow.py", "The identity term"),
    ClaimText(14, "Residual nets train faster",
          "Residual nets train faster than plain nets of the same depth.",
          "From the cards' per-epoch history: the first epoch whose training error (augmented batches) is below "
          "20 %, compared before the first learning-rate drop (schedules of different lengths drop at different "
          "epochs).",
          "holds if the residual net gets there first at every depth; does not hold if at none; depends otherwise.",
          "pages/home.py", "Degradation: training curves"),
    ClaimText(15, "Residual nets overfit less",
          "Residual nets overfit less (a smaller gap between test and training error) than plain nets.",
          "Test error minus training error (model cards), plain against residual at equal depth.",
          "holds if the residual gap is smaller at every depth (the difference's 95 % interval, from the four error "
          "rates' binomial spreads, below 0); does not hold if above 0 at every depth; depends otherwise.",
          "pages/7_Identity_mappings.py", "The variant zoo"),
    ClaimText(16, "The residual loss surface is smoother",
          "The loss surface of a residual net is smoother than a plain net's (Li et al. 2018).",
          "The top eigenvalue of the Hessian of the mean test loss on up to 100 test images (the top Ritz value of a "
          "Lanczos run with the Curvature page's settings, float32, eval-mode BN).",
          "holds if the residual net's top eigenvalue is smaller at every depth; does not hold if at none; depends "
          "otherwise.",
          "pages/8_Curvature.py", "Top eigenvalues of the Hessian"),
    ClaimText(17, "A deeper net built from a shallower one is no worse",
          "A deeper net made of a trained shallower net plus added layers that compute the identity is no worse than "
          "the shallower net (He et al. 2015, section 1), so a deeper net that trains worse has met an optimisation "
          "failure, not a lack of capacity.",
          "A constructed net (python -m analysis construct): the source's trained blocks and identity blocks after "
          "them in each stage; its training and test error and its source's, both measured in float32 on all the "
          "images, beside the trained net of the same depth (from its card).",
          "holds if no constructed net's training or test error is above its source's (Newcombe's 95 % interval of "
          "the difference not entirely above 0); does not hold if every one is; depends otherwise.",
          "pages/10_Depth.py", "The constructed solution"),
    ClaimText(18, "Residual readouts improve block by block",
          "Later blocks refine what earlier blocks predict (Jastrzebski et al. 2018): a residual net's own head can "
          "read its features before the last block, better and better with depth, while a plain net's cannot be "
          "read early.",
          "The net's own head reading each stage's last block through the skip path (every later block deleted), top-1 "
          "test error with its 95 % Wilson interval.",
          "holds if in every residual net the error falls from each stage's end to the next (intervals apart) and in "
          "every plain net the error before its last stage stays near chance (interval above 80 %); does not hold if "
          "neither; depends otherwise, or where intervals overlap.",
          "pages/10_Depth.py", "Readouts"),
    ClaimText(19, "Deeper features are more linearly separable",
          "Deeper features are more abstract: a linear classifier separates the classes better and better with depth "
          "(Alain & Bengio 2016).",
          "A linear probe (a ridge classifier on the global-average-pooled features, fitted on training images) at "
          "the stem and at each stage's last block, its top-1 test error with the Wilson interval.",
          "holds if the probe's error falls from each stage's end to the next in every net (intervals apart); does not "
          "hold if it rises in every net; depends otherwise.",
          "pages/10_Depth.py", "Readouts"),
    ClaimText(20, "Residual blocks keep more of the input",
          "The identity path keeps the image's information: a residual net's blocks keep more of the input than a "
          "plain net's.",
          "Input recovery: R² of a ridge regression from each point's features (pooled to 4 x 4 per channel) to the "
          "normalised input image, fitted on training images, scored on the test sample, with a bootstrap interval; "
          "plain against residual at equal depth, at each stage's end.",
          "holds if the residual net's R² is above the plain net's at every stage's end (intervals apart); does not "
          "hold if below at every one; depends otherwise.",
          "pages/10_Depth.py", "Input recovery"),
    ClaimText(21, "A later block holds more of the image",
          "Thanks to the identity path, block l+1 holds more of the image than block l (a study note).",
          "The same input recovery, from the stem's output and from the last block's, in every chosen net. What is "
          "measured is linear recoverability, a lower bound on the information a point holds; no deterministic block "
          "can add information about its input (the data-processing inequality).",
          "holds if R² rises from the stem's output to the last block's in every net (intervals apart); does not hold "
          "if it falls in every net; depends otherwise.",
          "pages/10_Depth.py", "Input recovery"),
)


def verdict_line(table: pd.DataFrame) -> str:
    """"Verdicts: N holds, N does not hold, N depends, N untested." (the first line of every verdict summary)"""
    counts = table["verdict"].value_counts()
    return "Verdicts: " + ", ".join(f"{counts.get(v, 0)} {v}" for v in VERDICTS) + "."


def to_markdown(table: pd.DataFrame, title: str = "What the claims say") -> str:
    """A readable report a student can hand in: every claim, its verdict, the numbers and the rule."""
    lines = [f"# {title}", ""]
    if len(table):
        r0 = table.iloc[0]
        lines += [f"Models: {', '.join(sorted(set(', '.join(table['models']).split(', '))))}. Test images per "
                  f"measurement: {r0['samples']}, seed {r0['seed']}. Verdicts come from the fixed rule under each "
                  "claim, applied to the numbers shown.", ""]
        lines += [verdict_line(table), ""]
    for r in table.itertuples():
        lines += [f"## {r.id}. {r.claim}: **{r.verdict}**", "", f"*Claim.* {r.statement}", "",
                  f"*Measured.* {r.numbers}.", "", f"*How.* {r.measurement}", "", f"*Rule.* {r.rule}", "",
                  f"*Evidence.* `{r.page}`, {r.chart}.", ""]
    return "\n".join(lines).rstrip() + "\n"


def readme_block(markdown: str, levels: int = 2) -> str:
    """``claims.md`` as a section of a longer document: every heading ``levels`` deeper."""
    return "\n".join("#" * levels + line if line.startswith("#") else line for line in markdown.splitlines()) + "\n"
