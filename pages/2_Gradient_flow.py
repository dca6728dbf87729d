"""Gradient norms through depth: trained vs initialised, plain vs residual, and scaled shortcuts."""

import altair as alt
import pandas as pd
import streamlit as st

import ui
from analysis.gradients import LAMBDAS

s = ui.page("Gradient flow", "🌊")
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
    metric = st.radio("Norm", ["grad_input_l2", "grad_weight_l2"], horizontal=True, key="metric",
                      format_func=lambda m: {"grad_input_l2": "‖∂loss/∂(block input)‖",
                                             "grad_weight_l2": "‖∂L/∂(conv weights)‖"}[m])
    states = ["trained", "init"] if have_data else ["init"]
    n_img = min(s.samples, 256)
    root = str(ui.D.resolve_root())
    frames = []
    for n in names:
        for stt in states:
            df = ui.friendly(ui.cached_gradients, n, stt, None, n_img, s.seed, s.device, root, not have_data)
            if df is not None:
                frames.append(df)
    if frames:
        g = pd.concat(frames, ignore_index=True)
        plot = g[["model", "state", "block", "block_index", metric, "input", "images"]]
        chart = alt.Chart(plot).mark_line(point=True).encode(
            x=alt.X("block_index:Q", title="block (input side → output side)", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(f"{metric}:Q", title=metric, scale=alt.Scale(type="log")),
            color=ui.color(plot["model"]), strokeDash=alt.StrokeDash("state:N", title="weights"),
            tooltip=["model", "state", "block", alt.Tooltip(f"{metric}:Q", format=".3e")],
        ).properties(height=360)
        ui.show_chart(chart, plot, "gradients.csv",
                      f"Log scale. Input gradient: mean over {n_img} images of ‖∂loss_n/∂x_block‖₂ (per-image "
                      "cross-entropy). Weight gradient: ‖∂L/∂W‖₂ over both 3x3 convs of the block, L = mean loss over "
                      "the sample. BN uses batch statistics (batches of 128, as in training) on a private copy of the "
                      "model; float32. 'init' = the same architecture freshly He-initialised with the sidebar seed.",
                      "gradients")

    st.subheader("Scaled shortcuts at initialisation: y = ReLU(F(x) + λ·x)")
    res_names = [n for n in names if ui.is_residual(n)] or names
    lam = st.select_slider("λ (shortcut scale)", options=list(LAMBDAS), value=1.0, key="lam")
    frames = []
    for n in res_names:
        for l in sorted({0.0, 1.0, lam}):
            df = ui.friendly(ui.cached_gradients, n, "init", l, n_img, s.seed, s.device, root, not have_data)
            if df is not None:
                frames.append(df)
    if frames:
        g = pd.concat(frames, ignore_index=True)
        g["series"] = g["model"] + " λ=" + g["lambda"].map(lambda v: f"{v:g}")
        plot = g[["model", "series", "lambda", "block", "block_index", "grad_input_l2", "input", "images"]]
        chart = alt.Chart(plot).mark_line(point=True).encode(
            x=alt.X("block_index:Q", title="block (input side → output side)", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("grad_input_l2:Q", title="‖∂loss/∂(block input)‖", scale=alt.Scale(type="log")),
            color=alt.Color("lambda:O", title="λ", scale=alt.Scale(scheme="viridis")),
            strokeDash=alt.StrokeDash("model:N"),
            tooltip=["series", "block", alt.Tooltip("grad_input_l2:Q", format=".3e")],
        ).properties(height=360)
        ui.show_chart(chart, plot, "gradients_lambda.csv",
                      "At initialisation, λ = 0 (the plain net), 1 (the residual net) and the chosen λ. Each block "
                      "multiplies the backward signal along its shortcut by λ, so over n blocks λ > 1 grows it like λⁿ "
                      "and λ < 1 shrinks it. Same measurement as above.", "lambda")
