#!/usr/bin/env bash
# Build memhound's sdist and, from it, one manylinux wheel per CPython: each interpreter
# compiles the extension in a fresh venv (`pip wheel`), then `auditwheel repair` tags the
# wheel manylinux_X_Y, the oldest glibc policy that the extension's symbols allow.
#
#     scripts/build_wheels.sh [-o DIR] [--sdist FILE | --sdist-only] [VERSION ...]
#
# DIR (default dist/) receives the sdist (built from this tree unless --sdist names one)
# and one repaired wheel per VERSION (default 3.11 3.12 3.13 3.14 3.15); a line per file
# gives its path, tag and size.  --sdist-only stops after the sdist, with the tools ready.
# Each interpreter comes from pyenv, else pythonX.Y on PATH, else the Debian chroot
# $MEMHOUND_CHROOT (default /opt/memhound-sid, made by .ci/chroot.sh), which must see this
# project at the same path.  Needs a C compiler and each interpreter's headers; build and
# auditwheel from PyPI (in a venv, $MEMHOUND_TOOLS, default ~/.cache/memhound-build-tools);
# Debian's patchelf >= 0.14.5 for auditwheel: Debian 12's is older, so auditwheel then runs
# in the chroot, where Debian unstable's is (both installed with apt-get when missing).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
out=$root/dist
sdist=
sdist_only=
versions=()
die() { echo "build_wheels: $*" >&2; exit 2; }
while [ $# -gt 0 ]; do
    case $1 in
        -o) out=${2:?-o needs a directory}; shift 2 ;;
        --sdist) sdist=${2:?--sdist needs a file}; shift 2 ;;
        --sdist-only) sdist_only=1; shift ;;
        -h|--help) sed -n '2,/^set /{/^set /d;s/^# \{0,1\}//;p}' "$0"; exit 0 ;;
        3.1[1-5]) versions+=("$1"); shift ;;
        *) die "unknown argument '$1' (versions are 3.11 to 3.15; see --help)" ;;
    esac
done
[ ${#versions[@]} -gt 0 ] || versions=(3.11 3.12 3.13 3.14 3.15)
[ -z "$sdist" ] || [ -f "$sdist" ] || die "no sdist at '$sdist'"
mkdir -p "$out"
out=$(cd "$out" && pwd)
sid=${MEMHOUND_CHROOT:-/opt/memhound-sid}
tools=${MEMHOUND_TOOLS:-$HOME/.cache/memhound-build-tools}
ctools=/root/.cache/memhound-build-tools      # auditwheel's venv in the chroot
export PIP_DISABLE_PIP_VERSION_CHECK=1 PIP_ROOT_USER_ACTION=ignore
tmp=$(mktemp -d)
ctmp=                                          # this run's dir in the chroot, seen from inside
trap 'rm -rf "$tmp"; [ -z "$ctmp" ] || rm -rf "$sid$ctmp"' EXIT

host_python() {
    local v=$1 p
    if command -v pyenv >/dev/null 2>&1 && p=$(pyenv prefix "$v" 2>/dev/null) \
            && [ -x "$p/bin/python$v" ]; then
        echo "$p/bin/python$v"
    else
        command -v "python$v"
    fi
}

in_chroot() {
    chroot "$sid" /usr/bin/env -i PATH=/usr/local/bin:/usr/bin:/bin HOME=/root LANG=C.UTF-8 \
        MEMHOUND_STRICT="${MEMHOUND_STRICT:-}" PIP_DISABLE_PIP_VERSION_CHECK=1 \
        PIP_ROOT_USER_ACTION=ignore DEBIAN_FRONTEND=noninteractive /bin/bash -c "$1"
}

chroot_work() {
    if [ -z "$ctmp" ]; then
        ctmp=$(mktemp -d -p "$sid/tmp" memhound-wheels.XXXXXX)
        ctmp=${ctmp#"$sid"}
    fi
}

patchelf_ok() {
    local v
    v=$("$@" --version 2>/dev/null | awk '{print $2}') || return 1
    [ -n "$v" ] && [ "$(printf '%s\n0.14.5\n' "$v" | sort -V | head -n 1)" = 0.14.5 ]
}

tools_py=
for v in 3.13 3.12 3.11 3; do
    tools_py=$(host_python "$v") && break
done
[ -n "$tools_py" ] || die "no host python to run build and auditwheel"

# The tools, one run at a time (CI's lanes share them).
mkdir -p "$(dirname "$tools")"
exec 8>"$tools.lock"
flock 8
if ! [ -x "$tools/bin/auditwheel" ] || ! (cd / && "$tools/bin/python" -c 'import build.__main__') 2>/dev/null; then
    rm -rf "$tools"
    { "$tools_py" -m venv "$tools" && "$tools/bin/pip" install -q build auditwheel; } \
        || die "cannot install build and auditwheel from PyPI into $tools"
fi
if ! command -v patchelf >/dev/null 2>&1 && ! [ -d "$sid/usr" ] && command -v apt-get >/dev/null 2>&1; then
    { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        -o DPkg::Lock::Timeout=600 patchelf >/dev/null; } || die "cannot apt-get install patchelf"
fi
if patchelf_ok patchelf; then
    repair() { "$tools/bin/auditwheel" repair -w "$2" "$1"; }
elif [ -d "$sid/usr" ]; then
    if ! patchelf_ok chroot "$sid" patchelf; then
        in_chroot "apt-get install -y -qq patchelf >/dev/null 2>&1 \
                   || { apt-get update -qq && apt-get install -y -qq patchelf >/dev/null; }" \
            || die "cannot apt-get install patchelf in the chroot $sid"
    fi
    if ! [ -x "$sid$ctools/bin/auditwheel" ]; then
        cpy=$(cd "$sid/usr/bin" && ls python3.1[1-5] 2>/dev/null | head -n 1)
        in_chroot "rm -rf $ctools && $cpy -m venv $ctools && $ctools/bin/pip install -q auditwheel" \
            || die "cannot install auditwheel from PyPI in the chroot $sid"
    fi
    repair() {
        local inside
        chroot_work
        inside=$ctmp/repair-$(basename "$1")
        mkdir -p "$sid$inside/in" && cp "$1" "$sid$inside/in/"
        in_chroot "$ctools/bin/auditwheel repair -w $inside/out $inside/in/$(basename "$1")" \
            && mkdir -p "$2" && mv "$sid$inside"/out/*.whl "$2/"
    }
else
    die "auditwheel needs patchelf >= 0.14.5; this machine has $(patchelf --version 2>/dev/null \
         || echo none) and no chroot at $sid (.ci/chroot.sh makes one)"
fi
flock -u 8

if [ -z "$sdist" ]; then
    # Tests build sdists of this tree too: one at a time writes src/memhound.egg-info.
    mkdir -p "$root/build"
    (
        flock 9
        cd "$tmp"          # not in the tree, whose build/ would shadow the package build
        "$tools/bin/python" -m build --sdist -o "$tmp/sdist" "$root" >"$tmp/sdist.log" 2>&1 \
            || { cat "$tmp/sdist.log" >&2; die "building the sdist failed"; }
    ) 9>"$root/build/.memhound-sdist.lock"
    sdist=$(echo "$tmp"/sdist/memhound-*.tar.gz)
    cp "$sdist" "$out/"
    sdist=$out/$(basename "$sdist")
    echo "sdist: $sdist ($(stat -c %s "$sdist") bytes)"
fi
[ -z "$sdist_only" ] || exit 0

for v in "${versions[@]}"; do
    if py=$(host_python "$v"); then
        where=$py
        "$py" -m venv "$tmp/venv$v"
        "$tmp/venv$v/bin/pip" wheel -q --no-deps -w "$tmp/raw$v" "$sdist" >"$tmp/wheel$v.log" 2>&1 \
            || { cat "$tmp/wheel$v.log" >&2; die "CPython $v: pip wheel failed"; }
    elif [ -x "$sid/usr/bin/python$v" ]; then
        where="python$v in the chroot $sid"
        chroot_work
        cp "$sdist" "$sid$ctmp/"
        in_chroot "python$v -m venv $ctmp/venv$v && $ctmp/venv$v/bin/pip wheel -q --no-deps \
                   -w $ctmp/raw$v $ctmp/$(basename "$sdist")" >"$tmp/wheel$v.log" 2>&1 \
            || { cat "$tmp/wheel$v.log" >&2; die "CPython $v (chroot): pip wheel failed"; }
        mkdir -p "$tmp/raw$v" && mv "$sid$ctmp/raw$v"/memhound-*.whl "$tmp/raw$v/"
    else
        die "CPython $v: no python$v here (pyenv, PATH) nor in the chroot $sid"
    fi
    repair "$(echo "$tmp/raw$v"/memhound-*.whl)" "$tmp/repaired$v" >"$tmp/repair$v.log" 2>&1 \
        || { cat "$tmp/repair$v.log" >&2; die "CPython $v: auditwheel repair failed"; }
    wheel=$(echo "$tmp/repaired$v"/memhound-*.whl)
    case $wheel in
        *manylinux_*) ;;
        *) die "CPython $v: auditwheel gave $(basename "$wheel"), not a manylinux wheel" ;;
    esac
    # The C sources belong to the sdist only.
    if "$tools_py" -c 'import sys, zipfile
sys.exit(not any(n.endswith((".c", ".h")) for n in zipfile.ZipFile(sys.argv[1]).namelist()))' "$wheel"; then
        die "CPython $v: $(basename "$wheel") contains C sources"
    fi
    rm -f "$out"/memhound-*-cp${v/./}-cp${v/./}-*.whl
    mv "$wheel" "$out/"
    wheel=$out/$(basename "$wheel")
    tag=$(basename "$wheel" .whl | cut -d- -f5)
    echo "wheel: $wheel ($tag, $(stat -c %s "$wheel") bytes; built by $where)"
done
