"""Run any registered analysis for the chosen models and download one ZIP of CSVs plus the manifest."""

import time

import streamlit as st

import ui
from analysis.engine.registry import load_all
from analysis.engine.report import compute, documents

s = ui.page("Reports", "📦")
st.title("Reports")
st.markdown("Any analysis of the other pages for the chosen models, as CSV files in one ZIP with a "
            "`manifest.json` (versions, device, seed, sample size, data source, parameters and wall time of each "
            "analysis). Here each analysis runs with its light settings; the CLI `python -m analysis report` writes "
            "the same files with the full ones.")
registry = load_all()
names = ui.need_models(s)
chosen = st.multiselect("Analyses", list(registry), default=[a for a in ("responses", "deletion_single", "training")
                                                                if a in registry],
                        format_func=lambda a: f"{a}: {registry[a].title}", key="analyses")
if names and chosen:
    if any(registry[a].needs_data for a in chosen) and not ui.need_data():
        chosen = [a for a in chosen if not registry[a].needs_data]
    if chosen and st.button("Run the report", key="run_report", type="primary"):
        bar = ui.Progress("Running…")
        t0 = time.time()
        extra = {n: ui.get_model(n, s.device) for n in names}
        out = ui.friendly(compute, names, samples=s.samples, seed=s.seed, device=s.device, only=chosen, quick=True,
                          progress=bar, models=extra)
        bar.done()
        if out is not None:
            tables, manifest = out
            manifest["total_wall_time_s"] = round(time.time() - t0, 1)
            docs = documents(tables, chosen)  # e.g. claims.md beside claims.csv
            st.session_state["report"] = (ui.zip_tables(tables, manifest, extra=docs),
                                          {**{f"{k}.csv": f"{len(v)} rows" for k, v in tables.items()},
                                           **{k: "text" for k in docs}})
    if "report" in st.session_state:
        blob, counts = st.session_state["report"]
        st.success("Report ready: " + ", ".join(f"{k} ({n})" for k, n in counts.items()))
        st.download_button("Download the report (ZIP)", blob, "reslens_report.zip", "application/zip", key="dl_zip")
