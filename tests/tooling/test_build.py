"""Building memhound on an interpreter it was not written for, or without a C compiler
or the Python headers, stops at once with one line that says why (no compiler error,
no traceback); without its extension, memhound says so in one line."""
import os
import pathlib
import shutil
import subprocess
import sys

import pytest

from conftest import ROOT

SETUP = pathlib.Path(ROOT) / "setup.py"
# The sanitizer lane's copy of the tree has no LICENSE (setuptools warns about that).
FULL_TREE = all((SETUP.parent / name).exists()
                for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"))

# Runs setup.py as pip's build backend would, with sysconfig or the version
# made to look like another interpreter's.
FAKE = r'''
import runpy, sys, sysconfig
kind = sys.argv[1]
if kind == "free-threaded":
    real = sysconfig.get_config_var
    sysconfig.get_config_var = lambda name: 1 if name == "Py_GIL_DISABLED" else real(name)
elif kind == "3.16":
    import setuptools  # noqa: F401  (imported for real before the version is faked)
    class Version(tuple):
        major, minor = 3, 16
    sys.version_info = Version((3, 16, 0, "final", 0))
elif kind == "setuptools 65":
    import setuptools
    setuptools.__version__ = "65.5.0"
sys.argv = ["setup.py", "--version"]
runpy.run_path(%r, run_name="__main__")
'''


@pytest.mark.skipif(not SETUP.exists(), reason="needs the source tree")
@pytest.mark.parametrize("kind, message", [
    ("free-threaded", "memhound supports the default (GIL) builds of CPython 3.11 to 3.15; "
                      "this is a free-threaded build"),
    ("3.16", "memhound supports CPython 3.11 to 3.15; this is 3.16"),
    ("setuptools 65", "memhound: building needs setuptools 77 or newer; this is 65.5.0"),
])
def test_unsupported_interpreters_are_refused_in_one_line(kind, message):
    proc = subprocess.run([sys.executable, "-c", FAKE % str(SETUP), kind],
                          capture_output=True, text=True, cwd=SETUP.parent, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.strip().splitlines() == [proc.stderr.strip()]
    assert proc.stderr.startswith(message), proc.stderr


@pytest.mark.skipif(not SETUP.exists(), reason="needs the source tree")
def test_this_interpreter_is_accepted():
    proc = subprocess.run([sys.executable, "-c", FAKE % str(SETUP), "this"],
                          capture_output=True, text=True, cwd=SETUP.parent, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "0.1.0"


def test_without_the_extension_import_and_cli_fail_in_one_clear_line(tmp_path):
    import memhound
    package = pathlib.Path(memhound.__file__).parent
    shutil.copytree(package, tmp_path / "memhound",
                    ignore=shutil.ignore_patterns("*.so", "*.pyd", "__pycache__"))
    env = dict(os.environ, PYTHONPATH=str(tmp_path))
    expected = "memhound's C extension memhound._core is not built for Python "
    cli = subprocess.run([sys.executable, "-m", "memhound", "--version"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=60)
    assert cli.returncode == 1 and cli.stdout == ""
    assert len(cli.stderr.splitlines()) == 1 and expected in cli.stderr, cli.stderr
    assert "AttributeError" not in cli.stderr
    imp = subprocess.run([sys.executable, "-c", "import memhound"], capture_output=True,
                         text=True, cwd=tmp_path, env=env, timeout=60)
    assert imp.returncode == 1
    assert imp.stderr.splitlines()[-1].startswith("ImportError: " + expected), imp.stderr
    assert "build_ext --inplace" in imp.stderr and "AttributeError" not in imp.stderr


def _source_copy(dest):
    """The files a build reads, without the in-place extension of this checkout."""
    dest.mkdir(exist_ok=True)
    for name in ("setup.py", "pyproject.toml", "README.md", "LICENSE", "MANIFEST.in"):
        shutil.copy(SETUP.parent / name, dest / name)
    shutil.copytree(SETUP.parent / "src", dest / "src",
                    ignore=shutil.ignore_patterns("*.so", "__pycache__", "*.egg-info"))
    return dest


NO_COMPILER = "memhound: cannot build its C extension: no working C compiler"
WHAT_TO_INSTALL = ("install a C compiler and the Python %d.%d development headers, "
                   "e.g. `apt-get install gcc python3-dev`" % sys.version_info[:2])

# A compiler that works, except that Python.h is missing, as without python3-dev.
NO_HEADERS_CC = r'''#!/bin/sh
for a; do
    case "$a" in *.c) if grep -q Python.h "$a"; then
        echo "$a:1:10: fatal error: Python.h: No such file or directory" >&2; exit 1; fi;; esac
done
exec gcc "$@"
'''


def _build_ext(tree, **env_changes):
    env = dict(os.environ, **env_changes)
    for name, value in env_changes.items():
        if value is None:
            del env[name]
    return subprocess.run([sys.executable, "setup.py", "-q", "build_ext", "--inplace"],
                          cwd=tree, env=env, capture_output=True, text=True, timeout=300)


@pytest.mark.skipif(not FULL_TREE, reason="needs the source tree")
@pytest.mark.parametrize("how", ["CC=/bin/false", "no gcc on PATH", "no Python.h"])
def test_a_build_without_a_toolchain_stops_with_one_line_saying_what_to_install(tmp_path, how):
    tree = _source_copy(tmp_path)
    if how == "CC=/bin/false":
        proc = _build_ext(tree, CC="/bin/false")
        expected = NO_COMPILER + " (/bin/false)"
    elif how == "no gcc on PATH":
        empty = tmp_path / "empty-bin"
        empty.mkdir()
        proc = _build_ext(tree, CC=None, PATH=str(empty))
        expected = NO_COMPILER + " ("
    else:
        cc = tmp_path / "cc-without-python-h"
        cc.write_text(NO_HEADERS_CC)
        cc.chmod(0o755)
        proc = _build_ext(tree, CC=str(cc))
        expected = "memhound: cannot build its C extension: no Python.h in "
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert len(proc.stderr.splitlines()) == 1, proc.stderr
    assert proc.stderr.startswith(expected) and WHAT_TO_INSTALL in proc.stderr, proc.stderr
    assert not list((tree / "src" / "memhound").glob("_core*.so"))


@pytest.mark.skipif(not FULL_TREE, reason="needs the source tree")
def test_pip_without_a_compiler_shows_that_line_and_no_traceback(tmp_path):
    tree = _source_copy(tmp_path / "tree")
    env = dict(os.environ, CC="/bin/false", PIP_DISABLE_PIP_VERSION_CHECK="1")
    # No build isolation: this test needs no index; the backend is the setuptools under test.
    proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-build-isolation",
                           "--no-deps", "-w", str(tmp_path / "out"), str(tree)],
                          env=env, capture_output=True, text=True, timeout=300)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0, out
    lines = [line.strip() for line in out.splitlines() if NO_COMPILER in line]
    assert len(lines) == 1 and WHAT_TO_INSTALL in lines[0], out
    assert "Traceback" not in out and "CompileError" not in out, out
    # The line is the build backend's only output after setuptools names its commands.
    backend = out[out.index("lines of output]"):out.index("[end of output]")].splitlines()[1:]
    assert [line.strip() for line in backend if line.strip() and not
            line.strip().startswith("running ")] == lines, out
