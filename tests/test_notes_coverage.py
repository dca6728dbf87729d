"""docs/notes-coverage.md maps every statement of the study notes to a claim or a page section that exists, or says
why it cannot be measured; its counts are its own."""

import re

from analysis.claims import CLAIMS
from conftest import ROOT

DOC = ROOT / "docs" / "notes-coverage.md"


def _rows():
    return [l for l in DOC.read_text().splitlines() if re.match(r"\| \d{3}\.\d+ \|", l)]


def test_every_claim_and_page_section_it_names_exists():
    ids = {c.id for c in CLAIMS}
    named = 0
    for row in _rows():
        where = row.split("|")[3]
        for cid in re.findall(r"Claim (\d+)", where):
            assert int(cid) in ids, f"{row.split('|')[1].strip()}: there is no claim {cid}"
            named += 1
        for page, section in re.findall(r"`(pages/[^`]+\.py)` § ([^;|]+)", where):
            path = ROOT / page
            assert path.is_file(), f"{page} does not exist"
            heads = re.findall(r"st\.(?:title|subheader)\(\s*\"([^\"]+)\"", path.read_text())
            assert any(h.startswith(section.strip()) for h in heads), f"{page} has no section '{section.strip()}'"
            named += 1
    assert named > 50


def test_the_counts_are_the_tables_own_and_every_row_has_a_status():
    counts = {"mapped": 0, "not measurable": 0, "open": 0}
    for row in _rows():
        status = row.rstrip().rstrip("|").split("|")[-1].strip()
        kind = next((k for k in counts if status.startswith(k)), None)
        assert kind, f"no status in {row}"
        if kind != "mapped":
            assert ":" in status, f"{row.split('|')[1].strip()}: say why"  # the reason, or what is missing
        else:
            assert re.search(r"Claim \d+|§", row.split("|")[3]), row
        counts[kind] += 1
    m = re.search(r"Counts: (\d+) mapped, (\d+) not measurable here, (\d+) open \((\d+) statements", DOC.read_text())
    assert m and [int(v) for v in m.groups()] == [counts["mapped"], counts["not measurable"], counts["open"],
                                                  sum(counts.values())]
    # every note is covered
    assert {r.split("|")[1].strip()[:3] for r in _rows()} == {"000", "001", "003", "004"}
