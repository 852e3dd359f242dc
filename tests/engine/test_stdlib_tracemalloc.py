"""CPython's own test_tracemalloc (classes TestTraceback,
TestTracemallocEnabled, TestSnapshot, TestFilters) passes with memhound in
place of tracemalloc: runs .ci/stdlib_tracemalloc.py on this interpreter in a
child process and requires exit status 0.
"""
import importlib.util
import os
import subprocess
import sys

import pytest

from conftest import ROOT, child_env

RUNNER = os.path.join(ROOT, ".ci", "stdlib_tracemalloc.py")


def test_cpython_test_tracemalloc_passes(tmp_path):
    if importlib.util.find_spec("test.test_tracemalloc") is None:
        pytest.skip("this interpreter has no test.test_tracemalloc (CPython's test package)")
    args = [sys.executable, RUNNER]
    proc = subprocess.run(args, cwd=tmp_path, env=child_env(PYTHONTRACEMALLOC=None), capture_output=True, text=True,
                          timeout=600, stdin=subprocess.DEVNULL)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 0, out
    # It really ran memhound, all four classes, and nothing was skipped.
    assert "with memhound (" in out, out
    for cls in ("TestTraceback", "TestTracemallocEnabled", "TestSnapshot", "TestFilters"):
        assert f"  {cls}: " in out, out
    assert ", 0 failed" in out, out
    assert "EXPECTED FAILURE" not in out, out
