"""Loss landscape slices along filter-normalised random directions (Li et al. 2018)."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page()
st.title("Loss landscape")
st.markdown("Li et al. (2018) found that shortcuts keep the loss surface of deep nets smooth. Slices of the "
            "loss around the trained weights along random filter-normalised directions, or (1-D) along the top "
            "eigenvector of the Hessian, the direction in which the loss curves most:")
names = ui.need_models(s)
if names and ui.need_data():
    c1, c2, c3 = st.columns(3)
    dims = ui.bound(c1.radio, "Slice", [1, 2], format_func=lambda d: f"{d}-D", horizontal=True, key="dims")
    direction = "random"
    if dims == 1:
        direction = ui.bound(c1.radio, "Direction", ["random", "hessian"], horizontal=True, key="direction",
                             format_func={"random": "random, filter-normalised", "hessian": "top Hessian eigenvector"}.get)
    else:
        view = ui.bound(c1.radio, "View", ["contour", "heatmap"], horizontal=True, key="view2d",
                        format_func={"contour": "contour lines", "heatmap": "heatmap"}.get)
    declared = ui.defaults("landscape")
    steps = ui.bound(c2.slider, "Grid points per axis", 5, 41 if dims == 1 else 25,
                     value=declared["steps_1d"] if dims == 1 else declared["steps_2d"], key=f"steps_{dims}d",
                      help="2-D: steps² forward passes over the test images per model. For large grids (Li et al.'s "
                           "51x51) use `python -m analysis landscape`, which torchrun can spread over processes.")
    radius = ui.bound(c3.slider, "Radius (α, β range)", 0.25, 2.0, value=float(declared["radius"]), step=0.25,
                      key="radius")
    res = ui.results("landscape", names, s, dims=(dims,), steps_1d=steps, steps_2d=steps, radius=radius,
                     direction=direction)
    df = res.get("landscape")
    if df is not None:
        findings = " ".join(res.get("landscape_findings", pd.DataFrame(columns=["sentence"]))["sentence"])
        n_img = int(df["images"].iloc[0])
        n_hess = min(ui.defaults("landscape")["hessian_images"], s.samples)
        frames = [g for _, g in df.groupby("model", sort=False)]
        at = "θ + α·d₁" if dims == 1 else "θ + α·d₁ + β·d₂"
        caption = (f"Mean cross-entropy on {n_img} test images at {at}; d drawn with seed {s.seed}, each "
                   "filter rescaled to the norm of the trained filter, BN and bias entries zero. Eval-mode BN, bfloat16 "
                   "autocast; the model itself is never changed (torch.func.functional_call).")
        if direction == "hessian":
            tops = df.groupby("model")["top_eigenvalue"].first()
            caption = (f"Mean cross-entropy on {n_img} test images at θ + α·v, v = the top eigenvector of the Hessian "
                       f"of the loss on {n_hess} test images (the top Ritz vector of a Lanczos run, at most "
                       f"{ui.defaults('landscape')['hessian_iter']} steps), rescaled as "
                       "a whole to the norm of θ. Its eigenvalue: " + ", ".join(f"{m} {v:.4g}" for m, v in tops.items())
                       + ". Eval-mode BN, bfloat16 autocast for the loss; float32 for the eigenvector.")
        if dims == 1:
            chart = alt.Chart(df).mark_line(point=True).encode(
                x=alt.X("alpha:Q", title="α"), y=alt.Y("loss:Q", title="loss (log scale)", scale=alt.Scale(type="log")),
                color=ui.color(df["model"]), tooltip=["model", "alpha", alt.Tooltip("loss:Q", format=".3f"), "error_pct"]).properties(height=360)
            ui.show_chart(chart, df, file_name="landscape_1d.csv", caption=caption + " " + findings, key="land1")
        else:
            lo, hi = float(df["loss"].min()), float(df["loss"].max())
            scale = alt.Scale(type="log", scheme="viridis", domain=[lo, hi])  # one colour scale for every model
            legend = alt.Legend(orient="bottom", direction="horizontal", gradientLength=260, format=".3g")
            if view == "contour":
                segs = res["landscape_contours"]
                levels = sorted(segs["level"].unique()) if len(segs) else []
                caption += (f" Contour lines by marching squares on the {steps}x{steps} grid at {len(levels)} losses "
                            f"spaced evenly in log(loss) from {lo:.3g} to {hi:.3g}, the same for every model; the "
                            "cross marks the trained weights (α = β = 0). Each CSV holds the segments drawn; the "
                            "heatmap view's CSVs hold the grid itself.")
            st.caption(caption + " Along the α axis (β = 0): " + findings)
            per_row = 2  # wide enough for a square-ish plot and its axis labels
            for i in range(0, len(frames), per_row):
                for col, f in zip(st.columns(per_row), frames[i:i + per_row]):
                    with col:
                        n = f["model"].iloc[0]
                        if view == "contour":
                            sf = segs[segs["model"] == n]
                            axis = alt.Scale(domain=[-radius, radius], nice=False)
                            lines = alt.Chart(sf).mark_line(strokeWidth=1.5).encode(
                                x=alt.X("alpha:Q", title="α", scale=axis), y=alt.Y("beta:Q", title="β", scale=axis),
                                detail="segment:N", order="end:O",
                                color=alt.Color("level:Q", scale=scale, title="loss", legend=legend),
                                tooltip=[alt.Tooltip("level:Q", title="loss", format=".3f")])
                            centre = alt.Chart(pd.DataFrame({"alpha": [0.0], "beta": [0.0]})).mark_point(
                                shape="cross", size=120, color="red", filled=True).encode(x=alt.X("alpha:Q", title="α"),
                                                                                  y=alt.Y("beta:Q", title="β"))
                            ch = (lines + centre).properties(title=n, height=400)
                            ui.show_chart(ch, sf, file_name=f"landscape_contours_{n.replace(':', '_')}.csv",
                                          caption=f"{n}: {len(sf['segment'].unique()) if len(sf) else 0} contour "
                                          "segments.", key=f"land2c_{n}")
                        else:
                            ch = alt.Chart(f).mark_rect().encode(
                                x=alt.X("alpha:O", title="α", axis=alt.Axis(format=".2f")),
                                y=alt.Y("beta:O", title="β", sort="descending", axis=alt.Axis(format=".2f")),
                                color=alt.Color("loss:Q", scale=scale, title="loss", legend=legend),
                                tooltip=["alpha", "beta", alt.Tooltip("loss:Q", format=".3f"), "error_pct"]
                            ).properties(title=n, height=400)
                            ui.show_chart(ch, f, file_name=f"landscape_2d_{n.replace(':', '_')}.csv",
                                          caption=f"{n}: {len(f)} grid points.", key=f"land2_{n}")
