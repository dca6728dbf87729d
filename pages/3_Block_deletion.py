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
    d1r = ui.results("deletion_single", names, s)
    d1 = d1r.get("deletion_single")
    if d1 is not None:
        plot = d1[["model", "block", "block_index", "downsample", "error_pct", "intact_error_pct", "images"]]
        intact = plot.drop_duplicates("model")[["model", "intact_error_pct"]].assign(line="intact net")
        base = alt.Chart(plot).encode(
            x=alt.X("block_index:Q", title="deleted block", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("error_pct:Q", title="test error (%)", scale=alt.Scale(domain=[0, 100])),
            color=ui.color(plot["model"]),
            tooltip=["model", "block", "downsample", alt.Tooltip("error_pct:Q", format=".1f"),
                     alt.Tooltip("intact_error_pct:Q", format=".1f")])
        baseline = alt.Chart(intact).mark_rule(strokeDash=[5, 4], opacity=0.8).encode(
            y=alt.Y("intact_error_pct:Q", title="test error (%)"), color=ui.color(plot["model"]),
            tooltip=["model", alt.Tooltip("intact_error_pct:Q", title="intact error (%)", format=".1f")])
        chart = (baseline + base.mark_line() + base.mark_point(filled=True, size=60).encode(
            shape=alt.Shape("downsample:N", legend=ui.legend("downsampling block")))).properties(height=340)
        ui.show_chart(chart, plot, file_name="deletion_single.csv",
                      caption=f"Top-1 error on {int(plot['images'].iloc[0])} test images (seed {s.seed}) with one block "
                      "deleted; the dashed line of each colour is that net's intact error. Downsampling blocks (squares) "
                      "still run their shortcut when deleted. Eval-mode BN folded into the convolutions, "
                      f"{ui.deletion_precision_words()}; each deletion reuses the cached input of "
                      "the deleted block. "
                      + " ".join(d1r.get("deletion_single_findings", pd.DataFrame(columns=["sentence"]))["sentence"]),
                      key="single")

    st.subheader("Delete k random blocks")
    declared = ui.defaults("deletion_random")
    pools = {n: p for n in names if (p := ui.friendly(ui.deletable_blocks, n)) is not None}
    top = max(pools.values(), default=0)
    c1, c2 = st.columns(2)
    # The slider's first position (6) only says how far the first chart goes; it ends at the most blocks a chosen net
    # can lose (every block but the two downsampling ones).
    k_max = ui.bound(c1.slider, "k: largest number of deleted blocks", 0, max(1, top), value=min(6, max(1, top)),
                     key="k")
    trials = ui.bound(c2.number_input, "Trials per k", 1, 50, value=declared["trials"], key="trials")
    short = sorted({p for p in pools.values() if p < k_max})
    if short:
        c1.caption("Fewer deletable blocks than k: " + "; ".join(
            f"{', '.join(n for n, p in pools.items() if p == q)} stop at k = {q}" for q in short) + ".")
    dr_res, ahead = {}, []
    for n, pool in pools.items():
        ahead += [(n, k) for k in range(k_max + 1, min(pool, k_max + ui.prefetch_depth()) + 1)]
        got = ui.results("deletion_random", [n], s, each=[{"ks": (k,)} for k in range(0, min(k_max, pool) + 1)],
                         trials=int(trials))
        for key, df in got.items():
            dr_res.setdefault(key, []).append(df)
    if dr_res.get("deletion_random"):
        dr = pd.concat(dr_res["deletion_random"], ignore_index=True)
        summ = pd.concat(dr_res["deletion_random_summary"], ignore_index=True)
        found = pd.concat(dr_res.get("deletion_random_findings", [pd.DataFrame(columns=["sentence"])]))
        band = alt.Chart(summ).mark_area(opacity=0.2).encode(
            x=alt.X("k:Q", title="number of deleted blocks k", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("ci95_low:Q", title="test error (%)", scale=alt.Scale(domain=[0, 100])),
            y2="ci95_high:Q", color=ui.color(summ["model"]))
        line = alt.Chart(summ).mark_line(point=True).encode(
            x=alt.X("k:Q", title="number of deleted blocks k"), y=alt.Y("mean_error_pct:Q", title="test error (%)"), color=ui.color(summ["model"]),
            tooltip=["model", "k", "trials", alt.Tooltip("mean_error_pct:Q", format=".1f"),
                     alt.Tooltip("ci95_low:Q", format=".1f"), alt.Tooltip("ci95_high:Q", format=".1f")])
        ui.show_chart((band + line).properties(height=340), summ, file_name="deletion_random_summary.csv",
                      caption=f"Mean top-1 error over {int(trials)} random draws of k non-downsampling blocks (k = 0: the "
                      "intact net, each line's baseline); the band is the 95 % percentile bootstrap interval of that "
                      "mean over the draws (it stays between the best and the worst draw, inside 0-100 %); each k has "
                      f"its own seeded draws. {int(dr['images'].iloc[0])} test images. " + " ".join(found["sentence"]),
                      key="random")
        with st.expander("Every trial"):
            ui.table(dr)
            st.download_button("Download CSV", dr.to_csv(index=False).encode(), "deletion_random.csv", key="dl_random_all")

    st.subheader("Reorder blocks")
    r_trials = ui.bound(st.number_input, "Random reorderings", 2, 50, value=ui.defaults("reorder")["trials"],
                        key="reorder_trials")
    dro = ui.results("reorder", names, s, trials=int(r_trials)).get("reorder")
    if dro is not None:
        lo = float(dro["kendall_tau"].min())
        chart = alt.Chart(dro).mark_point(filled=True, size=70).encode(
            x=alt.X("kendall_tau:Q", title="Kendall τ to the trained order (1 = unchanged)",
                    scale=alt.Scale(domain=[max(-1.0, lo - 0.05 * (1 - lo) - 0.01), 1.0])),
            y=alt.Y("error_pct:Q", title="test error (%)", scale=alt.Scale(domain=[0, 100])), color=ui.color(dro["model"]),
            tooltip=["model", "swaps", alt.Tooltip("kendall_tau:Q", format=".3f"), alt.Tooltip("error_pct:Q", format=".1f"), "order"],
        ).properties(height=320)
        ui.show_chart(chart, dro, file_name="reorder.csv",
                      caption="Each point: random swaps of same-shape blocks (non-downsampling blocks of one stage); τ = 1 is the "
                      "trained order (the axis starts just below the smallest τ drawn). The run starts at the first moved "
                      "block on its cached input.", key="reorder")

    st.subheader("Paths")
    res_names = [n for n in names if ui.is_residual(n)]
    if not res_names:
        st.info("Choose a residual model to see its paths.")
    else:
        per_len = ui.bound(st.number_input, "Samples per path length", 1, 50, value=ui.defaults("paths")["per_length"],
                           key="per_length")
        pres = ui.results("paths", res_names, s, per_length=int(per_len))
        dp = pres.get("paths")
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
                base = alt.Chart(dp).encode(x=alt.X("length:Q", title="path length"), color=ui.color(dp["model"]))
                ch = (base.mark_area(opacity=0.2).encode(
                    y=alt.Y("total_grad_low:Q", title="total gradient magnitude"), y2="total_grad_high:Q")
                    + base.mark_line(point=True).encode(
                    y=alt.Y("total_grad:Q", title="total gradient magnitude"),
                    tooltip=["model", "length", alt.Tooltip("grad_norm:Q", format=".3e"),
                             alt.Tooltip("total_grad:Q", format=".3e"), alt.Tooltip("total_grad_low:Q", format=".3e"),
                             alt.Tooltip("total_grad_high:Q", format=".3e")])).properties(height=300)
                ui.show_chart(ch, dp[["model", "length", "grad_norm", "total_grad", "total_grad_low", "total_grad_high",
                                      "total_grad_share", "samples", "batch"]],
                              file_name="paths.csv",
                              caption="Veit et al.'s method: backpropagate through the branches of k random blocks only (skip path "
                              "elsewhere) and measure ‖∂loss/∂(input of block 0)‖ per image (batches of 16, float32); "
                              f"total = C(n, k) × that mean over {int(per_len)} draws per length; band: its 95 % interval "
                              "over the draws. " + " ".join(pres["paths_findings"]["sentence"]), key="pathgrad")

    # The slider's likely next steps (k + 1, k + 2), every model's k + 1 first, computed in the background once the
    # page's own work is done (queued earlier, they took the cores from its last sections: 12.7 s of background work
    # ran during one cold run at 500 images): moving the slider up then only collects them (the same seeded draws as
    # computing them on demand).
    for n, k in sorted(ahead, key=lambda t: t[1]):
        ui.prefetch("deletion_random", n, s, ks=(k,), trials=int(trials))
