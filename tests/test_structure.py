"""The layout shows the architecture, and keeps to it: the library's layers import downwards only and never in a
circle, no page imports the library, and no module of the library or the dashboard grows past 500 lines."""

import ast
from pathlib import Path

import pytest

from analysis.engine.store import PACKAGE, _read_source, imports_of
from conftest import ROOT

# The layers, bottom up: a module may import its own layer and the ones below, never one above.
LAYERS = ("core", "engine", "analyses", "claims", "cli")


def _modules() -> list[str]:
    out = []
    for p in PACKAGE.rglob("*.py"):
        parts = p.relative_to(PACKAGE).with_suffix("").parts
        out.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return sorted(m for m in out if m)


def _graph() -> dict[str, set[str]]:
    g = {}
    for m in _modules():
        # a submodule importing its own package ("from . import rules" loads claims/__init__) is not an edge
        g[m] = {i for i in imports_of(m, _read_source(m)) if i != m and not m.startswith(i + ".")}
    return g


def test_the_library_imports_in_no_circle():
    g = _graph()
    state: dict[str, int] = {}
    path: list[str] = []

    def visit(m):
        state[m] = 1
        path.append(m)
        for n in sorted(g.get(m, ())):
            if state.get(n) == 1:
                pytest.fail("import cycle: " + " -> ".join(path[path.index(n):] + [n]))
            if n not in state:
                visit(n)
        path.pop()
        state[m] = 2

    for m in g:
        if m not in state:
            visit(m)


def test_each_layer_imports_only_its_own_and_those_below():
    for m, deps in _graph().items():
        layer = m.split(".")[0]
        if layer not in LAYERS:
            continue
        for d in deps:
            dl = d.split(".")[0]
            if dl in LAYERS:
                assert LAYERS.index(dl) <= LAYERS.index(layer), f"{m} (layer {layer}) imports {d} (layer {dl})"


def test_the_analyses_are_found_in_their_folder():
    from analysis.engine.registry import load_all

    modules = {a.module for a in load_all().values()}
    files = {f"analysis.analyses.{p.stem}" for p in (PACKAGE / "analyses").glob("*.py") if not p.stem.startswith("_")}
    assert modules == files  # every module there declares an analysis, and every analysis lives there


def _imports(path: Path) -> set[str]:
    out = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            out.add(node.module)
    return out


@pytest.mark.parametrize("page", sorted((ROOT / "pages").glob("*.py")), ids=lambda p: p.name)
def test_no_page_imports_the_library(page):
    bad = sorted(i for i in _imports(page) if i == "analysis" or i.startswith("analysis.") or i == "torch")
    assert not bad, f"{page.name} imports {bad}: pages read widgets, call ui and draw"


@pytest.mark.parametrize("path", sorted(list(PACKAGE.rglob("*.py")) + list((ROOT / "ui").glob("*.py"))),
                         ids=lambda p: str(p.relative_to(ROOT)))
def test_no_module_of_the_library_or_the_dashboard_is_over_500_lines(path):
    n = len(path.read_text().splitlines())
    assert n <= 500, f"{path.relative_to(ROOT)} has {n} lines"


def test_importing_ui_alone_loads_neither_streamlit_nor_torch():
    import subprocess
    import sys

    code = "import sys, ui; ui.nav.PAGES; print('streamlit' in sys.modules, 'torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.stdout.split() == ["False", "False"], out.stderr
