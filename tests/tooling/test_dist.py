"""The distributions: `python -m build` of this checkout warns about nothing; the sdist holds
every file that README and the tests use, so README's first command works from it unpacked;
the wheel has no C sources, carries the license and installs without a compiler.  In CI's
installed mode (MEMHOUND_TEST_INSTALLED=1) the memhound under test is the installed wheel.
"""
import email
import fcntl
import importlib.metadata
import importlib.util
import json
import os
import pathlib
import re
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile

import pytest

import memhound
from conftest import INSTALLED, ROOT, run_child

TREE = pathlib.Path(ROOT)
HAS_GIT = (TREE / ".git").exists() and shutil.which("git") is not None
source_tree = pytest.mark.skipif(not (TREE / "setup.py").exists(), reason="needs the source tree")


def _env(**changes):
    env = dict(os.environ, PIP_DISABLE_PIP_VERSION_CHECK="1")
    # Not the project's warnings: setuptools warns that it cannot byte-compile when this
    # is set; and the children must not be pointed at src/.
    for name in ("PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "MEMHOUND_TEST_INSTALLED"):
        env.pop(name, None)
    return dict(env, **changes)


@pytest.fixture(scope="module")
def dists(tmp_path_factory):
    """(sdist, wheel, build output) of `python -m build` of this checkout, once per test run.

    xdist workers share the result: the first builds it under a lock (an sdist build writes
    src/memhound.egg-info, so scripts/build_wheels.sh takes the same lock), the others reuse it.
    """
    # Not importorskip: the checkout's build/ directory is a namespace package "build".
    try:
        has_build = importlib.util.find_spec("build.__main__") is not None
    except ImportError:
        has_build = False
    if not has_build:
        pytest.skip("needs pypa's build (pip install build)")
    if not (TREE / "setup.py").exists():
        pytest.skip("needs the source tree")
    base = tmp_path_factory.getbasetemp()
    # xdist workers' temp dirs share this run's parent; without xdist it is every run's.
    shared = (base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) / "memhound-dists"
    (TREE / "build").mkdir(exist_ok=True)
    with open(TREE / "build" / ".memhound-sdist.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        log = shared / "build.log"
        if not log.exists():
            shutil.rmtree(shared, ignore_errors=True)
            shared.mkdir()
            proc = subprocess.run([sys.executable, "-m", "build", "-o", str(shared / "dist"), str(TREE)],
                                  cwd=shared, env=_env(), capture_output=True, text=True, timeout=900)
            assert proc.returncode == 0, proc.stdout + proc.stderr
            log.write_text(proc.stdout + proc.stderr)
    sdist, = (shared / "dist").glob("memhound-*.tar.gz")
    wheel, = (shared / "dist").glob("memhound-*.whl")
    return sdist, wheel, log.read_text()


def test_python_m_build_warns_about_nothing(dists):
    *_, output = dists
    assert "Successfully built memhound-" in output
    warnings = [line for line in output.splitlines() if re.search(r"(?i)warn", line)]
    assert not warnings, "\n".join(warnings)


def test_the_wheel_has_no_c_sources_and_full_metadata(dists):
    _, wheel, _ = dists
    names = zipfile.ZipFile(wheel).namelist()
    assert not [n for n in names if n.endswith((".c", ".h"))]
    assert any(re.fullmatch(r"memhound/_core\.cpython-[^/]+\.so", n) for n in names), names
    info = next(n.split("/")[0] for n in names if n.endswith(".dist-info/METADATA"))
    license_text = zipfile.ZipFile(wheel).read(info + "/licenses/LICENSE").decode()
    assert license_text == (TREE / "LICENSE").read_text() and "MIT License" in license_text
    meta = email.message_from_bytes(zipfile.ZipFile(wheel).read(info + "/METADATA"))
    assert meta["License-Expression"] == "MIT" and meta["Author"]
    classifiers = meta.get_all("Classifier")
    assert not [c for c in classifiers if c.startswith("License ::")]
    for needed in ("Development Status :: ", "Programming Language :: Python :: Implementation :: CPython",
                   "Operating System :: POSIX :: Linux", "Topic :: Software Development :: Debuggers"):
        assert any(c.startswith(needed) for c in classifiers), (needed, classifiers)
    # One version classifier per minor version that Requires-Python admits.
    low, high = (re.search(op + r"3\.(\d+)", meta["Requires-Python"]).group(1) for op in (">=", "<"))
    assert sorted(c for c in classifiers if re.fullmatch(r"Programming Language :: Python :: 3\.\d+", c)) \
        == sorted("Programming Language :: Python :: 3.%d" % m for m in range(int(low), int(high)))
    assert {u.split(",")[0] for u in meta.get_all("Project-URL")} >= {"Homepage", "Source", "Issues"}


def test_the_built_wheel_installs_and_runs_with_no_compiler(dists, tmp_path):
    _, wheel, _ = dists
    target = tmp_path / "site"
    proc = subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-index",
                           "--target", str(target), str(wheel)],
                          env=_env(CC="/bin/false"), capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # -S: no site-packages, where an editable install of this checkout could win over PYTHONPATH.
    proc = subprocess.run([sys.executable, "-S", "-c", "import memhound, memhound._core; memhound.start(); "
                           "print(memhound.__file__, memhound.is_tracing())"],
                          env=_env(PYTHONPATH=str(target)), cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr
    path, tracing = proc.stdout.split()
    assert pathlib.Path(path).parent.parent == target and tracing == "True"


def _tracked():
    out = subprocess.run(["git", "ls-files", "-z"], cwd=TREE, capture_output=True, text=True,
                         check=True).stdout
    return [f for f in out.split("\0") if f and (TREE / f).is_file()]


def _sdist_files(sdist):
    with tarfile.open(sdist) as tar:
        names = [m.name for m in tar.getmembers() if m.isfile()]
    top = names[0].split("/")[0]
    return {n[len(top) + 1:] for n in names}


@pytest.mark.skipif(not HAS_GIT, reason="needs a git checkout and git")
def test_the_sdist_holds_every_file_readme_and_the_tests_use(dists):
    sdist, *_ = dists
    tracked = _tracked()
    texts = (TREE / "README.md").read_text(encoding="utf-8") + "".join(
        (TREE / f).read_text(encoding="utf-8") for f in tracked if f.startswith("tests/") and f.endswith(".py"))
    # A top-level file or directory that README or a test names is needed whole.
    tops = {f.split("/")[0] for f in tracked}
    used = {t for t in tops if re.search(r"(?<![\w.-])%s(?![\w-])" % re.escape(t), texts)}
    assert "examples" in used, used             # README's first command runs an example
    needed = {f for f in tracked if f.split("/")[0] in used | {"tests"}} | {"LICENSE", "README.md"}
    files = _sdist_files(sdist)
    missing = sorted(needed - files)
    assert not missing, "missing from the sdist (MANIFEST.in): %s" % missing
    # Nothing that git ignores (builds, fuzzer findings, caches), apart from setuptools' egg-info.
    extra = sorted(f for f in files - set(tracked) if ".egg-info/" not in f)
    ignored = subprocess.run(["git", "check-ignore", "--stdin"], input="\n".join(extra), cwd=TREE,
                             capture_output=True, text=True).stdout.split()
    assert not ignored and not [f for f in files if f.endswith((".so", ".pyc"))], ignored


@source_tree
def test_readmes_first_command_works_from_the_unpacked_sdist(dists, tmp_path):
    sdist, *_ = dists
    readme = (TREE / "README.md").read_text(encoding="utf-8")
    first = re.search(r"^pip install \. && (.+)$", readme, re.M)
    assert first, "README has no `pip install . && ...` command"
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp_path, filter="data")
    project, = tmp_path.glob("memhound-*")
    venv.create(tmp_path / "venv", with_pip=True)
    bin_dir = tmp_path / "venv" / "bin"
    env = _env(PATH=str(bin_dir) + os.pathsep + os.environ["PATH"], VIRTUAL_ENV=str(tmp_path / "venv"))
    proc = subprocess.run([str(bin_dir / "pip"), "install", "-q", "."], cwd=project, env=env,
                          capture_output=True, text=True, timeout=900)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    proc = subprocess.run(first.group(1), shell=True, cwd=project, env=env, capture_output=True,
                          text=True, timeout=300)
    # README: it prints the report and exits with status 1 (a leak was found).
    assert proc.returncode == 1, proc.stdout + proc.stderr
    assert "global _audit_log" in proc.stdout and str(project / "examples") in proc.stdout, proc.stdout
    where = subprocess.run([str(bin_dir / "python"), "-c", "import memhound; print(memhound.__file__)"],
                           cwd=tmp_path, env=env, capture_output=True, text=True, timeout=60)
    assert where.stdout.startswith(str(tmp_path / "venv")), where.stdout + where.stderr


def test_children_import_the_memhound_under_test():
    proc = run_child("import memhound; print(memhound.__file__)")
    assert proc.stdout.strip() == memhound.__file__


@pytest.mark.skipif(not INSTALLED, reason="CI's installed-wheel mode (MEMHOUND_TEST_INSTALLED=1)")
def test_installed_mode_tests_the_installed_wheel():
    package = pathlib.Path(memhound.__file__).resolve().parent
    assert package.parent == pathlib.Path(sysconfig.get_path("platlib")).resolve(), package
    assert not (TREE / "src") in package.parents
    assert not list(package.rglob("*.c")) and not list(package.rglob("*.h"))
    dist = importlib.metadata.distribution("memhound")
    origin = json.loads(dist.read_text("direct_url.json"))
    assert origin["url"].endswith(".whl"), origin
    tags = [line.split(": ", 1)[1] for line in dist.read_text("WHEEL").splitlines()
            if line.startswith("Tag: ")]
    assert tags and all("-manylinux" in tag for tag in tags), tags
