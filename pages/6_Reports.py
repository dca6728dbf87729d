"""Run any registered analysis for the chosen models and download one ZIP of CSVs plus the manifest."""

import time

import streamlit as st

import ui

s = ui.page()
st.title("Reports")
st.markdown("Any analysis of the other pages for the chosen models, as CSV files in one ZIP with a "
            "`manifest.json` (versions, device, seed, sample size, data source, parameters and wall time of each "
            "analysis). Here each analysis runs with its light settings; the CLI `python -m analysis report` writes "
            "the same files with the full ones.")
registry = ui.analyses()
names = ui.need_models(s)
chosen = ui.bound(st.multiselect, "Analyses", list(registry), default=[a for a in ("responses", "deletion_single", "training")
                                                                if a in registry],
                        format_func=lambda a: f"{a}: {registry[a].title}", key="analyses")
with_claims = ui.bound(st.toggle, "Judge the claims too (claims.csv and claims.md, light settings, without the curvature claim)",
                        key="report_claims")
if names and (chosen or with_claims):
    if (with_claims or any(registry[a].needs_data for a in chosen)) and not ui.need_data():
        chosen, with_claims = [a for a in chosen if not registry[a].needs_data], False
    if (chosen or with_claims) and st.button("Run the report", key="run_report", type="primary"):
        bar = ui.Progress("Running…")
        t0 = time.time()
        out = ui.run_report(names, s, chosen, claims=with_claims, progress=bar)
        bar.done()
        if out is not None:
            tables, manifest, docs = out
            manifest["total_wall_time_s"] = round(time.time() - t0, 1)
            st.session_state["report"] = (ui.zip_tables(tables, manifest, extra=docs),
                                          {**{f"{k}.csv": f"{len(v)} rows" for k, v in tables.items()},
                                           **{k: "text" for k in docs}})
    if "report" in st.session_state:
        blob, counts = st.session_state["report"]
        st.success("Report ready: " + ", ".join(f"{k} ({n})" for k, n in counts.items()))
        st.download_button("Download the report (ZIP)", blob, "reslens_report.zip", "application/zip", key="dl_zip")
