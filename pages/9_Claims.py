"""Claims: every claim of the notes, measured on the chosen models and judged by a fixed rule."""

import streamlit as st

import ui

HOLDS, FAILS, DEPENDS, UNTESTED = ui.verdicts()
COLOURS = {HOLDS: "green", FAILS: "red", DEPENDS: "orange", UNTESTED: "gray"}
CLAIMS = ui.claims()

s = ui.page()
st.title("Claims: which of the notes' claims hold on these nets")
st.markdown(
    "Each claim of the study notes is stated in one sentence, measured on the models chosen in the sidebar, and "
    "judged by a fixed rule written under it: **holds**, **does not hold**, **depends** (the numbers say on what) or "
    "**untested** (the chosen models cannot test it; it says what is missing). No verdict is written by hand: each "
    "is computed from the numbers shown, by code with its own tests. Each links to the page whose chart shows the "
    "evidence.")
names = ui.need_models(s)
c1, c2 = st.columns(2)
run = c1.toggle("Judge the claims on the chosen models", key="claims_run",
                help="Runs every measurement the claims need (cached afterwards): a few minutes on a CPU.")
heavy = c2.toggle(f"Include the curvature claim ({CLAIMS[-1].id})", key="claims_heavy",
                  help="The top Hessian eigenvalue of each plain and residual net: minutes more on a CPU.")

table, evidence = None, {}
if names and run:
    if not ui.need_data():
        st.stop()
    bar = ui.Progress("Judging the claims…")
    out = ui.judge_claims(names, s, heavy, progress=bar)
    bar.done()
    if out is not None:
        table, evidence = out
        counts = table["verdict"].value_counts()
        st.markdown(f"On {ui.escape_md(', '.join(names))} ({s.samples} test images, seed {s.seed}): " + ", ".join(
            f":{COLOURS[v]}[**{counts.get(v, 0)} {v}**]" for v in (HOLDS, FAILS, DEPENDS, UNTESTED)) + ".")
        d1, d2 = st.columns(2)
        d1.download_button("Download claims.csv", table.to_csv(index=False).encode(), "claims.csv", "text/csv",
                           key="dl_claims_csv")
        d2.download_button("Download claims.md (a report to hand in)", ui.claims_markdown(table).encode(), "claims.md",
                           "text/markdown", key="dl_claims_md")
        untestable = table[table["verdict"] == UNTESTED]
        if len(untestable):
            st.info("These models cannot test " + "; ".join(f"claim {r.id} ({r.numbers})" for r in untestable.itertuples())
                    + ".")

rows = table.set_index("id") if table is not None else None
for c in CLAIMS:
    with st.container(border=True):
        if rows is not None:
            r = rows.loc[c.id]
            st.markdown(f"#### {c.id}. {c.title}: :{COLOURS[r['verdict']]}[{r['verdict']}]")
        else:
            st.markdown(f"#### {c.id}. {c.title}")
        st.markdown(f"**Claim.** {c.statement}")
        if rows is not None:
            st.markdown(f"**Measured.** {ui.escape_md(rows.loc[c.id, 'numbers'])}.")
        st.caption(f"How: {c.measurement} Rule: {c.rule}")
        ui.link(c.page, f"The evidence: {c.chart}")
        ev = evidence.get(c.id)
        if ev is not None and len(ev):
            with st.expander("The numbers the verdict was computed from"):
                st.dataframe(ev, hide_index=True, width="stretch")
                st.download_button("Download CSV", ev.to_csv(index=False).encode(), f"claim_{c.id:02d}_evidence.csv",
                                   "text/csv", key=f"dl_claim_{c.id}")
if not run:
    st.info("Switch on the judgement above to measure every claim on the chosen models.")
