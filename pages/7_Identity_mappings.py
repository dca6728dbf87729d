"""Identity mappings (He et al. 2016): unit and shortcut variants, trained by the project, side by side."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page()
st.title("Identity mappings: where BN and ReLU sit, and what the shortcut does")
st.markdown(
    "He, Zhang, Ren and Sun (2016, *Identity Mappings in Deep Residual Networks*) argue that a clean identity "
    "shortcut and nothing after the addition let signals pass unchanged between any two blocks, and test it "
    "by training variants of ResNet-110 on CIFAR-10. ResLens trains the same variants (the paper's recipe, "
    "64k iterations) and measures each one here. Names follow one grammar: `resnet56-preact`, "
    "`resnet56-scale0.5`, `resnet56b`, … (README, *Model names*).")
with st.expander("The variants, written out"):
    st.markdown(
        "| unit | block computes | after the last block |\n|---|---|---|\n"
        "| original | ReLU(BN(conv(ReLU(BN(conv x)))) + s(x)) | – |\n"
        "| bn-after-add (`-bnafter`) | ReLU(BN(conv(ReLU(BN(conv x))) + s(x))) | – |\n"
        "| relu-before-add (`-relubefore`) | ReLU(BN(conv(ReLU(BN(conv x))))) + s(x) | – |\n"
        "| relu-preact (`-relupreact`) | BN(conv(ReLU(BN(conv(ReLU x))))) + s(x) | ReLU |\n"
        "| full-preact (`-preact`) | conv(ReLU(BN(conv(ReLU(BN x))))) + s(x) | BN, ReLU |\n\n"
        "Shortcuts s(x): identity with option A (zero-padding) where the shape changes; `b`: a 1x1 projection + BN "
        "where the shape changes; `-conv1x1`: a 1x1 conv + BN on every block; `-scale0.5`: the shortcut times 0.5, "
        "F unscaled; `-scale0.5f`: the shortcut times 0.5 and F times 0.5; `-gate-6`: exclusive gating, "
        "y = g(x)·F(x) + (1 − g(x))·s(x) with g(x) = sigmoid(1x1 conv(x) + b_g), b_g = −6 at initialisation; "
        "`-shortgate-6`: shortcut-only gating, y = F(x) + (1 − g(x))·s(x); `-dropout`: the shortcut times a "
        "Bernoulli mask that keeps each value with probability 0.5 while training, times 0.5 at evaluation (He et al. "
        "2016, Table 1). Deleting a block (Block deletion page) leaves its shortcut as it reaches the addition: "
        "(1 − g(x))·s(x) in a gated net, 0.5·s(x) in a dropout net.\n\n"
        "Blocks: basic (two 3x3 convs, 6n+2 layers) or `-bottleneck` (1x1 reduce, 3x3, 1x1 expand 4x; 9n+2 layers, "
        "the stride on the first 1x1 as in the authors' code); each unit above places BN and ReLU around the three "
        "convs as around the two, e.g. `resnet164-bottleneck-preact`.")

vres = ui.results("variants", ui.available(), s)
table = vres.get("variants", pd.DataFrame())
if table.empty:
    st.info("No residual checkpoints in pretrained/: train one with `python -m analysis train resnet56-preact`.")
    st.stop()

st.subheader("The variant zoo")
show = table.copy()
show["paper_test_error_pct"] = show["paper_test_error_pct"].map(
    lambda v: "–" if v is None or (isinstance(v, float) and pd.isna(v)) else (v if isinstance(v, str) else f"{v:.2f}"))
ui.table(show[["model", "depth", "unit", "shortcut", "params", "train_error_pct", "test_error_pct", "iterations",
               "full_recipe", "paper_test_error_pct", "paper_source"]])
st.caption("Train error: eval mode on the 50,000 un-augmented training images; test error: the 10,000 test images; "
           "both from each model card, measured after training on the GPU that trained it, and re-measurable with "
           "`python -m analysis evaluate NAME`. " + ui.PAPER_NOTE + " " + ui.JPEG_NOTE)
st.download_button("Download CSV", table.to_csv(index=False).encode(), "variants.csv", "text/csv", key="dl_variants")

st.markdown("**What the table shows** (computed from the numbers above; two test errors are called different only "
            "when the 95 % interval of their difference excludes 0):")
st.markdown("\n".join(f"- {ui.escape_md(line)}" for line in vres["variant_findings"]["sentence"]))
cmp = vres["variant_comparison"]
if len(cmp):
    st.download_button("Download the comparison with the identity nets (CSV)", cmp.to_csv(index=False).encode(),
                       "variant_comparison.csv", "text/csv", key="dl_variant_cmp")

names_all = list(table["model"])
default = [n for n in ("resnet56", "resnet56-scale0.5", "resnet56-preact", "resnet56-bnafter") if n in names_all]
chosen = ui.bound(st.multiselect, "Variants to compare below", names_all, default=default or names_all[:3],
                  key="im_variants")
if not chosen:
    st.info("Choose at least one variant.")
    st.stop()
if ui.data_found() and ui.bound(st.toggle, f"Re-measure the test error of the chosen variants on the sidebar's "
                                          f"{s.samples} test images", key="im_remeasure"):
    rows = []
    for n in chosen:
        err = ui.friendly(ui.cached_error, n, s.samples, s.seed, s.device, s.root)
        if err is not None:
            card = table.set_index("model").loc[n, "test_error_pct"]
            rows.append({"model": n, "test_error_pct_now": err, "images": s.samples, "seed": s.seed,
                         "card_test_error_pct_10k": card})
    if rows:
        ui.table(pd.DataFrame(rows).rename(columns={"test_error_pct_now": "test error now (%)",
                                                    "card_test_error_pct_10k": "card's test error, 10,000 images (%)"}))
        st.caption(f"Top-1 error on a seeded random subset of {s.samples} test images (seed {s.seed}), eval-mode BN, "
                   f"bfloat16 autocast, on {s.device}: what `python -m analysis evaluate NAME --samples {s.samples} "
                   f"--seed {s.seed}` prints. The card's number is on all 10,000 test images.")

st.subheader("How each variant trained")
tr = ui.results("training", chosen, s)
cur = tr.get("training", pd.DataFrame())
if not cur.empty:
    long = cur.melt(id_vars=["model", "epoch", "lr"], value_vars=["train_error_pct", "test_error_pct"],
                    var_name="curve", value_name="error_pct")
    long["curve"] = long["curve"].map({"train_error_pct": "train", "test_error_pct": "test"})
    log = ui.bound(st.toggle, "Log-scale error axis (shows the end of training)", value=True, key="im_log")
    y = alt.Y("error_pct:Q", title="error (%)",
              scale=alt.Scale(type="log", domain=[0.01, 100], clamp=True) if log else alt.Scale(domain=[0, 40], clamp=True))
    chart = alt.Chart(long).mark_line().encode(
        x=alt.X("epoch:Q", title="epoch"), y=y, color=ui.color(long["model"]),
        strokeDash=ui.dash("curve:N", "curve", domain=["train", "test"], styles=[[4, 3], [1, 0]]),
        tooltip=["model", "epoch", "curve", alt.Tooltip("error_pct:Q", format=".2f"), "lr"],
    ).properties(height=380)
    ui.show_chart(chart, long, file_name="variant_training_curves.csv",
                  caption="Dashed: training error on the augmented batches of each epoch (train-mode BN, as the net trained); "
                  "solid: error on the 10,000 test images after each epoch (eval mode). The learning rate drops 10x "
                  "at 50 % and 75 % of the 64k iterations. " + ("Log scale, clipped at 0.01 %. " if log else
                                                                "Clipped at 40 %. ") + ui.JPEG_NOTE, key="im_curves")
    speed = tr["training_speed"]
    speed = speed[speed["threshold_pct"] == 10.0]
    ui.table(speed.rename(columns={"last_train_error_pct": "last epoch's training error (%, augmented)",
                                   "last_test_error_pct": "last epoch's test error (%)"}).drop(columns=["threshold_pct"]))

st.subheader("Basic vs bottleneck blocks: what each costs")
st.markdown(
    "For ResNet-164 He et al. 2016 use *bottleneck* blocks (`-bottleneck`: a 1x1 conv that reduces to 16/32/64 "
    "channels, a 3x3, a 1x1 that expands 4x; three layers a block, so 9n+2 layers). Below, the bottleneck net beside "
    "the basic-block net of the same depth and the basic-block net with the nearest parameter count, each freshly "
    "built (what a net costs does not depend on its trained weights).")
options = ui.choices("unit_cost", "bottleneck")
bott = ui.bound(st.selectbox, "Bottleneck net", options, index=options.index(ui.defaults("unit_cost")["bottleneck"]),
                key="im_bottleneck")
ucost = ui.results("unit_cost", [], s, bottleneck=bott, device=s.device)
uc = ucost.get("unit_cost")
if uc is not None and len(uc):
    show = uc[["pairing", "model", "depth", "blocks", "params", "flops_per_image", "ms_per_image", "params_ratio",
               "flops_ratio", "time_ratio", "conv_formula_match"]].rename(columns={
        "pairing": "compared as", "blocks": "blocks", "flops_per_image": "counted FLOPs per image",
        "ms_per_image": "ms per image", "params_ratio": "parameters / bottleneck's", "flops_ratio": "FLOPs / bottleneck's",
        "time_ratio": "time / bottleneck's", "conv_formula_match": "every conv = H·W·C_in·C_out·k²"})
    ui.table(show)
    b, eq_p = uc.iloc[0], uc[uc["pairing"] == "basic, equal parameters"].iloc[0]
    eq_d = uc[uc["pairing"] == "basic, equal depth"].iloc[0]
    st.markdown(
        f"- At equal depth ({int(b['depth'])} layers) {b['model']} has {b['params']:,} parameters against "
        f"{eq_d['params']:,} for {eq_d['model']} ({eq_d['params_ratio']:.2f}x) and {eq_d['flops_ratio']:.2f}x its "
        f"counted FLOPs.\n"
        f"- At nearly equal parameters ({eq_p['model']}: {eq_p['params']:,}, {eq_p['params_ratio']:.3f}x) the bottleneck "
        f"net is {int(b['depth']) - int(eq_p['depth'])} layers deeper for {eq_p['flops_ratio']:.3f}x the FLOPs, and on "
        f"this {'GPU' if uc['device'].iloc[0].startswith('cuda') else 'CPU'} it takes "
        f"{1 / eq_p['time_ratio']:.2f}x the time per image of {eq_p['model']}: "
        + ("more, thinner layers cost more than their FLOPs say." if eq_p["time_ratio"] < 1 else
           "no slower than its FLOPs say.") + "\n"
        f"- Every one of the {int(uc['conv_layers'].sum())} convolutions' counted multiply-adds "
        + ("equals" if bool(uc["conv_formula_match"].all()) else "does **not** all equal")
        + " H_out·W_out·C_in·C_out·k² (the per-layer table is in the CSV).")
    st.caption(f"Parameters: every weight, BN included. FLOPs: PyTorch's counter (2 per multiply-add of the convolutions "
               f"and the classifier; BN, ReLU and the shortcut additions not counted). Time: eval-mode forward passes of "
               f"{int(uc['timed_images'].iloc[0])} random images, {uc['precision'].iloc[0]}, on {uc['device'].iloc[0]}; "
               f"the nets timed in turns over {int(uc['rounds'].iloc[0])} rounds, the fastest round kept: compare the "
               "ratios, not the milliseconds, on a shared machine. He et al. 2016 give ResNet-110 and ResNet-164 as "
               "1.7M parameters each; the counts above are with option-A shortcuts, while the authors' code projects "
               "where the shape changes (`resnet164b-bottleneck`).")
    st.download_button("Download the costs (CSV)", uc.to_csv(index=False).encode(), "unit_cost.csv", "text/csv",
                       key="dl_unit_cost")
    st.download_button("Download every convolution against the formula (CSV)",
                       ucost["unit_conv_cost"].to_csv(index=False).encode(), "unit_conv_cost.csv", "text/csv",
                       key="dl_unit_conv_cost")

if not ui.data_found():
    ui.need_data()
    st.stop()

st.subheader("Gradient norms through depth, trained and at initialisation")
gres = ui.results("gradients", chosen, s, lambdas=(), weight_grads=False)
g = gres.get("gradients")
if g is not None and len(g):
    n_img = int(g["images"].iloc[0])
    plot = g[["model", "state", "lambda", "block", "block_index", "grad_input_l2", "images"]]
    chart = ui.depth_chart(plot, "grad_input_l2", "‖∂loss/∂(block input)‖", dash_by="state", dash_title="weights")
    ui.show_chart(chart, plot, file_name="variant_gradients.csv",
                  caption=f"Log scale. Mean over {n_img} test images of ‖∂L/∂x_block[n]‖₂ (L: the batch's summed "
                  "cross-entropy), BN with batch statistics (batches of 128, as in training) on a private copy, "
                  f"{ui.precision_words(g['precision'].iloc[0])}; each net with the shortcut scale it was trained "
                  "with. 'init' = the same architecture freshly He-initialised with the sidebar seed. Same measurement "
                  "as the Gradient flow page's λ charts (their results are shared).", key="im_grads")
    summ = gres["gradient_summary"]
    ui.table(summ)
    st.caption("First block / last block above 1: the gradient grows on its way to the input; below 1: it shrinks.")

st.subheader("How large is each residual branch? ‖F(x)‖ / ‖x‖")
ratio = ui.results("responses", chosen, s, ratio_only=True).get("residual_ratio")
if ratio is not None:
    base = alt.Chart(ratio).encode(
        x=alt.X("block_index:Q", title="block", axis=alt.Axis(tickMinStep=1, format="d")),
        y=alt.Y("ratio:Q", title="‖F(x)‖ / ‖x‖"), color=ui.color(ratio["model"]),
        tooltip=["model", "block", alt.Tooltip("ratio:Q", format=".3f"), "downsample"])
    ui.show_chart((base.mark_line() + base.mark_point(filled=True, size=50)).properties(height=320),
                  ratio.drop(columns=["definition"]), file_name="variant_residual_ratio.csv",
                  caption=f"For each of {int(ratio['images'].iloc[0])} test images, the L2 norm of the branch output F(x) as it is added to the "
                  "shortcut (times 0.5 in a scale0.5f net) over the L2 norm of the block's input, averaged over images; "
                  f"eval-mode BN, {ui.ratio_precision_words(ratio['precision'].iloc[0])}.", key="im_ratio")

ui.link("pages/2_Gradient_flow.py", "Scaled shortcuts at initialisation: the Gradient flow page")
