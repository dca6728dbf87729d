"""Run every analysis for the chosen models and download one ZIP of CSVs plus the manifest."""

import time

import streamlit as st

import ui
from analysis.report import ANALYSES, ReportConfig, compute

s = ui.page("Reports", "📦")
st.title("Reports")
st.markdown("Every analysis of the other pages for the chosen models, as CSV files in one ZIP with a "
            "`manifest.json` (versions, device, seed, sample size, data source, wall time of each analysis). "
            "The CLI `python -m analysis report` writes the same files.")
names = ui.need_models(s)
chosen = st.multiselect("Analyses", list(ANALYSES), default=["responses", "deletion", "training"], key="analyses")
if names and chosen:
    needs_data = any(a != "training" for a in chosen)
    if needs_data and not ui.need_data():
        chosen = ["training"]
    if st.button("Run the report", key="run_report", type="primary"):
        cfg = ReportConfig(samples=s.samples, seed=s.seed, deletion_ks=(0, 2, 4, 6, 8), deletion_trials=3,
                           reorder_trials=5, path_samples=3, attr_images=2, landscape_samples=min(256, s.samples),
                           landscape_1d_steps=11, landscape_2d_steps=5)
        bar = ui.Progress("Running…")
        t0 = time.time()
        extra = {n: ui.get_model(n, s.device) for n in names}
        out = ui.friendly(compute, names, cfg, data=None, device=s.device, only=chosen, progress=bar, models=extra)
        bar.done()
        if out is not None:
            tables, manifest = out
            manifest["total_wall_time_s"] = round(time.time() - t0, 1)
            st.session_state["report"] = (ui.zip_tables(tables, manifest), {k: len(v) for k, v in tables.items()})
    if "report" in st.session_state:
        blob, counts = st.session_state["report"]
        st.success("Report ready: " + ", ".join(f"{k}.csv ({n} rows)" for k, n in counts.items()))
        st.download_button("Download the report (ZIP)", blob, "reslens_report.zip", "application/zip", key="dl_zip")
