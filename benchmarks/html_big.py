"""Time `memhound html` on a snapshot of N traces whose tracebacks all differ
(the worst case for the flame graph: nothing aggregates).

    python benchmarks/html_big.py [N]        # default 1,000,000

Prints the CPU and wall time of the `memhound html` child process.
"""
import os
import random
import resource
import subprocess
import sys
import tempfile
import time

import memhound


def make_snapshot(path, n, seed=1):
    rng = random.Random(seed)
    files = ["/app/pkg%d/mod%d.py" % (i % 17, i) for i in range(300)]
    raw, seen = [], set()
    while len(raw) < n:
        depth = rng.randint(3, 16)
        tb = tuple((files[rng.randrange(300)], rng.randrange(1, 400)) for _ in range(depth))
        if tb in seen:
            continue
        seen.add(tb)
        raw.append((0, rng.randrange(1, 4096), tb, depth))
    memhound.Snapshot(raw, 16).dump(path)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000
    with tempfile.TemporaryDirectory() as tmp:
        snap = os.path.join(tmp, "big.mhsnap")
        make_snapshot(snap, n)
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        t0 = time.perf_counter()
        subprocess.run([sys.executable, "-m", "memhound", "html", snap, "-o",
                        os.path.join(tmp, "big.html")], check=True)
        wall = time.perf_counter() - t0
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
        print("memhound html, %d traces, all tracebacks distinct: %.2f s CPU, %.2f s wall"
              % (n, cpu, wall))


if __name__ == "__main__":
    main()
