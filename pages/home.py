"""Home: what the lab shows, the zoo, the device and data, the degradation figure, your own checkpoint."""

import altair as alt
import streamlit as st
import torch

import ui
from analysis.zoo import CheckpointError

s = ui.page("Home", "🔭")
st.title("ResLens: why residual networks train")
st.markdown(
    "ResLens puts CIFAR-10 **plain** nets (no shortcuts) beside **residual** nets of the same depth and the "
    "same parameters (the 6n+2 family of He et al. 2015, option-A shortcuts) and lets you check the claims "
    "about them on real trained weights, including your own:")
claims = [
    ("Degradation is not overfitting: the deeper plain net has the higher *training* error.", "app.py",
     "the training curves below"),
    ("Residual responses are small: each residual branch is small next to its input, and residual layers "
     "respond less than plain ones (how much depends on how a layer's std is read: both readings are shown).",
     "pages/1_Responses.py", "Responses"),
    ("With BN, plain nets do not simply lose their gradients: gradient norms stay healthy through depth "
     "(compare plain56 with the 110-layer plain net that never trained).",
     "pages/2_Gradient_flow.py", "Gradient flow"),
    ("A ResNet behaves like an ensemble of relatively shallow paths: deleting a block barely hurts it, while "
     "a plain net collapses (Veit et al. 2016).", "pages/3_Block_deletion.py", "Block deletion"),
    ("What the nets look at, and how much of a decision passes through each block.", "pages/4_Attributions.py",
     "Attributions"),
    ("How the loss surface around the trained weights differs.", "pages/5_Loss_landscape.py", "Loss landscape"),
    ("Identity shortcuts and pre-activation (He et al. 2016): eight trained variants of the unit and the shortcut "
     "side by side, with the paper's numbers.", "pages/7_Identity_mappings.py", "Identity mappings"),
]
for text, target, label in claims:
    c1, c2 = st.columns([5, 1])
    c1.markdown(f"- {text}")
    if target != "app.py":
        with c2:
            ui.link(target, label)

left, right = st.columns(2)
dev = f"GPU: {torch.cuda.get_device_name(0)}" if torch.cuda.is_available() else "CPU (no GPU found)"
left.metric("Device in use", "cuda" if s.device == "cuda" else "cpu", help=dev)
left.caption(dev)
found, sentence = ui.D.data_status()
right.metric("CIFAR-10", "found" if found else "not found")
right.caption(sentence)

st.subheader("The model zoo")
zoo = ui.zoo_table()
if zoo.empty:
    st.info("No checkpoints in pretrained/: train one with `python -m analysis train resnet20`.")
else:
    st.dataframe(zoo, hide_index=True, width="stretch")
    st.caption("Trained by `python -m analysis train` (the command is in each model card). " + ui.JPEG_NOTE)

st.subheader("Degradation: training curves of plain and residual nets")
names = tuple(n for n in (s.models or tuple(ui.available())) if n in ui.available())
cur = ui.results("training", names, s).get("training") if names else None
if cur is None or cur.empty:
    st.info("Choose zoo models in the sidebar to see their training curves.")
else:
    long = cur.melt(id_vars=["model", "residual", "epoch"], value_vars=["train_error_pct", "test_error_pct"],
                    var_name="curve", value_name="error_pct")
    long["curve"] = long["curve"].map({"train_error_pct": "train", "test_error_pct": "test"})
    chart = alt.Chart(long).mark_line().encode(
        x=alt.X("epoch:Q", title="epoch"),
        y=alt.Y("error_pct:Q", title="error (%)", scale=alt.Scale(domain=[0, 40], clamp=True)),
        color=ui.color(long["model"]),
        strokeDash=alt.StrokeDash("curve:N", title="curve", scale=alt.Scale(domain=["train", "test"], range=[[4, 3], [1, 0]])),
        tooltip=["model", "epoch", "curve", alt.Tooltip("error_pct:Q", format=".2f")],
    ).properties(height=380)
    ui.show_chart(chart, long, "training_curves.csv",
                  "Dashed: training error on the augmented batches of each epoch (train-mode BN), solid: error on "
                  "the 10,000 test images after each epoch (eval mode). The y-axis is clipped at 40 %. "
                  + ui.JPEG_NOTE, "curves")

st.subheader("Bring your own checkpoint")
st.markdown("Upload a `.safetensors` state dict of a 6n+2 CIFAR net with ResLens' module names "
            "(`stem.conv`, `stage1.block0.conv1`, …, `fc`); the depth is read from its tensors. Files are never "
            "unpickled.")
kind = st.radio("It is a", ["read from the file's metadata", "plain net", "residual net"], horizontal=True,
                key="upload_kind")
up = st.file_uploader("Checkpoint (.safetensors)", type=["safetensors"], key="upload_ckpt")
if up is not None:
    residual = {"plain net": False, "residual net": True}.get(kind)
    try:
        name, info = ui.register_upload(up.name, up.getvalue(), residual)
        st.success(f"{name}: {info['depth']} layers, {'residual' if info['residual'] else 'plain'}, option "
                   f"{info['option']}, {info['params']:,} parameters. Pick it in the sidebar on any page.")
    except CheckpointError as e:
        st.error(f"This checkpoint cannot be used: {e}")
