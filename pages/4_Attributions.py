"""Captum attributions, plain and residual side by side; conductance per block."""

import altair as alt
import pandas as pd
import streamlit as st

import ui

s = ui.page()
st.title("Attributions")
st.markdown("Which pixels drive each net's decision (Captum), and how much of it flows through each block's "
            "residual branch. Pick a test image or upload your own.")
names = ui.need_models(s)
source = ui.bound(st.radio, "Image", ["test image", "upload"], horizontal=True, key="img_source")
img = label = key = None
if source == "test image":
    if ui.need_data():
        c1, c2 = st.columns(2)
        cls = ui.bound(c1.selectbox, "Class", ["any"] + list(ui.CLASSES), key="img_class")
        size = ui.friendly(ui.test_pool, cls)
        if size:
            pos = int(ui.bound(c2.number_input, f"Image number (0–{size - 1} in this class)", 0, size - 1, value=0,
                               key="img_index"))
            img, label, key = ui.test_image(cls, pos)
else:
    up = st.file_uploader("An image (any format Pillow reads; it is converted to 32x32 RGB)", key="img_upload")
    if up is not None:
        img, notes, key, error = ui.read_image(up.getvalue())
        if error:
            st.error(ui.escape_md(error))
        else:
            st.info(ui.escape_md("Converted: " + "; ".join(notes) + "."))
methods = ui.bound(st.multiselect, "Methods", list(ui.choices("attributions", "methods")),
                   default=list(ui.defaults("attributions")["methods"]), key="methods")
if img is not None and names and methods:
    x = ui.normalize(img)
    np_img = img.permute(1, 2, 0).numpy()
    classes = ui.CLASSES
    st.image(ui.image_png(np_img), caption=f"{key}" + (f" · label: {classes[label]}" if label is not None else ""))
    image = dict(image_key=key, _image=x, _label=label)
    res = ui.results("attributions", names, s, methods=tuple(methods), gradcam=True, maps=True, **image)
    cols = st.columns(len(names))
    for col, n in zip(cols, names):
        if "attributions" not in res or n not in set(res["attributions"]["model"]):
            continue
        df = res["attributions"][res["attributions"]["model"] == n]
        with col:
            st.markdown(f"**{ui.escape_md(n)}** predicts **{classes[int(df['predicted'].iloc[0])]}** "
                        f"(p = {df['prob'].iloc[0]:.2f})")
            for m in methods:
                st.image(ui.heat_png(np_img, ui.pixel_map(res["attribution_maps"], model=n, method=m)),
                         caption=f"{m} (red +, blue −)")
            for stage in ("stage1", "stage2", "stage3"):
                st.image(ui.heat_png(np_img, ui.pixel_map(res["gradcam"], model=n, stage=stage)),
                         caption=f"Grad-CAM at the end of {stage}")
    if "attributions" in res:
        df = res["attributions"]
        chart = alt.Chart(df).mark_bar().encode(
            x=alt.X("method:N", title=None, axis=alt.Axis(labelLimit=0, labelAngle=-20)), xOffset="model:N",
            y=alt.Y("infidelity:Q", title="infidelity (lower = better)", axis=alt.Axis(titleLimit=0)),
            color=ui.color(df["model"]), tooltip=["model", "method", alt.Tooltip("infidelity:Q", format=".4f")]).properties(height=280)
        ui.show_chart(chart, df, file_name="attributions.csv",
                      caption="Captum's infidelity of each method's attribution (Gaussian perturbations, std 0.05 in normalised "
                      "units, 16 draws, attributions rescaled optimally): how well attribution·perturbation predicts the "
                      "change of the target logit. Target = the predicted class; baseline = the mean image.", key="infid")
        st.download_button("Download the heat maps (CSV)", res["attribution_maps"].to_csv(index=False).encode(),
                           "attribution_maps.csv", key="dl_maps")
    st.subheader("Conductance per block")
    cres = ui.results("conductance", names, s, **image)
    dc = cres.get("conductance")
    if dc is not None:
        chart = alt.Chart(dc).mark_line(point=True).encode(
            x=alt.X("block_index:Q", title="block", axis=alt.Axis(tickMinStep=1, format="d")),
            y=alt.Y("branch_share:Q", title="share of the logit change via the branch", axis=alt.Axis(titleLimit=0)),
            color=ui.color(dc["model"]),
            tooltip=["model", "block", alt.Tooltip("conductance:Q", format=".3f"), alt.Tooltip("logit_change:Q", format=".3f"),
                     alt.Tooltip("conductance_output:Q", format=".3f")]).properties(height=300)
        ui.show_chart(chart, dc, file_name="conductance.csv",
                      caption="Captum LayerConductance (20 steps from the mean image) summed over each block's branch output F(x), "
                      "divided by the change of the predicted class's logit. A plain block's branch is the only route "
                      "(share ≈ 1); in a residual net the rest of the signal goes along the skip path. The share is a "
                      "signed ratio, not a fraction of a whole: above 1 when the skip path's part is negative (the branch "
                      "adds more than the whole change and the skip path takes some back), below 0 when the branch "
                      "works against the change. " + " ".join(cres.get("conductance_findings",
                                                                        pd.DataFrame(columns=["sentence"]))["sentence"]),
                      key="cond")
