#!/usr/bin/env bash
# Build memhound with AddressSanitizer + UndefinedBehaviorSanitizer for one
# CPython (3.12 unless PY_VERSION is given) in a fresh venv and run the whole test
# suite under it.  Any ASan/UBSan report aborts the process and fails the run.
# CPython itself is not instrumented, so libasan is preloaded; leak detection
# is off because CPython leaks by design at exit.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
v=${PY_VERSION:-3.12}
if command -v pyenv >/dev/null 2>&1 && p=$(pyenv prefix "$v" 2>/dev/null); then
    py="$p/bin/python$v"
else
    py=$(command -v "python$v")
fi
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
"$py" -m venv "$work/venv"
# shellcheck disable=SC1091
source "$work/venv/bin/activate"
pip install -q pytest pytest-xdist setuptools
# Build in a copy of the tree so that the in-place .so of the normal build
# is not replaced by the instrumented one.
mkdir "$work/src" && cp -r setup.py pyproject.toml README.md LICENSE MANIFEST.in src tests examples .ci "$work/src/"
[ -d fuzz ] && cp -r fuzz "$work/src/"
cd "$work/src"
find src -name '*.so' -delete
MEMHOUND_SANITIZE=1 MEMHOUND_STRICT=1 python setup.py -q build_ext --inplace >/dev/null
libasan=$(gcc -print-file-name=libasan.so)
libubsan=$(gcc -print-file-name=libubsan.so)
echo "sanitize: $(python -V), preloading $libasan"
export LD_PRELOAD="$libasan $libubsan"
export ASAN_OPTIONS=detect_leaks=0:abort_on_error=1:halt_on_error=1
export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
export PYTHONPATH="$work/src/src"
# Child processes spawned by the tests inherit LD_PRELOAD and the options.
# Not here: the browser tests (Chromium cannot run with libasan preloaded)
# and the benchmark smoke test (it times peers, not memhound's C code).
# pymalloc stays on: the leak finder's verdict counts pymalloc blocks, and
# memhound's own memory (libc/mmap) is what ASan must watch.
if [ $# -eq 0 ]; then
    set -- -n 2 tests --ignore=tests/report/test_report_browser.py --ignore=tests/tooling/test_benchmarks_smoke.py
fi
python -m pytest -q -p no:cacheprovider "$@"
