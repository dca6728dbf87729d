"""Depth, constructed and read out: a deeper net built from a shallower one, and what each block's features keep."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page()
st.title("Depth: a deeper net built from a shallower one, and what each block keeps")
st.markdown(
    "He et al. (2015, section 1) argue that depth alone cannot make a net worse: a deeper net *made* of a trained "
    "shallower one plus layers that compute the identity has the shallower net's error. So when a trained deep "
    "plain net does worse, the solver failed to find a solution that exists. Below, that construction on real "
    "nets, then four read-outs of what each block's features hold: the net's own head read early, a linear probe, "
    "how far each block steps downhill, how alike the blocks' representations are, and how much of the input "
    "image they still let one restore.")

st.subheader("The constructed solution")
constructed = ui.constructed_models()
if not constructed:
    st.info("No constructed net in the zoo: make one with `python -m analysis construct plain20 --depth 56 "
            "--name plain56-from-plain20`.")
else:
    con = ui.results("construction", constructed, s).get("construction", pd.DataFrame())
    if len(con):
        long = []
        for r in con.itertuples():
            for who, tr, te in (("source", r.source_train_error_pct, r.source_test_error_pct),
                                ("constructed", r.constructed_train_error_pct, r.constructed_test_error_pct),
                                ("trained", r.trained_train_error_pct, r.trained_test_error_pct)):
                name = {"source": r.source, "constructed": r.model, "trained": r.trained}[who]
                if name is None or pd.isna(tr):
                    continue
                long += [{"pair": f"{r.source} → {r.depth} layers", "net": f"{who}: {name}", "role": who,
                          "split": split, "error_pct": v} for split, v in (("training", tr), ("test", te))]
        plot = pd.DataFrame(long)
        chart = alt.Chart(plot).mark_bar().encode(
            x=alt.X("role:N", title=None, sort=["source", "constructed", "trained"]), xOffset="split:N",
            y=alt.Y("error_pct:Q", title="error (%)", scale=alt.Scale(domain=[0, max(20.0, plot["error_pct"].max())])),
            color=alt.Color("split:N", title="images", legend=alt.Legend(orient="bottom")),
            column=alt.Column("pair:N", title=None),
            tooltip=["net", "split", alt.Tooltip("error_pct:Q", format=".2f")]).properties(height=280, width=260)
        lines = []
        for r in con.itertuples():
            line = (f"{r.model} ({r.source} plus {r.new_blocks} identity blocks) has {r.constructed_train_error_pct:.2f} % "
                    f"training and {r.constructed_test_error_pct:.2f} % test error; {r.source} itself "
                    f"{r.source_train_error_pct:.2f} % and {r.source_test_error_pct:.2f} %")
            if r.trained and pd.notna(r.trained_train_error_pct):
                worse = r.trained_minus_constructed_train_low > 0
                line += (f". The trained {r.trained} reaches {r.trained_train_error_pct:.2f} % training error: "
                         + ("worse than the construction (the difference's 95 % interval "
                            f"{r.trained_minus_constructed_train_low:+.2f} to {r.trained_minus_constructed_train_high:+.2f} "
                            "points lies above 0), so at this depth a solution at least as good existed and training "
                            "did not find it" if worse else "not worse than the construction"))
            lines.append(line + ".")
        ui.show_chart(chart, con, file_name="construction.csv",
                      caption="Errors from the model cards: the constructed net and its source measured the same way "
                      "(float32, all 50,000 training and 10,000 test images, this machine), the trained net as its own "
                      "card records (eval mode, the GPU that trained it). " + " ".join(lines) + " " + ui.JPEG_NOTE,
                      key="construction")
        st.caption("Not measured here: what training *on* from a construction reaches (the construction as a starting "
                   "point instead of a fresh initialisation). ResLens cannot train from a given start yet, and a full "
                   "schedule needs a GPU (a few epochs at most on a CPU).")

names = ui.need_models(s)
if names and ui.need_data():
    st.subheader("Readouts: what each block already tells about the class")
    ro = ui.results("readout", names, s)
    df = ro.get("readout")
    if df is not None and len(df):
        df = df.assign(readout=df["readout"].map({"head": "the net's head, through the skip path",
                                                  "probe": "a linear probe"}))
        base = alt.Chart(df).encode(
            x=alt.X("point_index:Q", title="read after block (-1 = the stem)", axis=alt.Axis(tickMinStep=1, format="d")),
            color=ui.color(df["model"]))
        band = base.mark_area(opacity=0.12).encode(y=alt.Y("error_low:Q", title="test error (%)",
                                                           scale=alt.Scale(domain=[0, 100])), y2="error_high:Q",
                                                   detail="readout:N")
        line = ui.lines_with_points(
            df, x=alt.X("point_index:Q", title="read after block (-1 = the stem)", axis=alt.Axis(tickMinStep=1, format="d")),
            color=ui.color(df["model"]),
            y=alt.Y("error_pct:Q", title="test error (%)"), strokeDash=ui.dash("readout:N", "read by"),
            tooltip=["model", "point", "readout", alt.Tooltip("error_pct:Q", format=".1f"),
                     alt.Tooltip("error_low:Q", format=".1f"), alt.Tooltip("error_high:Q", format=".1f")])
        ui.show_chart((band + line).properties(height=360), df, file_name="readout.csv",
                      caption=f"Top-1 error on {int(df['images'].iloc[0])} test images (seed {s.seed}), band: the 95 % "
                      "Wilson interval. The head: every later block deleted (its skip path kept), then the net's own "
                      f"head. The probe: a ridge classifier on the global-average-pooled features, fitted on "
                      f"{int(df['train_images'].iloc[0]):,} training images. The test images pass through the net a chunk at "
                      "a time, in one pass that serves the readouts, input recovery and CKA alike. "
                      + " ".join(ro["readout_findings"]["sentence"]), key="readout")

    st.subheader("Iterative refinement: does each block step downhill?")
    rf = ui.results("refinement", names, s)
    d = rf.get("refinement")
    if d is not None and len(d):
        chart = ui.depth_chart(d, "cosine", "cos(change, −∂loss/∂output)", log=False, height=300)
        ui.show_chart(chart, d, file_name="refinement.csv",
                      caption=f"Mean over {int(d['images'].iloc[0])} test images of the cosine between what a block adds "
                      "to its skip path (F(h) in a residual net, y − s(h) in a plain net) and −∂loss/∂y at its output "
                      "(Jastrzebski et al. 2018); float32, eval-mode BN. Above 0: the block moves its features "
                      "downhill, as a step of gradient descent would. " + " ".join(rf["refinement_findings"]["sentence"]),
                      key="refinement")

    st.subheader("How alike are the blocks' representations? (CKA)")
    ck = ui.results("cka", names, s)
    c = ck.get("cka")
    if c is not None and len(c):
        scale = alt.Scale(domain=[0, 1], scheme="viridis")  # one colour scale for every model
        per_row = 2
        models = list(dict.fromkeys(c["model"]))
        for i in range(0, len(models), per_row):
            for col, m in zip(st.columns(per_row), models[i:i + per_row]):
                with col:
                    g = c[c["model"] == m]
                    heat = alt.Chart(g).mark_rect().encode(
                        x=alt.X("index_a:O", title="point (-1 = the stem)"),
                        y=alt.Y("index_b:O", title="point", sort="descending"),
                        color=alt.Color("cka:Q", scale=scale, title="CKA",
                                        legend=alt.Legend(orient="bottom", gradientLength=240)),
                        tooltip=["point_a", "point_b", alt.Tooltip("cka:Q", format=".3f"),
                                 alt.Tooltip("cka_biased:Q", format=".3f")]).properties(title=ui.escape_md(m), height=320)
                    ui.show_chart(heat, g, file_name=f"cka_{m.replace(':', '_')}.csv",
                                  caption=f"{m}: linear CKA, every pair of points.", key=f"cka_{m}")
        st.caption(f"Linear CKA between every pair of points (the stem's output and each block's output, flattened), "
                   f"the unbiased HSIC of Song et al. averaged over minibatches of {int(c['batch'].iloc[0])} test images "
                   f"(Nguyen, Raghu & Kornblith 2021), {int(c['images'].iloc[0])} images in all; one colour scale from 0 "
                   "to 1 for every model. " + " ".join(ck["cka_findings"]["sentence"]))

    st.subheader("How much of the input does each block keep?")
    rc = ui.results("recovery", names, s)
    r = rc.get("input_recovery")
    if r is not None and len(r):
        base = alt.Chart(r).encode(x=alt.X("point_index:Q", title="features after block (-1 = the stem)",
                                           axis=alt.Axis(tickMinStep=1, format="d")), color=ui.color(r["model"]))
        chart = (base.mark_area(opacity=0.15).encode(y=alt.Y("r2_low:Q", title="R² of the restored image"),
                                                     y2="r2_high:Q")
                 + base.mark_line(point=True).encode(y=alt.Y("r2:Q", title="R² of the restored image"), tooltip=["model", "point", alt.Tooltip("r2:Q", format=".3f"),
                                                                        "dims"])).properties(height=320)
        ui.show_chart(chart, r, file_name="input_recovery.csv",
                      caption="R² of a ridge regression from each point's features (average-pooled to 4 x 4 positions per "
                      f"channel) to the 3,072 values of the normalised input image, fitted on "
                      f"{int(r['train_images'].iloc[0]):,} training images and scored on {int(r['images'].iloc[0])} test "
                      "images; band: a bootstrap 95 % interval. A linear readout is a lower bound on what the features "
                      "hold; no deterministic block can add information about its input (the data-processing "
                      "inequality). " + " ".join(rc["recovery_findings"]["sentence"]), key="recovery")
