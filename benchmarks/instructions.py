#!/usr/bin/env python3
"""Instructions a tracer adds to the workloads of programs.py, counted by
valgrind's callgrind (deterministic, unlike times on a shared machine).

    python benchmarks/instructions.py                       # growth + depth, this Python
    python benchmarks/instructions.py --workloads depth_100 --modes untraced,memhound:1
    python benchmarks/instructions.py --modes untraced,nullhook,nullhook:ref,memhound:1:64KiB
                                                          # the floor: hooks that only forward
    python benchmarks/instructions.py --cache-sim --keep /tmp/cg   # also simulated cache misses;
                                                          # keep callgrind.out files for callgrind_annotate

Each (workload, mode) runs in its own `valgrind --tool=callgrind` process:
imports, the workload's setup and a 5 % warm-up run untraced, then the tracer
is started, the workload runs once at full scale and the tracer is stopped.
The untraced process does the same without the tracer, so "added" =
instructions of the traced process minus those of the untraced one; per item
= divided by the workload's objects (100,000 for the 100k and depth
workloads).  Stdlib only (plus valgrind on PATH).
"""
import argparse
import os
import re
import subprocess
import sys
import tempfile

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_WORKLOADS = ["grow_dicts_100k", "grow_lists_100k", "grow_dataclasses_100k",
                     "grow_slots_100k", "grow_strings_100k", "grow_dicts_1M",
                     "depth_30", "depth_60", "depth_100"]
DEFAULT_MODES = ["untraced", "memhound:1", "memhound:25", "tracemalloc:1"]
EVENTS = ("Ir", "D1mr", "D1mw", "DLmr", "DLmw")


def items_of(workload):
    if workload.endswith("_1M"):
        return 1_000_000
    if workload.endswith("_100k") or workload.startswith("depth_"):
        return 100_000
    return None


def run_one(workload, mode, scale):
    """Body of the measured process (runs under valgrind)."""
    sys.path.insert(0, HERE)
    import worker  # memhound from src/ when built there, like the benchmarks
    import programs
    func = programs.WORKLOADS[workload]
    tmp = tempfile.mkdtemp(prefix="mhinstr-")
    setup = programs.SETUP.get(workload)
    if setup is not None:
        setup(tmp, scale)
    # Every process imports memhound (and runs its start/stop probe) and
    # tracemalloc, so that the untraced count holds the same start-up work.
    worker.memhound_tracer()
    import tracemalloc  # noqa: F401
    mod = None
    if mode != "untraced":
        mod = worker.tracer_module(mode.split(":")[0])
    func(scale * 0.05)
    if mod is not None:
        worker.start_tracer(mod, mode)
    func(scale)
    if mod is not None:
        mod.stop()


def callgrind(python, workload, mode, scale, cache_sim, keep_dir):
    out_dir = keep_dir or tempfile.mkdtemp(prefix="mhcg-")
    out = os.path.join(out_dir, "callgrind.out.%s.%s" % (workload, mode.replace(":", "")))
    cmd = ["valgrind", "--tool=callgrind", "--callgrind-out-file=" + out,
           "--cache-sim=" + ("yes" if cache_sim else "no")]
    if keep_dir:
        cmd.append("--dump-instr=yes")
    cmd += [python, os.path.abspath(__file__), "--one", workload, mode, repr(scale)]
    env = dict(os.environ, PYTHONHASHSEED="0")
    env.pop("PYTHONTRACEMALLOC", None)
    env.pop("PYTHONMALLOC", None)
    proc = subprocess.run(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if proc.returncode != 0:
        raise RuntimeError("%s %s: valgrind exited %d: %s"
                           % (workload, mode, proc.returncode, proc.stderr[-600:]))
    events, totals = None, None
    with open(out) as f:
        for line in f:
            if line.startswith("events:"):
                events = line.split()[1:]
            elif line.startswith(("summary:", "totals:")):
                totals = [int(x) for x in line.split()[1:]]
    if not keep_dir:
        os.unlink(out)
    return dict(zip(events, totals))


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["--one"]:
        run_one(argv[1], argv[2], float(argv[3]))
        return 0
    p = argparse.ArgumentParser(prog="benchmarks/instructions.py", description=__doc__.split("\n\n")[0])
    p.add_argument("--python", default=sys.executable)
    p.add_argument("--workloads", default=",".join(DEFAULT_WORKLOADS))
    p.add_argument("--modes", default=",".join(DEFAULT_MODES))
    p.add_argument("--scale", type=float, default=1.0)
    p.add_argument("--cache-sim", action="store_true", help="also count simulated cache misses")
    p.add_argument("--keep", metavar="DIR", help="keep callgrind.out files here (with --dump-instr)")
    args = p.parse_args(argv)
    modes = args.modes.split(",")
    if any(m.startswith("nullhook") for m in modes):
        sys.path.insert(0, HERE)
        import worker
        worker.nullhook()  # compiled here, not inside a measured process
    if "untraced" not in modes:
        modes.insert(0, "untraced")
    if args.keep:
        os.makedirs(args.keep, exist_ok=True)
    version = subprocess.run([args.python, "-c", "import platform; print(platform.python_version())"],
                             stdout=subprocess.PIPE, universal_newlines=True).stdout.strip()
    print("CPython %s, scale %g, `python benchmarks/instructions.py %s`"
          % (version, args.scale, " ".join(argv)), flush=True)
    cols = ["Ir"] + (["D1mr", "D1mw", "DLmr", "DLmw"] if args.cache_sim else [])
    header = ["workload", "mode", "instructions", "added", "added per item"]
    if args.cache_sim:
        header += ["added L1d misses (r+w)", "added LL misses (r+w)"]
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header), flush=True)
    for workload in args.workloads.split(","):
        base = None
        for mode in modes:
            counts = callgrind(args.python, workload, mode, args.scale, args.cache_sim, args.keep)
            if mode == "untraced":
                base = counts
            added = counts["Ir"] - base["Ir"]
            items = items_of(workload)
            row = [workload, mode, "{:,}".format(counts["Ir"]),
                   "–" if mode == "untraced" else "{:+,}".format(added),
                   "–" if mode == "untraced" or not items else "%.0f" % (added / (items * args.scale))]
            if args.cache_sim:
                d1 = lambda c: c.get("D1mr", 0) + c.get("D1mw", 0)
                ll = lambda c: c.get("DLmr", 0) + c.get("DLmw", 0)
                row += ["{:,}".format(d1(counts)) if mode == "untraced" else "{:+,}".format(d1(counts) - d1(base)),
                        "{:,}".format(ll(counts)) if mode == "untraced" else "{:+,}".format(ll(counts) - ll(base))]
            print("| " + " | ".join(row) + " |", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
