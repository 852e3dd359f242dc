"""Building memhound on an interpreter it was not written for stops at once
with one line that names the supported builds (no compiler error, no crash)."""
import pathlib
import subprocess
import sys

import pytest

from conftest import ROOT

SETUP = pathlib.Path(ROOT) / "setup.py"

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
sys.argv = ["setup.py", "--version"]
runpy.run_path(%r, run_name="__main__")
'''


@pytest.mark.skipif(not SETUP.exists(), reason="needs the source tree")
@pytest.mark.parametrize("kind, message", [
    ("free-threaded", "memhound supports the default (GIL) builds of CPython 3.11 to 3.15; "
                      "this is a free-threaded build"),
    ("3.16", "memhound supports CPython 3.11 to 3.15; this is 3.16"),
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
    import os
    import shutil

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
