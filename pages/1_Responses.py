"""Layer responses (He et al. 2015, Fig. 7) and the size of each residual branch."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page("Responses", "📏")
st.title("Layer responses")
st.markdown("He et al. (2015, Fig. 7) report that residual nets' 3x3 layers respond *less* than plain ones: "
            "the residual functions are closer to zero. Here is that measurement on the zoo.")
names = ui.need_models(s)
if names and ui.need_data():
    order = st.radio("Layer order", ["in layer order", "sorted by magnitude"], horizontal=True, key="order")
    root = str(ui.D.resolve_root())
    res = [ui.friendly(ui.cached_responses, n, s.samples, s.seed, s.device, root) for n in names]
    res = [r for r in res if r is not None]
    if res:
        resp = pd.concat([r[0] for r in res], ignore_index=True)
        ratio = pd.concat([r[1] for r in res], ignore_index=True)
        xcol, xtitle = ("layer_index", "layer (in order)") if order == "in layer order" else ("sorted_rank", "layer (sorted by std, largest first)")
        plot = resp[["model", "residual", "layer", "layer_index", "sorted_rank", "std", "std_all", "images"]]
        chart = alt.Chart(plot).mark_line(point=True).encode(
            x=alt.X(f"{xcol}:Q", title=xtitle), y=alt.Y("std:Q", title="std of response"),
            color=ui.color(plot["model"]),
            tooltip=["model", "layer", alt.Tooltip("std:Q", format=".3f"), "layer_index", "sorted_rank"],
        ).properties(height=360)
        ui.show_chart(chart, plot, "responses.csv",
                      f"Response of a 3x3 layer = its output after BN, before the addition and ReLU (stem, then bn1 and "
                      f"bn2 of each block). std = for each channel the standard deviation over {s.samples} test "
                      f"images (seed {s.seed}) and all positions, then the mean over channels; eval-mode BN, float32.",
                      "responses")
        med = plot.groupby("model")["std"].median().rename("median std").to_frame().T
        st.dataframe(med, width="stretch")
        st.subheader("How small is each residual branch?")
        base = alt.Chart(ratio).encode(
            x=alt.X("block_index:Q", title="block", axis=alt.Axis(tickMinStep=1, format="d")), y=alt.Y("ratio:Q", title="‖F(x)‖ / ‖x‖"),
            color=ui.color(ratio["model"]),
            tooltip=["model", "block", alt.Tooltip("ratio:Q", format=".3f"), alt.Tooltip("ratio_shortcut:Q", format=".3f"), "downsample"])
        chart2 = (base.mark_line() + base.mark_point(filled=True, size=60).encode(
            shape=alt.Shape("downsample:N", title="downsampling block"))).properties(height=320)
        ui.show_chart(chart2, ratio.drop(columns=["definition"]), "residual_ratio.csv",
                      "For each image, the L2 norm of the block's branch output F(x) (after bn2, before the addition) "
                      "divided by the L2 norm of the block's input x, averaged over the images. In a plain net F(x) is "
                      "the whole block before its ReLU, so the same ratio shows how much each plain block rewrites its input.",
                      "ratio")
