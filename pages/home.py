"""Home: what the lab shows, the zoo, the device and data, the degradation figure, your own checkpoint."""

import altair as alt
import streamlit as st

import ui

# An uploaded checkpoint is registered before the sidebar is drawn, so that it is there (and chosen) on this run.
upload_done, upload_error = ui.take_upload()
s = ui.page()
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
    ("Is the residual net's minimum flatter? The Hessian's top eigenvalues, trace and spectrum.",
     "pages/8_Curvature.py", "Curvature"),
    ("Every claim of the notes, judged on the chosen models by a fixed rule: holds, does not hold, depends or untested.",
     "pages/9_Claims.py", "Claims"),
]
for text, target, label in claims:
    c1, c2 = st.columns([5, 1])
    c1.markdown(f"- {text}")
    if target != "app.py":
        with c2:
            ui.link(target, label)

left, right = st.columns(2)
dev = ui.device_name()
left.metric("Device in use", "cuda" if s.device == "cuda" else "cpu", help=dev)
left.caption(dev)
found, sentence = ui.data_status()
right.metric("CIFAR-10", "found" if found else "not found")
right.caption(sentence)

st.subheader("The model zoo")
zoo = ui.zoo_table()
if zoo.empty:
    st.info("No checkpoints in pretrained/: train one with `python -m analysis train resnet20`.")
else:
    ui.table(zoo)
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
        strokeDash=ui.dash("curve:N", "curve", domain=["train", "test"], styles=[[4, 3], [1, 0]]),
        tooltip=["model", "epoch", "curve", alt.Tooltip("error_pct:Q", format=".2f")],
    ).properties(height=380)
    ui.show_chart(chart, long, file_name="training_curves.csv",
                  caption="Dashed: training error on the augmented batches of each epoch (train-mode BN), solid: error on "
                  "the 10,000 test images after each epoch (eval mode). The y-axis is clipped at 40 %. "
                  + ui.JPEG_NOTE, key="curves")
    note = ui.schedule_note(list(names))
    if note:
        st.info(note)

st.subheader("Bring your own checkpoint")
st.markdown(
    "Upload a CIFAR 6n+2 ResNet as you have it: `.safetensors`, or a `torch.save` file (`.pt`, `.pth`, `.th`, "
    "`.ckpt`), read by a restricted unpickler that keeps tensors and plain values only: no code in a file ever "
    "runs, and other objects saved beside the weights (an argparse Namespace, numpy scalars) are ignored. ResLens recognises its "
    "own key names, akamaster/pytorch_resnet_cifar10's (`conv1`, `layer1.0.conv1`, …, `linear`) and torchvision-style "
    "CIFAR ResNets' (`fc`, `downsample`), unwraps `state_dict` / `module.` containers, and says which layout it "
    "matched. An upload lives in this browser session only (at most "
    f"{ui.MAX_UPLOADS}); **Import** keeps it for good, like `python -m analysis import FILE --name NAME`.")
c1, c2 = st.columns(2)
kind = c1.radio("It is a", list(ui.KIND_CHOICES), horizontal=True,
                key="upload_kind", help="Option-A plain and residual nets have identical tensors: say which, unless "
                                        "the file's metadata does (ResLens's files do).")
norm_choice = c2.selectbox("It was trained on inputs normalised with", list(ui.NORMALIZATION_CHOICES), key="upload_norm",
                           help="akamaster's nets used ImageNet's mean and std (the akamaster layout's default); "
                                "ResLens's own use CIFAR-10's.")
if ui.NORMALIZATION_CHOICES[norm_choice] == "custom":
    c2.text_input("mean/std per channel", "0.5,0.5,0.5/0.25,0.25,0.25", key="upload_norm_custom")
st.file_uploader("Checkpoint", type=["safetensors", "pt", "pth", "th", "ckpt"], key=ui.upload_key(),
                 help=f"At most {ui.MAX_UPLOAD_MB} MB per file, and {ui.MAX_UPLOAD_MB} MB of uploads per session.")
if upload_error:
    st.error(ui.escape_md(upload_error))
if upload_done:
    name, info = upload_done
    u = ui.uploads().get(name)
    err = ui.friendly(ui.cached_error, name, ui.DEFAULT_SAMPLES, 0, s.device, s.root) if ui.data_found() else None
    st.success(
        f"{ui.escape_md(name)} from {ui.escape_md(u['file_name'] if u else '')}: layout **{info['layout']}**, {info['depth']} layers, "
        f"{'residual' if info['residual'] else 'plain'} (decided by {info['residual_source']}), unit {info['unit']}, "
        f"option {info['option']}, {info['params']:,} parameters, inputs normalised with {info['normalization']} "
        f"({info['normalization_source']})."
        + (f" **{err:.2f} % error on {ui.DEFAULT_SAMPLES:,} test images** (seed 0): a wrong plain/residual or normalisation choice "
           "shows here at once." if err is not None else "")
        + " It is chosen in the sidebar and stays there on every page.")
    warning = ui.upload_warning(name, err)
    if warning:
        st.warning(ui.escape_md(warning))
    for note in info["notes"]:
        st.caption("Note: " + ui.escape_md(note))
if ui.uploads():
    st.markdown("**Uploads in this session:** " + ", ".join(ui.escape_md(n) for n in ui.uploads()))
    i1, i2, i3 = st.columns([2, 1, 1])
    target = i1.selectbox("Upload to import", list(ui.uploads()), key="import_which")
    new_name = i1.text_input("Name to import it under", ui.uploads()[target]["file_name"].rsplit(".", 1)[0][:40],
                             key="import_name", help="Letters, digits, '_', '.' or '-'; not a shipped model's name.")
    if i2.button("Import", key="import_go", help="Writes a ResLens safetensors file and a card with its measured test "
                                                "error; it survives reloads and restarts."):
        with st.spinner("Importing and measuring its test error…"):
            card = ui.friendly(ui.import_upload, target, new_name)
        if card is not None:
            st.success(f"Imported as {ui.escape_md(new_name)}: {card['test_error_pct']:.2f} % error on {card['test_images']:,} test "
                       f"images. It is now in the sidebar of every session, after restarts too.")
            if card.get("warning"):
                st.warning(ui.escape_md(card["warning"]))
    if i3.button("Forget the uploads", key="forget_uploads"):
        ui.forget_uploads()
        st.rerun()
