#!/usr/bin/env bash
# Make (or reuse) a Debian unstable chroot with CPython 3.14 and 3.15, their
# internal headers and test suites, and gcc; mount /proc in it and bind-mount
# the project at the same path, so that paths agree inside and outside.
#
#     bash .ci/chroot.sh DIR PROJECT
#
# This machine's Debian is too old for those interpreters (sid's glibc is
# newer), hence the chroot.  A DIR made earlier with the same package list is
# reused.  `bash .ci/chroot.sh --unmount DIR` undoes the mounts.
set -euo pipefail

unmount_all() {
    # Deepest first; nothing under DIR may stay mounted before it is removed.
    local dir mounts
    dir=$(realpath -m "$1")
    mounts=$(awk -v d="$dir" 'index($2, d "/") == 1 {print $2}' /proc/self/mounts | sort -r)
    for m in $mounts; do
        umount "$m" 2>/dev/null || umount -l "$m"
    done
}

if [ "${1:-}" = --unmount ]; then
    unmount_all "${2:?usage: chroot.sh --unmount DIR}"
    exit 0
fi
dir=$(realpath -m "${1:?usage: chroot.sh DIR PROJECT}")
project=$(realpath "${2:?usage: chroot.sh DIR PROJECT}")
pkgs=python3.14-dev,python3.14-venv,python3.15-dev,python3.15-venv,libpython3.14-testsuite,libpython3.15-testsuite,gcc,libc6-dev
stamp="$dir/.memhound-packages"

if [ "$(cat "$stamp" 2>/dev/null)" != "$pkgs" ]; then
    if ! command -v debootstrap >/dev/null 2>&1; then
        apt-get update -qq
        DEBIAN_FRONTEND=noninteractive apt-get install -y -qq debootstrap >/dev/null
    fi
    mirror=$(awk '/^URIs:/ {print $2; exit}' /etc/apt/sources.list.d/debian.sources 2>/dev/null || true)
    unmount_all "$dir"
    rm -rf --one-file-system "$dir"
    debootstrap --variant=minbase --include="$pkgs" sid "$dir" "${mirror:-http://deb.debian.org/debian}" >/dev/null
    # pip inside the chroot verifies PyPI with the host's CA bundle.
    cp /etc/ssl/certs/ca-certificates.crt "$dir/etc/ssl/certs/ca-certificates.crt"
    echo "$pkgs" >"$stamp"
fi
mountpoint -q "$dir/proc" || mount -t proc proc "$dir/proc"
mkdir -p "$dir$project"
mountpoint -q "$dir$project" || mount --bind "$project" "$dir$project"
echo "chroot $dir: $(chroot "$dir" python3.14 -V), $(chroot "$dir" python3.15 -V)"
