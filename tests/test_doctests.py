"""The examples in the docstrings of every public module are real and pass.

A new public module is one more line in PUBLIC_MODULES.  Private modules
(``memhound.report._aggregate``, ...) are left out: their examples describe
internals and may be skipped.  Failing examples are printed by doctest and
shown by pytest with the failure.
"""
import doctest
import importlib

import pytest

import memhound

PUBLIC_MODULES = [
    "memhound",
    "memhound.tracing",
    "memhound.leaks",
    "memhound.targets",
    "memhound.pytest_plugin",
    "memhound.cli",
    "memhound.cli_leaks",
    "memhound.attach",
    "memhound.runner",
    "memhound.report",
    "memhound.report.html",
    "memhound.report.terminal",
    "memhound.report.export",
    "memhound.report.pprof",
    "memhound.watch",
]

# The tracemalloc-compatible API is documented by example, class by class.
MIN_EXAMPLES = {"memhound.tracing": 31}


@pytest.mark.parametrize("name", PUBLIC_MODULES)
def test_docstring_examples(name):
    if memhound.is_tracing():
        memhound.stop()
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= MIN_EXAMPLES.get(name, 1), f"too few examples in {name}"
    assert result.failed == 0
    assert not memhound.is_tracing(), f"an example in {name} left tracing on"

