"""Claims: every claim of the notes, judged by a fixed rule: first on the shipped zoo (docs/claims.csv), then, on
request, on the chosen models."""

import streamlit as st

import ui

HOLDS, FAILS, DEPENDS, UNTESTED = ui.verdicts()
COLOURS = {HOLDS: "green", FAILS: "red", DEPENDS: "orange", UNTESTED: "gray"}
CLAIMS = ui.claims()

s = ui.page()
st.title("Claims: which of the notes' claims hold on these nets")
names = ui.need_models(s)
shipped = ui.shipped_claims()
c1, c2 = st.columns(2)
run = ui.bound(c1.toggle, "Recompute the verdicts on the models chosen in the sidebar", key="claims_run",
               help="Runs every measurement the claims need on the chosen models (each kept afterwards).")
heavy = ui.bound(c2.toggle, "Include the curvature claim (" + ", ".join(str(i) for i in ui.heavy_claims()) + ")", key="claims_heavy",
                 help="The top Hessian eigenvalue of each plain and residual net: minutes more on a CPU.")
c1.caption("Off: the verdicts on the shipped zoo below, as `docs/claims.csv` records them. On: every measurement "
           "the claims need, on the chosen models: a few minutes on a CPU the first time.")

table, evidence, label = None, {}, ""
if run and names:
    if not ui.need_data():
        st.stop()
    bar = ui.Progress("Judging the claims…")
    out = ui.judge_claims(names, s, heavy, progress=bar)
    bar.done()
    if out is not None:
        table, evidence = out
        label = f"On {ui.escape_md(', '.join(names))} ({s.samples} test images per measurement, seed {s.seed}), just now."
elif shipped is not None:
    table, man = shipped
    label = (f"On the shipped zoo ({ui.escape_md(', '.join(man.get('models', [])))}; {man.get('samples')} test images per "
             f"measurement, seed {man.get('seed')}), as `docs/claims.csv` records them: made by "
             f"`{man.get('command', 'python -m analysis claims')}` on {man.get('date', 'an earlier day')} "
             f"({man.get('total_wall_time_s', 0):,.0f} s on {man.get('device', 'cpu')}).")
if table is not None:
    counts = table["verdict"].value_counts()
    st.markdown(f"**{ui.verdict_line(table)}** " + label)
    st.markdown(" · ".join(f":{COLOURS[v]}[**{counts.get(v, 0)} {v}**]" for v in (HOLDS, FAILS, DEPENDS, UNTESTED)))
    d1, d2 = st.columns(2)
    d1.download_button("Download claims.csv", table.to_csv(index=False).encode(), "claims.csv", "text/csv",
                       key="dl_claims_csv")
    d2.download_button("Download claims.md (a report to hand in)", ui.claims_markdown(table).encode(), "claims.md",
                       "text/markdown", key="dl_claims_md")
    untestable = table[table["verdict"] == UNTESTED]
    if len(untestable):
        st.info("These models cannot test " + "; ".join(f"claim {r.id} ({r.numbers})" for r in untestable.itertuples())
                + ".")
elif not run:
    st.info("No shipped verdicts were found (docs/claims.csv); switch on the judgement above to measure them.")
st.markdown(
    "Each claim of the study notes is stated in one sentence, measured, and judged by a fixed rule written under it: "
    "**holds**, **does not hold**, **depends** (the numbers say on what) or **untested** (the models cannot test it; "
    "it says what is missing). No verdict is written by hand: each is computed from the numbers shown, by code with "
    "its own tests. Each links to the page whose chart shows the evidence.")

rows = table.set_index("id") if table is not None else None
for c in CLAIMS:
    with st.container(border=True):
        r = rows.loc[c.id] if rows is not None and c.id in rows.index else None
        if r is not None:
            st.markdown(f"#### {c.id}. {c.title}: :{COLOURS.get(r['verdict'], 'gray')}[{r['verdict']}]")
        else:
            st.markdown(f"#### {c.id}. {c.title}")
        st.markdown(f"**Claim.** {c.statement}")
        if r is not None:
            st.markdown(f"**Measured.** {ui.escape_md(r['numbers'])}.")
        st.caption(f"How: {c.measurement} Rule: {c.rule}")
        ui.link(c.page, f"The evidence: {c.chart}")
        ev = evidence.get(c.id)
        if ev is not None and len(ev):
            with st.expander("The numbers the verdict was computed from"):
                ui.table(ev)
                st.download_button("Download CSV", ev.to_csv(index=False).encode(), f"claim_{c.id:02d}_evidence.csv",
                                   "text/csv", key=f"dl_claim_{c.id}")
