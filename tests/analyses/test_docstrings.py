"""Every public analysis function's example (its docstring, with shapes) runs and prints what it says."""

import doctest
import importlib

import pytest

from analysis.engine.registry import load_all

MODULES = sorted({a.module for a in load_all().values()})


@pytest.mark.parametrize("module", MODULES)
def test_the_examples_in_the_docstrings_hold(module):
    mod = importlib.import_module(module)
    result = doctest.testmod(mod, optionflags=doctest.ELLIPSIS, verbose=False)
    assert result.failed == 0
    assert result.attempted > 0, f"{module} has no example"
