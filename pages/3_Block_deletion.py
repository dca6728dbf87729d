"""Lesion study (Veit et al. 2016): delete one block, delete k random blocks, reorder, paths."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page()
st.title("Block deletion: a ResNet as an ensemble of paths")
st.markdown("Veit, Wilber and Belongie (2016) deleted blocks from trained nets at test time: a residual net "
            "degrades smoothly, as an ensemble of many paths would, while a plain net collapses. A deleted block "
            "here runs only its skip path (the identity; in a downsampling block, option A's subsample-and-pad or "
            "the projection; times λ in a net trained with a shortcut scale).")
names = ui.need_models(s)
if names and ui.need_data():
    st.subheader("Delete one block")
    d1 = ui.results("deletion_single", names, s).get("deletion_single")
    if d1 is not None:
        plot = d1[["model", "block", "block_index", "downsample", "error_pct", "intact_error_pct", "images"]]
        base = alt.Chart(plot).encode(
            x=alt.X("block_index:Q", title="deleted block", axis=alt.Axis(tickMinStep=1, format="d")), y=alt.Y("error_pct:Q", title="test error (%)"),
            color=ui.color(plot["model"]),
            tooltip=["model", "block", "downsample", alt.Tooltip("error_pct:Q", format=".1f"),
                     alt.Tooltip("intact_error_pct:Q", format=".1f")])
        chart = (base.mark_line() + base.mark_point(filled=True, size=60).encode(
            shape=alt.Shape("downsample:N", title="downsampling block"))).properties(height=340)
        ui.show_chart(chart, plot, file_name="deletion_single.csv",
                      caption=f"Top-1 error on {int(plot['images'].iloc[0])} test images (seed {s.seed}) with one block deleted; intact error in "
                      "the tooltip. Downsampling blocks (squares) still run their shortcut when deleted. Eval-mode "
                      "BN, bfloat16 autocast; each deletion reuses the cached input of the deleted block.", key="single")

    st.subheader("Delete k random blocks")
    declared = ui.defaults("deletion_random")
    c1, c2 = st.columns(2)
    # The slider's first position (6) only says how far the first chart goes; the range is the analysis' k list.
    k_max = c1.slider("k: largest number of deleted blocks", 0, max(declared["ks"]), 6, key="k")
    trials = c2.number_input("Trials per k", 1, 50, declared["trials"], key="trials")
    dr_res, ahead = {}, []
    for n in names:
        pool = ui.friendly(ui.deletable_blocks, n)
        if pool is None:
            continue
        ahead += [(n, k) for k in range(k_max + 1, min(pool, k_max + ui.prefetch_depth()) + 1)]
        got = ui.results("deletion_random", [n], s, each=[{"ks": (k,)} for k in range(0, min(k_max, pool) + 1)],
                         trials=int(trials))
        for key, df in got.items():
            dr_res.setdefault(key, []).append(df)
    # Compute the slider's likely next steps (k + 1, k + 2) in the background, every model's k + 1 first,
    # started before the charts below are drawn so that drawing them overlaps it: moving the slider up then
    # only collects them (the same seeded draws as computing them on demand).
    for n, k in sorted(ahead, key=lambda t: t[1]):
        ui.prefetch("deletion_random", n, s, ks=(k,), trials=int(trials))
    if dr_res.get("deletion_random"):
        dr = pd.concat(dr_res["deletion_random"], ignore_index=True)
        summ = pd.concat(dr_res["deletion_random_summary"], ignore_index=True)
        band = alt.Chart(summ).mark_area(opacity=0.2).encode(
            x=alt.X("k:Q", title="number of deleted blocks k", axis=alt.Axis(tickMinStep=1, format="d")), y=alt.Y("ci95_low:Q", title="test error (%)"),
            y2="ci95_high:Q", color=ui.color(summ["model"]))
        line = alt.Chart(summ).mark_line(point=True).encode(
            x="k:Q", y="mean_error_pct:Q", color=ui.color(summ["model"]),
            tooltip=["model", "k", "trials", alt.Tooltip("mean_error_pct:Q", format=".1f"),
                     alt.Tooltip("ci95_low:Q", format=".1f"), alt.Tooltip("ci95_high:Q", format=".1f")])
        ui.show_chart((band + line).properties(height=340), summ, file_name="deletion_random_summary.csv",
                      caption=f"Mean top-1 error over {int(trials)} random draws of k non-downsampling blocks (k = 0: intact); "
                      "the band is the 95 % percentile bootstrap interval of that mean over the draws (it stays between "
                      "the best and the worst draw, inside 0-100 %); each k has its own seeded draws. "
                      f"{int(dr['images'].iloc[0])} test images.", key="random")
        with st.expander("Every trial"):
            st.dataframe(dr, hide_index=True, width="stretch")
            st.download_button("Download CSV", dr.to_csv(index=False).encode(), "deletion_random.csv", key="dl_random_all")

    st.subheader("Reorder blocks")
    r_trials = st.number_input("Random reorderings", 2, 50, ui.defaults("reorder")["trials"], key="reorder_trials")
    dro = ui.results("reorder", names, s, trials=int(r_trials)).get("reorder")
    if dro is not None:
        chart = alt.Chart(dro).mark_point(filled=True, size=70).encode(
            x=alt.X("kendall_tau:Q", title="Kendall τ to the trained order", scale=alt.Scale(domain=[0, 1.0])),
            y=alt.Y("error_pct:Q", title="test error (%)"), color=ui.color(dro["model"]),
            tooltip=["model", "swaps", alt.Tooltip("kendall_tau:Q", format=".3f"), alt.Tooltip("error_pct:Q", format=".1f"), "order"],
        ).properties(height=320)
        ui.show_chart(chart, dro, file_name="reorder.csv",
                      caption="Each point: random swaps of same-shape blocks (non-downsampling blocks of one stage); τ = 1 is the "
                      "trained order. The run starts at the first moved block on its cached input.", key="reorder")

    st.subheader("Paths")
    res_names = [n for n in names if ui.is_residual(n)]
    if not res_names:
        st.info("Choose a residual model to see its paths.")
    else:
        per_len = st.number_input("Samples per path length", 1, 50, ui.defaults("paths")["per_length"], key="per_length")
        dp = ui.results("paths", res_names, s, per_length=int(per_len)).get("paths")
        if dp is not None:
            c1, c2 = st.columns(2)
            with c1:
                ch = alt.Chart(dp).mark_line(point=True).encode(
                    x=alt.X("length:Q", title="path length (blocks whose branch the path enters)"),
                    y=alt.Y("fraction:Q", title="fraction of paths"), color=ui.color(dp["model"]),
                    tooltip=["model", "length", "n_paths", alt.Tooltip("fraction:Q", format=".4f")]).properties(height=300)
                ui.show_chart(ch, dp[["model", "length", "n_paths", "fraction"]], file_name="path_lengths.csv",
                              caption="Exact: a net of n blocks has C(n, k) paths of length k, a Binomial(n, ½) distribution.", key="pathlen")
            with c2:
                ch = alt.Chart(dp).mark_line(point=True).encode(
                    x=alt.X("length:Q", title="path length"), y=alt.Y("total_grad:Q", title="total gradient magnitude"),
                    color=ui.color(dp["model"]),
                    tooltip=["model", "length", alt.Tooltip("grad_norm:Q", format=".3e"), alt.Tooltip("total_grad:Q", format=".3e")]).properties(height=300)
                ui.show_chart(ch, dp[["model", "length", "grad_norm", "total_grad", "total_grad_share", "samples", "batch"]],
                              file_name="paths.csv",
                              caption="Veit et al.'s method: backpropagate through the branches of k random blocks only (skip path "
                              "elsewhere) and measure ‖∂loss/∂(input of block 0)‖ per image (batches of 16, float32); "
                              "total = C(n, k) × that mean. The peak lies at short paths.", key="pathgrad")
