#!/usr/bin/env python3
"""Fuzz memhound's snapshot-file reader (Snapshot.load, fileformat.c).

Contract under test: for ANY file content, ``memhound.Snapshot.load(path)``
either returns a Snapshot that can be used (statistics, dump + reload) or
raises ValueError (OSError for I/O problems).  Any other exception, a hang or
a crash is a finding; the input is kept in fuzz/findings/.

    python fuzz/fuzz_snapshot_load.py --seconds 60          # built-in mutator (CI)
    python fuzz/fuzz_snapshot_load.py --atheris [libFuzzer flags]   # coverage-guided
    python fuzz/fuzz_snapshot_load.py --make-corpus         # (re)write fuzz/corpus/
    python fuzz/fuzz_snapshot_load.py --replay FILE...      # run given inputs

The built-in mutator needs nothing beyond the stdlib: it flips bits, writes
boundary integers over 1/2/4/8-byte fields, truncates, duplicates, deletes
and splices chunks of the seed files in fuzz/corpus/ with a fixed seed, so a
run is reproducible.  A segfault kills the process: the input that caused it
is the file printed by faulthandler's traceback (`fuzz/findings/current-PID`).
"""
import argparse
import faulthandler
import os
import random
import struct
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
CORPUS = os.path.join(HERE, "corpus")
FINDINGS = os.path.join(HERE, "findings")

import memhound  # noqa: E402
from memhound import Snapshot  # noqa: E402

ALLOWED = (ValueError, OSError)


def make_corpus():
    """Seed files: real snapshots of several shapes."""
    os.makedirs(CORPUS, exist_ok=True)
    seeds = {
        "empty": Snapshot([], 1),
        "one": Snapshot([(0, 8, (("a.py", 1),), 1)], 1),
        "frames": Snapshot([(d, 16 * i + 1, tuple(("mod%d.py" % (i % 3), 10 * i + k)
                                                for k in range(1 + i % 4)), 5)
                            for i, d in enumerate([0, 0, 1, 2, 0, 3, 0, 0])], 5),
        "unicode": Snapshot([(0, 100, (("é/ü/漢字.py", 7), ("<frozen x>", 0)), 2),
                             (0, 2 ** 33, (("big.py", 2 ** 31 - 1),), 1)], 2),
    }
    meta = Snapshot([(0, 24, (("m.py", 3),), 1)] * 3, 1)
    meta.metadata = {"run": 3, "note": "seed"}
    seeds["metadata"] = meta
    memhound.start(3)
    live = [bytes(100 + i) for i in range(50)]
    seeds["live"] = memhound.take_snapshot().filter_traces(
        [memhound.Filter(True, __file__)])
    memhound.stop()
    del live
    for name, snap in seeds.items():
        snap.dump(os.path.join(CORPUS, name + ".mhsnap"))
    return sorted(os.listdir(CORPUS))


def check(data, path):
    """Run one input; raise on a contract violation."""
    with open(path, "wb") as f:
        f.write(data)
    try:
        snap = Snapshot.load(path)
    except ALLOWED:
        return "rejected"
    # Accepted: it must be usable.
    n = len(snap.traces)
    for key in ("filename", "lineno", "traceback"):
        snap.statistics(key)
    snap.statistics("lineno", cumulative=True)
    snap.compare_to(snap, "lineno")
    repr(snap.traces[0]) if n else None
    out = path + ".out"
    snap.dump(out)
    again = Snapshot.load(out)
    assert len(again.traces) == n, "dump/load round trip changed the trace count"
    return "accepted"


INTERESTING = [0, 1, 2, 0x7f, 0x80, 0xff, 0x100, 0x7fff, 0xffff, 0x7fffffff, 0x80000000,
               0xffffffff, 2 ** 32, 2 ** 63 - 1, 2 ** 63, 2 ** 64 - 1]


def mutate(rng, data, seeds):
    data = bytearray(data)
    for _ in range(rng.choice([1, 1, 2, 3, 5])):
        op = rng.randrange(8)
        n = len(data)
        if n == 0:
            data += rng.randbytes(rng.randrange(1, 64))
            continue
        i = rng.randrange(n)
        if op == 0:                                   # bit flip
            data[i] ^= 1 << rng.randrange(8)
        elif op == 1:                                 # random byte
            data[i] = rng.randrange(256)
        elif op == 2:                                 # boundary integer
            width = rng.choice([1, 2, 4, 8])
            v = rng.choice(INTERESTING) & ((1 << (8 * width)) - 1)
            fmt = {1: "B", 2: "H", 4: "I", 8: "Q"}[width]
            blob = struct.pack(rng.choice("<>") + fmt, v)
            data[i:i + width] = blob
        elif op == 3:                                 # truncate
            del data[rng.randrange(n):]
        elif op == 4:                                 # delete a chunk
            del data[i:i + rng.randrange(1, 64)]
        elif op == 5:                                 # duplicate a chunk
            j = rng.randrange(n)
            data[i:i] = data[j:j + rng.randrange(1, 64)]
        elif op == 6:                                 # splice another seed
            other = rng.choice(seeds)
            if other:
                j = rng.randrange(len(other))
                data[i:] = other[j:]
        else:                                         # random bytes
            data[i:i + 8] = rng.randbytes(8)
    return bytes(data)


# The reader's own CRC-32C (checked against an independent Python reference in
# tests/snapshot/test_snapshot_file.py); it also makes the fix-up fast.
crc32c = memhound._core.SnapshotData._crc32c


def fix_checksums(data):
    """Recompute the CRC-32C fields (docs/snapshot-format.md) where the
    structure allows, so that mutations reach the parser behind the checksum
    gate instead of being rejected by it."""
    data = bytearray(data)
    if len(data) < 48:
        return bytes(data)
    count = min(struct.unpack_from("<I", data, 16)[0], 64)
    table_end = 48 + 24 * count
    if table_end <= len(data):
        for k in range(count):
            off = 48 + 24 * k
            start, length = struct.unpack_from("<QQ", data, off + 8)
            if start + length <= len(data):
                struct.pack_into("<I", data, off + 4, crc32c(data[start:start + length]))
        struct.pack_into("<I", data, 32, crc32c(data[48:table_end]))
    struct.pack_into("<I", data, 36, crc32c(data[:36]))
    return bytes(data)


def keep_finding(data, exc):
    os.makedirs(FINDINGS, exist_ok=True)
    name = "finding-%s-%d" % (type(exc).__name__, len(os.listdir(FINDINGS)))
    with open(os.path.join(FINDINGS, name), "wb") as f:
        f.write(data)
    return name


def run_builtin(seconds, seed):
    seeds = [open(os.path.join(CORPUS, n), "rb").read() for n in sorted(os.listdir(CORPUS))]
    if not seeds:
        seeds = [open(os.path.join(CORPUS, n), "rb").read() for n in make_corpus()]
    rng = random.Random(seed)
    os.makedirs(FINDINGS, exist_ok=True)
    # The input under test, if we crash; one per process so that runs in
    # parallel (several Python versions) never load each other's file.
    current = os.path.join(FINDINGS, "current-%d" % os.getpid())
    stats = {"accepted": 0, "rejected": 0}
    findings = {}
    deadline = time.monotonic() + seconds
    runs = 0
    for data in seeds:                     # seeds must load
        assert check(data, current) == "accepted", "a seed file was rejected"
    while time.monotonic() < deadline:
        data = mutate(rng, rng.choice(seeds), seeds)
        if rng.random() < 0.9:
            data = fix_checksums(data)
        try:
            stats[check(data, current)] += 1
        except Exception as exc:                  # noqa: BLE001 - any other type is a finding
            key = (type(exc).__name__, str(exc)[:120])
            if key not in findings:
                findings[key] = keep_finding(data, exc)
        runs += 1
    os.unlink(current)
    if os.path.exists(current + ".out"):
        os.unlink(current + ".out")
    print(f"{runs} inputs in {seconds}s (seed {seed}): {stats['accepted']} accepted, "
          f"{stats['rejected']} rejected with ValueError/OSError, {len(findings)} findings")
    for (kind, msg), name in sorted(findings.items()):
        print(f"  FINDING {kind}: {msg}  -> fuzz/findings/{name}")
    return 1 if findings else 0


def run_atheris(argv):
    import atheris
    path = os.path.join(tempfile.mkdtemp(prefix="mhfuzz-"), "input")

    def one(data):
        check(fix_checksums(data), path)

    # fileformat.c is not built with -fsanitize=fuzzer: atheris mutates blind
    # here, still useful for long unattended runs.
    atheris.Setup([sys.argv[0]] + argv + [CORPUS], one)
    atheris.Fuzz()


def main():
    faulthandler.enable()
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--atheris", action="store_true")
    ap.add_argument("--make-corpus", action="store_true")
    ap.add_argument("--replay", nargs="*")
    args, rest = ap.parse_known_args()
    if args.make_corpus:
        print("\n".join(make_corpus()))
        return 0
    if args.replay:
        path = os.path.join(tempfile.mkdtemp(prefix="mhfuzz-"), "input")
        for f in args.replay:
            print(f, check(open(f, "rb").read(), path))
        return 0
    if args.atheris:
        return run_atheris(rest)
    return run_builtin(args.seconds, args.seed)


if __name__ == "__main__":
    sys.exit(main())
