"""Helpers shared by the test files of every subdirectory.

pytest loads this file as the top-level module ``conftest`` and, in its default "prepend"
import mode, puts ``tests/`` on ``sys.path`` first, so test files use plain imports::

    from conftest import SRC, run_child

This works the same in pytest-xdist workers, which collect through the same rootdir.
"""
import os
import subprocess
import sys
import textwrap

import pytest

import memhound

# The project checkout: benchmarks/, fuzz/, examples/, setup.py and .ci/ live here.
ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# The directory that holds the memhound package under test: src/ of an editable install,
# site-packages of a plain one.  Child interpreters get it first on PYTHONPATH so that they
# import the very build this process tests, not whatever else the path would find first.
SRC = os.path.dirname(os.path.dirname(os.path.abspath(memhound.__file__)))

# CI installs the wheel and sets MEMHOUND_TEST_INSTALLED=1: every test must then run that
# installed copy.  A memhound from this checkout's src/ (PYTHONPATH, an editable install)
# would test the source tree instead, so it stops the run here.
INSTALLED = os.environ.get("MEMHOUND_TEST_INSTALLED") == "1"
if INSTALLED and os.path.realpath(SRC) == os.path.realpath(os.path.join(ROOT, "src")):
    raise ImportError("MEMHOUND_TEST_INSTALLED=1 but memhound was imported from this checkout "
                      "(%s), not from an installed wheel" % memhound.__file__)

# A leak report as LeakReport.to_dict() writes it: one group held by a module global.
SAMPLE_LEAK_REPORT = {
    "leaked": True, "warmup": 3, "runs": 5,
    "deltas": {"blocks": [4, 4, 4, 4, 4], "objects": [2, 2, 2, 2, 2],
               "bytes": [212, 212, 208, 212, 212]},
    "groups": [{"type": "app.Record", "count": 5, "count_per_run": 1, "bytes": 240,
                "created_at": [{"filename": "app.py", "lineno": 14, "function": "step"}],
                "path": [{"kind": "module", "label": "app"}, {"kind": "global", "label": "_seen"},
                         {"kind": "index", "label": "[41]"}],
                "path_text": "module app -> global _seen (list) -> [41] -> app.Record",
                "cause": "global-collection", "hint": "drop entries from _seen when done"}]}


def marker_line(path, marker):
    """Line number of the line of file `path` that ends with the comment ``# marker``."""
    with open(path, encoding="utf-8") as f:
        for n, text in enumerate(f, 1):
            if text.rstrip().endswith("# " + marker):
                return n
    raise AssertionError("no line ending with # %s in %s" % (marker, path))


def child_env(**changes):
    """This process's environment with SRC first on PYTHONPATH.

    A keyword sets a variable, a keyword set to None removes it:
    ``child_env(NO_COLOR=None)``.
    """
    env = dict(os.environ, PYTHONPATH=SRC + os.pathsep + os.environ.get("PYTHONPATH", ""))
    for name, value in changes.items():
        if value is None:
            env.pop(name, None)
        else:
            env[name] = value
    return env


def run_child(code, *, prelude="", script_dir=None, python_options=(), timeout=120):
    """Run ``prelude + dedent(code)`` in a fresh interpreter that imports this memhound.

    A crash, a non-zero exit status or a hang past ``timeout`` seconds fails the calling test
    with the child's output; otherwise the ``subprocess.CompletedProcess`` is returned.
    Children that start others with spawn or forkserver re-import ``__main__``, so they need
    a file: pass ``script_dir`` (e.g. ``tmp_path``) and the code is run from
    ``script_dir/scenario.py`` instead of ``-c``.
    """
    source = prelude + textwrap.dedent(code)
    if script_dir is None:
        argv = [sys.executable, *python_options, "-c", source]
    else:
        script = os.path.join(script_dir, "scenario.py")
        with open(script, "w", encoding="utf-8") as f:
            f.write(source)
        argv = [sys.executable, *python_options, script]
    try:
        proc = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                              env=child_env())
    except subprocess.TimeoutExpired as exc:
        pytest.fail(f"child hung (deadlock?) after {timeout}s:\n{exc.stdout}\n{exc.stderr}")
    assert proc.returncode == 0, f"child failed with {proc.returncode}:\n{proc.stdout}\n{proc.stderr}"
    return proc
