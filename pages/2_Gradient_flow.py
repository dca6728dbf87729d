"""Gradient norms through depth: trained vs initialised, plain vs residual, and scaled shortcuts."""

import altair as alt
import streamlit as st

import ui

METRIC_TITLES = {"grad_input_l2": "‖∂loss/∂(block input)‖", "grad_weight_l2": "‖∂L/∂(conv weights)‖"}
s = ui.page()
st.title("Gradient flow through depth")
st.markdown("Do plain nets lose their gradients? He et al. (2015) argue that with BN they do not. Here are the "
            "gradient norms at every block, for the trained weights and for a fresh He initialisation.")
names = ui.need_models(s)
have_data = ui.data_found()
if not have_data:
    ui.need_data()
    st.caption("Without CIFAR-10 this page measures gradients at initialisation on random N(0,1) inputs with "
               "random labels.")
if names:
    metric = ui.bound(st.radio, "Norm", list(METRIC_TITLES), horizontal=True, key="metric", format_func=METRIC_TITLES.get)
    states = ui.defaults("gradients")["states"] if have_data else ("init",)
    # The input-gradient view asks for the input gradients alone (bfloat16, 2.2x faster, the results the λ charts
    # below and the Identity mappings page share); the weight-gradient view for both, in float32.
    weight = metric == "grad_weight_l2"
    g = ui.results("gradients", names, s, states=states, lambdas=(), random_input=not have_data,
                   weight_grads=weight).get("gradients")
    if g is not None and len(g):
        plot = g[["model", "state", "block", "block_index", metric, "input", "images", "precision"]]
        chart = ui.depth_chart(plot, metric, METRIC_TITLES[metric], dash_by="state", dash_title="weights", height=360)
        how = ("Weight gradient: ‖∂L/∂W‖₂ over both 3x3 convs of the block, L = mean loss over the sample; float32 "
               "(these means over the sample cancel much: bfloat16 would move them by up to 14 %)." if weight else
               "Input gradient: mean over {n} images of ‖∂L_b/∂x_block[n]‖₂, the backward signal at image n's row in a "
               "training step (L_b: the batch's summed cross-entropy; through BN's batch statistics the other images' "
               "losses reach that row too); {p}; the weight-gradient view runs in float32.").format(
                   n=int(plot["images"].iloc[0]), p=ui.precision_words(plot["precision"].iloc[0]))
        ui.show_chart(chart, plot, file_name="gradients.csv",
                      caption=f"Log scale. {how} BN uses batch statistics (batches of 128, as in training) on a private "
                      "copy of the model. 'init' = the same architecture freshly He-initialised with the sidebar seed.",
                      key="gradients")

    st.subheader("Scaled shortcuts: y = F(x) + λ·s(x)")
    st.markdown(
        "He et al. (2016, section 3.1) write the backward signal through n blocks with the shortcut scaled by λ as a "
        "product of n factors λ plus terms through the branches, and argue that λ > 1 makes it explode and λ < 1 "
        "makes it vanish. That argument is about the shortcut term alone; the measurement below has everything, the "
        "branches and their BN included. First at **initialisation**, with λ set on a freshly initialised net, then "
        "on nets **trained** with λ = 0.5.")
    res_names = [n for n in names if ui.is_residual(n)]
    lams = ui.bound(st.multiselect, "λ values at initialisation (0 = the plain net, 1 = identity)",
                          list(ui.choices("gradients", "lambdas")), default=list(ui.defaults("gradients")["lambdas"]),
                          key="lams")
    if not res_names:
        st.info("Choose a residual model in the sidebar: λ scales its shortcuts.")
    lres = ui.results("gradients", res_names, s, each=[{"lambdas": (lam,)} for lam in sorted(set(lams))], states=(),
                      random_input=not have_data, weight_grads=False) if res_names and lams else {}
    g = lres.get("gradients")
    if g is not None and len(g):
        g = g.copy()
        g["series"] = g["model"] + " λ=" + g["lambda"].map(lambda v: f"{v:g}")
        plot = g[["model", "series", "state", "lambda", "block", "block_index", "grad_input_l2", "input", "images"]]
        chart = ui.depth_chart(plot, "grad_input_l2", "‖∂loss/∂(block input)‖", dash_by="model", height=360,
                               color_enc=alt.Color("lambda:O", title="λ", scale=alt.Scale(scheme="viridis")))
        summary = lres["gradient_summary"]
        words = " ".join(lres["gradient_findings"]["sentence"])
        ui.show_chart(chart, plot, file_name="gradients_lambda.csv",
                      caption="At initialisation (He init, sidebar seed), every block computing F(x) + λ·s(x) with the chosen "
                      "λ, BN with batch statistics (batches of 128) on a private copy; the input gradients alone, in "
                      f"{ui.precision_words(g['precision'].iloc[0])}; "
                      "otherwise the same measurement as above." + (" What it shows, from these numbers: " + words if words else ""), key="lambda")
        ui.table(summary)

    trained = [n for n in ui.available() if n.startswith("resnet56") and ("scale" in n or n == "resnet56")]
    if have_data and trained:
        st.markdown("**Trained with λ**: nets trained from scratch with the shortcut scaled by 0.5 (`-scale0.5`: F "
                    "unscaled; `-scale0.5f`: F scaled by 0.5 too) beside the identity net, each measured with the λ it "
                    "was trained with.")
        tres = ui.results("gradients", trained, s, states=("trained",), lambdas=(), weight_grads=False)
        t = tres.get("gradients")
        if t is not None and len(t):
            plot = t[["model", "state", "lambda", "block", "block_index", "grad_input_l2", "images"]]
            chart = ui.depth_chart(plot, "grad_input_l2", "‖∂loss/∂(block input)‖", height=320)
            tsum = tres["gradient_summary"]
            words = "; ".join(f"{r['model']} (λ = {r['lambda']:g}): {r['first_over_last']:.3g}x"
                              for _, r in tsum.iterrows())
            ui.show_chart(chart, plot, file_name="gradients_trained_lambda.csv",
                          caption=f"Trained weights, same measurement as the λ chart ({t['precision'].iloc[0]}). First "
                          f"block over last block: {words}.", key="lambda_trained")
        ui.link("pages/7_Identity_mappings.py", "How these nets trained, and the other variants: Identity mappings")

    st.subheader("Shattered gradients (Balduzzi et al. 2017)")
    st.markdown(
        "Balduzzi et al. found that the gradient with respect to the input turns into white noise with depth in "
        "feedforward nets, but not in residual nets. Here: a line of test inputs (between two test images), the "
        "gradient of a fixed random read-out of each block's output at every point, and how far along the line two "
        "gradients stay correlated.")
    if not have_data:
        st.info("This part needs the test images (the line runs between two of them).")
    elif ui.bound(st.toggle, "Measure shattering along a line of inputs", key="shatter",
                   help="One backward pass per block over the line's points, for each model, trained and at "
                        "initialisation, and for residual nets λ = 0.5 and 1.5 at initialisation."):
        points = ui.bound(st.select_slider, "Points on the line", [16, 32, 64, 128], value=ui.defaults("shattering")["points"],
                                  key="shatter_points")
        sh = ui.results("shattering", names, s, points=int(points))
        rows, curves = sh.get("shattering"), sh.get("shattering_autocorr")
        if rows is not None and len(rows):
            rows = rows.copy()
            rows["series"] = rows["state"] + rows["lambda"].map(lambda v: f", λ={v:g}")
            blocks = rows[rows["readout"] != "output"]
            chart = ui.lines_with_points(
                blocks,
                x=alt.X("block_index:Q", title="block whose output is read", axis=alt.Axis(tickMinStep=1, format="d")),
                y=alt.Y("correlation_length:Q", title="correlation length (input-space L2)", scale=alt.Scale(type="log")),
                color=ui.color(blocks["model"]), strokeDash=ui.dash("series:N", "weights"),
                tooltip=["model", "state", "lambda", "readout", alt.Tooltip("correlation_length:Q", format=".3g"),
                         alt.Tooltip("lag1_correlation:Q", format=".3f"), "censored"],
            ).properties(height=360)
            spacing = float(blocks["spacing"].median())
            ui.show_chart(chart, rows.drop(columns=["series"]), file_name="shattering.csv",
                          caption=f"{int(points)} inputs on the segment between two test images (seed {s.seed}); at each, the "
                          "gradient w.r.t. the input of <u, block output>/√dim with a fixed random u (eval-mode BN, "
                          "float32). Correlation length: the input-space distance at which the mean cosine similarity "
                          f"of gradients at two points first falls below 1/e; neighbouring points are {spacing:.3g} "
                          "apart, and a length equal to the whole segment means the gradients never decorrelated "
                          "('censored' in the CSV).", key="shatter")
            out = curves[curves["readout"] == "output"]
            chart = alt.Chart(out).mark_line().encode(
                x=alt.X("distance:Q", title="distance along the line (input-space L2)"),
                y=alt.Y("correlation:Q", title="mean cosine similarity of input gradients"),
                color=ui.color(out["model"]), strokeDash=ui.dash("state:N", "weights"),
                detail="lambda:N",
                tooltip=["model", "state", "lambda", "lag", alt.Tooltip("correlation:Q", format=".3f")],
            ).properties(height=300)
            ui.show_chart(chart, out, file_name="shattering_autocorr_output.csv",
                          caption="The same measurement for the net's output (a fixed random combination of the logits), as a "
                          "function of the distance between the two points.", key="shatter_ac")

    st.subheader("The identity term: how much of the gradient goes through the shortcut")
    st.markdown(
        "Through a residual block y = F(x) + x the gradient is ∂loss/∂y · (∂F/∂x + I): one part comes back through "
        "the branch, one straight through the shortcut. Measured for every block in one backward pass: each block's "
        "branch and shortcut read their own copy of its input, and the gradient arriving at each copy is the part "
        "through that path (the same as back-propagating with the other path detached, block by block).")
    if have_data:
        split = ui.results("gradient_split", names, s).get("gradient_split")
        if split is not None and len(split):
            chart = ui.depth_chart(split, "shortcut_share", "share through the shortcut", log=False, height=300)
            ui.show_chart(chart, split, "gradient_split.csv",
                          f"Mean over {int(split['images'].iloc[0])} test images of ‖g_shortcut‖ / (‖g_shortcut‖ + ‖g_branch‖), "
                          "where g_shortcut and g_branch are the parts of ∂loss_n/∂x_block that flow back through the "
                          "block's shortcut and through its branch (the activation after the addition included in "
                          "both); eval-mode BN, float32. A plain net has no shortcut: its share is 0.", "split")
