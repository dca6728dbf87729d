"""Curvature of the loss: top Hessian eigenvalues, trace (also per stage) and spectral density."""

import altair as alt
import streamlit as st

import ui

s = ui.page()
st.title("Curvature of the loss: is the residual net's minimum flatter?")
st.markdown(
    "Li et al. (2018) and Yao et al. (2020, PyHessian) report that skip connections make the loss surface less "
    "sharp. Here the Hessian of the test loss with respect to all weights is measured for the chosen nets: its "
    "largest eigenvalues (Ritz values of one Lanczos run, or power iteration with deflation as PyHessian does), its "
    "trace (Hutchinson's estimator, also per stage; with Lanczos, deflated by the run's basis: exact on that "
    "subspace, sampled off it) and its spectral density (stochastic Lanczos quadrature, from the same run). "
    "Hessian-vector products are taken on a private float32 copy with eval-mode BN; the cached models are never "
    "touched.")
names = ui.need_models(s)
if names and ui.need_data():
    declared = ui.defaults("hessian")
    c1, c2, c3, c4, c5 = st.columns(5)
    images = ui.bound(c1.select_slider, "Test images", [25, 50, 100, 200, 500, 1000], value=declared["images"], key="h_images",
                              help="The loss is the mean cross-entropy over these images (at most the sidebar's sample).")
    top_k = ui.bound(c2.number_input, "Top eigenvalues k", 1, 5, value=declared["top_k"], key="h_k")
    max_iter = ui.bound(c3.number_input, "Iterations (each)", 5, 200, value=declared["max_iter"], key="h_iter",
                               help="The most Lanczos steps (power iteration: products per eigenvalue), and samples for the trace.")
    tol = ui.bound(c4.select_slider, "Relative tolerance", [1e-4, 1e-3, 1e-2, 5e-2], value=declared["tol"], key="h_tol",
                           format_func=str)
    eigen = ui.bound(c5.selectbox, "Eigenvalues by", ui.choices("hessian", "eigen"), key="h_eigen",
                     format_func={"lanczos": "Lanczos", "power": "power iteration"}.get,
                     help="Lanczos reaches the same tolerance in fewer products and its basis deflates the trace; "
                          "power iteration is PyHessian's algorithm.")
    params = dict(images=int(images), top_k=int(top_k), max_iter=int(max_iter), trace_iter=int(max_iter), tol=float(tol),
                  eigen=eigen)
    hvps = len(names) * int(ui.work("hessian", **params))
    took = ui.estimate("hessian", names, s, **params)
    st.caption(f"At most {hvps} Hessian-vector products for {len(names)} models"
               + (f": {took} on this {'GPU' if s.device == 'cuda' else 'CPU'}, from the measured cost per block "
                  "scaled to this device." if took else "."))
    if ui.bound(st.toggle, "Measure the curvature of the chosen models", key="h_run",
                 help="Each model's result is kept: changing only the models computes the new ones."):
        res = ui.results("hessian", names, s, **params)
        h, dens = res.get("hessian"), res.get("hessian_density")
        if h is not None and len(h):
            eig = h[(h["quantity"] == "eigenvalue")].copy()
            tr = h[(h["quantity"] == "trace") & (h["scope"] == "all")].copy()
            left, right = st.columns(2)
            with left:
                ch = alt.Chart(eig).mark_bar().encode(
                    x=alt.X("model:N", sort=names, title=None), xOffset="k:O",
                    y=alt.Y("value:Q", title="eigenvalue", scale=alt.Scale(type="symlog")),
                    color=ui.color(eig["model"]), opacity=alt.Opacity("k:O", title="k", legend=None),
                    tooltip=["model", "k", alt.Tooltip("value:Q", format=".4g"), "iterations", "converged"],
                ).properties(height=320, title="Top eigenvalues of the Hessian")
                ui.show_chart(ch, eig, file_name="hessian_eigenvalues.csv",
                              caption=("Ritz values of one Lanczos run (full reorthogonalisation, Rademacher start)"
                                       if eigen == "lanczos" else "Power iteration with deflation")
                              + f" on the mean cross-entropy of {int(images)} test images (seed {s.seed}); stopped when "
                              f"each value changes by less than {tol:g} (relative) from one step to the next, or after "
                              + (f"max({int(max_iter)}, {declared['lanczos_steps']}) steps" if eigen == "lanczos" else
                                 f"{int(max_iter)} products per eigenvalue") + " (steps and products in the CSV). "
                              "Bars left to right: k = 1, 2, …", key="h_eig")
            with right:
                ch = alt.Chart(tr).mark_bar().encode(
                    x=alt.X("model:N", sort=names, title=None), y=alt.Y("value:Q", title="trace"),
                    color=ui.color(tr["model"]),
                    tooltip=["model", alt.Tooltip("value:Q", format=".4g"), alt.Tooltip("std_error:Q", format=".3g"),
                             "iterations"],
                ).properties(height=320, title="Trace of the Hessian")
                err = alt.Chart(tr).mark_errorbar().encode(
                    x=alt.X("model:N", sort=names), y=alt.Y("lo:Q", title="trace"), y2="hi:Q")
                tr["lo"], tr["hi"] = tr["value"] - 1.96 * tr["std_error"], tr["value"] + 1.96 * tr["std_error"]
                ui.show_chart(ch + err, tr, file_name="hessian_trace.csv",
                              caption="Hutchinson's estimate with Rademacher vectors"
                              + (", deflated by the Lanczos basis (its part of the trace exact, the samples projected "
                                 "off it)" if eigen == "lanczos" else "")
                              + ", with its 95 % interval (± 1.96 standard errors over the samples).", key="h_trace")
            stages = h[(h["quantity"] == "trace") & (h["scope"] != "all")]
            ch = alt.Chart(stages).mark_bar().encode(
                x=alt.X("scope:N", sort=["stem", "stage1", "stage2", "stage3", "head"], title=None), xOffset="model:N",
                y=alt.Y("value:Q", title="trace of the stage's diagonal block"), color=ui.color(stages["model"]),
                tooltip=["model", "scope", alt.Tooltip("value:Q", format=".4g"), alt.Tooltip("std_error:Q", format=".3g"),
                         "params_in_scope"],
            ).properties(height=300, title="Trace per stage")
            ui.show_chart(ch, stages, file_name="hessian_stage_trace.csv",
                          caption="vᵀ(Hv) restricted to each stage's parameters, from the same Rademacher samples: unbiased for "
                          "the trace of that stage's diagonal block; the stages add up to the whole trace. 'head' is the "
                          "classifier (and the final BN of pre-activation nets).", key="h_stage")
            if dens is not None and len(dens):
                ch = alt.Chart(dens).mark_line().encode(
                    x=alt.X("eigenvalue:Q", title="eigenvalue"),
                    y=alt.Y("density:Q", title="density (log scale)", scale=alt.Scale(type="log", domainMin=1e-6)),
                    color=ui.color(dens["model"]), tooltip=["model", alt.Tooltip("eigenvalue:Q", format=".3g"),
                                                            alt.Tooltip("density:Q", format=".3g")],
                ).properties(height=320, title="Spectral density")
                ui.show_chart(ch, dens, file_name="hessian_density.csv",
                              caption=f"Stochastic Lanczos quadrature: {declared['lanczos_steps']} Lanczos steps from a "
                              "Rademacher start (the first steps of the eigenvalue run when that is Lanczos), Ritz values "
                              "weighted by their squared first components, smoothed by a Gaussian (σ in the CSV).", key="h_dens")
            cmp = res.get("hessian_comparison")
            if cmp is not None and len(cmp):
                rows = [f"- {r.depth} layers: top eigenvalue {r.residual} {r.residual_top_eigenvalue:.4g} vs {r.plain} "
                        f"{r.plain_top_eigenvalue:.4g} ({'smaller' if r.top_smaller else 'not smaller'}); trace "
                        f"{r.residual_trace:.4g} vs {r.plain_trace:.4g} (smaller: {r.trace_smaller}, by the two 95 % "
                        "intervals)." for r in cmp.itertuples()]
                st.markdown("**Plain vs residual at the same depth**, read off the numbers above:\n" + "\n".join(rows))
    else:
        st.info("Switch on the measurement above; it takes minutes on a CPU, seconds on a GPU.")
    ui.link("pages/5_Loss_landscape.py", "A 1-D slice of the loss along the top eigenvector: Loss landscape")
