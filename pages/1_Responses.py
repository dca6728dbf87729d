"""Layer responses (He et al. 2015, Fig. 7) and the size of each residual branch."""

import altair as alt
import streamlit as st

import ui

s = ui.page()
st.title("Layer responses")
st.markdown("He et al. (2015, Fig. 7) report that residual nets' 3x3 layers respond *less* than plain ones: "
            "the residual functions are closer to zero. Here is that measurement on the zoo. The paper does not say how a "
            "layer's std is aggregated, so both readings are offered, and the comparison under the chart says which holds.")
names = ui.need_models(s)
if names and ui.need_data():
    c1, c2 = st.columns(2)
    order = ui.bound(c1.radio, "Layer order", ["in layer order", "sorted by magnitude"], horizontal=True, key="order")
    agg = ui.bound(c2.radio, "std of a layer", ["per channel, then mean", "over all values"], horizontal=True, key="agg",
                   help="The paper does not say how a layer's std is aggregated; the two readings can disagree.")
    res = ui.results("responses", names, s)
    if res:
        resp, ratio = res["responses"], res["residual_ratio"]
        ycol, rank = ("std", "sorted_rank") if agg.startswith("per channel") else ("std_all", "sorted_rank_all")
        xcol, xtitle = ("layer_index", "layer (in order)") if order == "in layer order" else (rank, "layer (sorted by std, largest first)")
        plot = resp[["model", "residual", "layer", "kernel", "layer_index", rank, ycol, "images"]]
        yscale, scale_note = ui.auto_scale(plot[ycol])
        chart = alt.Chart(plot).mark_line(point=True).encode(
            x=alt.X(f"{xcol}:Q", title=xtitle, axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y(f"{ycol}:Q", title="std of response", scale=yscale),
            color=ui.color(plot["model"]),
            tooltip=["model", "layer", "kernel", alt.Tooltip(f"{ycol}:Q", format=".3f"), "layer_index", rank],
        ).properties(height=360)
        how = ("for each channel the standard deviation over the images and all positions, then the mean over "
               "channels" if ycol == "std" else "the standard deviation of all values of the layer at once "
               "(channels, positions and images together)")
        ui.show_chart(chart, plot, file_name=f"responses_{ycol}.csv",
                      caption="Response of a 3x3 layer = its output after BN, before the addition and ReLU (stem, then bn1 and "
                      "bn2 of each block; conv2 in units with no BN after it"
                      + ("; in a bottleneck block bn1, bn2 and bn3, its two 1x1 layers included: the kernel is in the "
                         "tooltip and the CSV" if (plot["kernel"] != "3x3").any() else "") + f"). std = {how}; {int(plot['images'].iloc[0])} "
                      f"test images (seed {s.seed}), eval-mode BN, float32. " + scale_note,
                      key="responses")
        summary = res["response_summary"]
        ui.table(summary)
        cmp = res["response_comparison"]
        if len(cmp):
            st.markdown("**Plain vs residual at the same depth**, read off the measurements above:")
            lines = []
            for _, c in cmp.iterrows():
                word = "smaller" if c["residual_smaller"] else "**not smaller**"
                stat = "median" if c["measure"] != "ratio" else "mean"
                lines.append(f"- {c['residual']} vs {c['plain']}, {c['definition']}: {stat} {c['residual_value']:.3f} vs "
                             f"{c['plain_value']:.3f}, {word}; the residual net is below at "
                             f"{100 * c['share_residual_below']:.0f} % of the sorted ranks.")
            st.markdown("\n".join(lines))
            st.download_button("Download CSV", cmp.to_csv(index=False).encode(), file_name="response_comparison.csv",
                               mime="text/csv", key="dl_cmp")
        st.subheader("How small is each residual branch?")
        rscale, rnote = ui.auto_scale(ratio["ratio"])
        base = alt.Chart(ratio).encode(
            x=alt.X("block_index:Q", title="block", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("ratio:Q", title="‖F(x)‖ / ‖x‖", scale=rscale),
            color=ui.color(ratio["model"]),
            tooltip=["model", "block", alt.Tooltip("ratio:Q", format=".3f"), alt.Tooltip("ratio_shortcut:Q", format=".3f"), "downsample"])
        chart2 = (base.mark_line() + base.mark_point(filled=True, size=60).encode(
            shape=alt.Shape("downsample:N", legend=ui.legend("downsampling block")))).properties(height=320)
        ui.show_chart(chart2, ratio.drop(columns=["definition"]), file_name="residual_ratio.csv",
                      caption="For each image, the L2 norm of the block's branch output F(x) (after its last BN, before the "
                      "addition; times g(x) in an exclusively gated net) "
                      "divided by the L2 norm of the block's input x, averaged over the images. In a plain net F(x) is "
                      "the whole block before its ReLU, so the same ratio shows how much each plain block rewrites its input. "
                      + rnote,
                      key="ratio")
