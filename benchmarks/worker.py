"""One benchmark measurement in a fresh interpreter (run by benchmarks/run.py).

Usage (internal): python worker.py '<json task>'

The task is a dict with a "kind" (probe, overhead, snapshot, memory, leaks) and
its parameters.  The worker prints progress lines on stderr and, as its last
stdout line, ``@@RESULT@@ <json>``.  A tool that is missing or not usable
yields {"status": "not installed" | "unavailable", "reason": ...} instead of
a crash, so the harness can always render a table.

Stdlib only; the peers (tracemalloc is stdlib; memray, objgraph, guppy3) are
imported lazily.
"""
import gc
import json
import os
import statistics
import sys
import tempfile
import time
import traceback

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.join(os.path.dirname(HERE), "src")
RESULT_MARK = "@@RESULT@@"

# The clock every measurement uses, chosen by the task ("cpu" or "wall"):
# process CPU time (all threads) is robust to other load on a shared machine;
# wall time is what a user waits.
_now = time.process_time


class Unavailable(Exception):
    """A tool cannot be measured; `status` is 'not installed' or 'unavailable'."""

    def __init__(self, status, reason):
        super().__init__(reason)
        self.status = status
        self.reason = reason


def log(msg):
    print(msg, file=sys.stderr, flush=True)


# --------------------------------------------------------------------------
# Importing the tools
# --------------------------------------------------------------------------

def _import_memhound():
    """Import memhound, preferring the source tree when its extension is built
    for this interpreter, else an installed copy."""
    src_pkg = os.path.join(SRC, "memhound")
    if os.path.isdir(src_pkg) and SRC not in sys.path:
        sys.path.insert(0, SRC)
    try:
        import memhound
        return memhound
    except ImportError as exc:
        first = exc
    # Source tree without a built extension for this Python: try an installed one.
    for name in [m for m in sys.modules if m == "memhound" or m.startswith("memhound.")]:
        del sys.modules[name]
    if SRC in sys.path:
        sys.path.remove(SRC)
    try:
        import memhound
        return memhound
    except ImportError:
        missing = isinstance(first, ModuleNotFoundError) and first.name == "memhound"
        raise Unavailable("not installed" if missing else "unavailable",
                          "memhound import failed: %s: %s" % (type(first).__name__, first))


_memhound_cache = []


def memhound_tracer():
    """memhound, if its tracing engine works here (start/stop round trip)."""
    if _memhound_cache:
        return _memhound_cache[0]
    mh = _import_memhound()
    try:
        mh.start(1)
        mh.stop()
    except Exception as exc:
        raise Unavailable("unavailable", "memhound.start failed: %r" % (exc,))
    _memhound_cache.append(mh)
    return mh


def parse_size(text):
    """Bytes of "512KiB", "1MiB", "4096" (the sampled modes' rates)."""
    units = {"": 1, "K": 1024, "KIB": 1024, "M": 1 << 20, "MIB": 1 << 20}
    digits = text.rstrip("KMiBkmib")
    return int(digits) * units[text[len(digits):].upper()]


def nullhook():
    """benchmarks/nullhook.c, compiled for this interpreter on first use: the
    cost of allocator hooks that do nothing but forward (the floor under
    every hook-based tracer)."""
    import importlib.machinery
    import importlib.util
    import subprocess
    import sysconfig
    suffix = importlib.machinery.EXTENSION_SUFFIXES[0]
    build = os.path.join(tempfile.gettempdir(), "mh-nullhook-%d" % os.getuid())
    os.makedirs(build, exist_ok=True)
    target = os.path.join(build, "_mh_nullhook" + suffix)
    source = os.path.join(HERE, "nullhook.c")
    if not os.path.exists(target) or os.path.getmtime(target) < os.path.getmtime(source):
        cc = (sysconfig.get_config_var("CC") or "cc").split()
        tmp = target + ".%d.tmp" % os.getpid()
        cmd = cc + ["-O2", "-shared", "-fPIC", "-I", sysconfig.get_paths()["include"],
                    source, "-o", tmp]
        try:
            subprocess.run(cmd, check=True, capture_output=True)
        except (OSError, subprocess.CalledProcessError) as exc:
            raise Unavailable("unavailable", "cannot build nullhook.c: %s" % (exc,))
        os.replace(tmp, target)
    spec = importlib.util.spec_from_file_location("_mh_nullhook", target)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def start_tracer(mod, mode):
    """Start `mod` for a mode "tool:nframe" or, sampled, "memhound:nframe:RATE";
    "nullhook" / "nullhook:ref" (forwarding hooks, plus a reference tracer)."""
    parts = mode.split(":")
    if parts[0] == "nullhook":
        mod.start(reftracer=parts[1:] == ["ref"])
    elif len(parts) == 3:
        mod.start(int(parts[1]), sample_every=parse_size(parts[2]))
    else:
        mod.start(int(parts[1]))


def tracer_module(tool):
    if tool == "tracemalloc":
        import tracemalloc
        return tracemalloc
    if tool == "memhound":
        return memhound_tracer()
    if tool == "nullhook":
        return nullhook()
    raise ValueError("not a tracemalloc-style tool: %r" % tool)


def import_peer(name):
    try:
        if name == "memray":
            import memray
            return memray
        if name == "objgraph":
            import objgraph
            return objgraph
        if name == "guppy":
            import guppy
            return guppy
        if name == "pympler":
            import pympler
            return pympler
        if name == "psutil":
            import psutil
            return psutil
    except ImportError as exc:
        raise Unavailable("not installed", "%s: %s" % (name, exc))
    raise ValueError(name)


# --------------------------------------------------------------------------
# Process memory (Linux /proc)
# --------------------------------------------------------------------------

PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def rss_bytes():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * PAGE


def trim_heap():
    """Give free malloc memory back to the OS (glibc malloc_trim), so that a
    tool's temporary memory shows up as RSS growth instead of silently
    reusing pages some earlier phase freed."""
    try:
        import ctypes
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def reset_peak_rss():
    """Reset VmHWM (Linux >= 4.0); returns False where not permitted."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def peak_rss_bytes():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    return 0


# --------------------------------------------------------------------------
# probe: versions and availability
# --------------------------------------------------------------------------

def _dist_version(name):
    try:
        from importlib import metadata
        return metadata.version(name)
    except Exception:
        return None


def task_probe(task):
    import platform
    out = {"python": platform.python_version(),
           "implementation": platform.python_implementation(),
           "executable": sys.executable,
           "build": " ".join(platform.python_build()),
           "compiler": platform.python_compiler(),
           "tools": {}}
    try:
        mh = _import_memhound()
        info = {"version": mh.__version__,
                "path": os.path.dirname(mh.__file__)}
        try:
            memhound_tracer()
            info["status"] = "ok"
        except Unavailable as exc:
            info.update(status=exc.status, reason=exc.reason)
        out["tools"]["memhound"] = info
    except Unavailable as exc:
        out["tools"]["memhound"] = {"status": exc.status, "reason": exc.reason}
    for mod, dist in (("memray", "memray"), ("objgraph", "objgraph"), ("guppy", "guppy3"),
                      ("pympler", "pympler"), ("psutil", "psutil")):
        try:
            import_peer(mod)
            out["tools"][dist] = {"status": "ok", "version": _dist_version(dist)}
        except Unavailable as exc:
            out["tools"][dist] = {"status": exc.status, "reason": exc.reason}
    return out


# --------------------------------------------------------------------------
# 1. Tracing overhead
# --------------------------------------------------------------------------

class _Tracing:
    """Context manager that runs the body under one tracing mode."""

    def __init__(self, mode, tmpdir, run=0):
        self.mode = mode
        self.tmpdir = tmpdir
        self.run = run  # memray needs a new output file per run
        self._exit = None

    def __enter__(self):
        mode = self.mode
        if mode == "untraced":
            self._exit = lambda: None
        elif mode.startswith(("tracemalloc", "memhound", "nullhook")):
            mod = tracer_module(mode.split(":")[0])
            start_tracer(mod, mode)
            self._exit = mod.stop
        elif mode == "memray":
            memray = import_peer("memray")
            path = os.path.join(self.tmpdir, "memray-%d-%d.bin" % (os.getpid(), self.run))
            tracker = memray.Tracker(path, trace_python_allocators=True)
            tracker.__enter__()
            self._exit = lambda: tracker.__exit__(None, None, None)
        else:
            raise ValueError("unknown mode %r" % mode)
        return self

    def __exit__(self, *exc):
        self._exit()


def _paired_runs(timed, func, scale, pairs, budget, tracing):
    """Up to `pairs` untraced/traced pairs of `timed()` runs, until the traced
    runs have used `budget` seconds; `tracing(i)` is the context manager of
    the i-th traced run."""
    times, baseline, ratios = [], [], []
    for i in range(pairs):
        baseline.append(timed())
        with tracing(i):
            func(scale * 0.25)  # warm the tracer's interning tables
            times.append(timed())
        ratios.append(times[-1] / baseline[-1])
        if sum(times) >= budget:
            break
    return {"times": times, "baseline": baseline, "pair_ratios": ratios,
            "paired_ratio": statistics.median(ratios)}


def task_overhead(task):
    """Time one workload under one mode.

    A traced process alternates: the workload untraced, then the tracer
    started, a warm-up call, the workload traced, the tracer stopped; up to
    `pairs` times, until the traced calls have used `budget` seconds.  Each
    pair gives a traced/untraced ratio measured a fraction of a second apart,
    so load from elsewhere on a shared machine hits both sides alike; the
    process reports the median pair ratio and every pair's ratio."""
    import workloads
    func = workloads.WORKLOADS[task["workload"]]
    scale = float(task["scale"])
    pairs = max(1, int(task.get("pairs", 1)))
    budget = float(task.get("budget", 0.0))
    mode = task["mode"]

    def timed():
        gc.collect()
        t0 = _now()
        func(scale)
        return _now() - t0

    with tempfile.TemporaryDirectory(prefix="mhbench-") as tmp:
        if mode != "untraced":  # import the tool (and fail early) before timing
            if mode == "memray":
                import_peer("memray")
            elif mode.startswith("memhound"):
                memhound_tracer()
        func(scale * 0.05)  # import-time and first-call effects, untraced
        if mode == "untraced":
            return {"times": [timed() for _ in range(pairs)]}
        return _paired_runs(timed, func, scale, pairs, budget,
                            lambda i: _Tracing(mode, tmp, run=i))


# --------------------------------------------------------------------------
# Allocation sites shared by sections 2 and 3
# --------------------------------------------------------------------------

def make_sites(n_sites, tmpdir):
    """Write and import a module with `n_sites` allocation functions.

    Site k allocates `(int,)` tuples (a tuple block + an int block each) and is
    called `k % 7` extra frames deep, so tracebacks vary in length like the
    research setup (shared/research/tracemalloc.md section 4.2)."""
    lines = ["BIG = 1 << 40", "",
             "def deep(d, f, n, out):",
             "    if d > 0:",
             "        return deep(d - 1, f, n, out)",
             "    return f(n, out)", ""]
    for k in range(n_sites):
        lines += ["def site_%d(n, out):" % k,
                  "    app = out.append",
                  "    for i in range(n):",
                  "        app((BIG + i,))", ""]
    lines += ["SITES = [%s]" % ", ".join("site_%d" % k for k in range(n_sites)), "",
              "def allocate(n_tuples, out):",
              "    per = max(1, n_tuples // len(SITES))",
              "    for k, f in enumerate(SITES):",
              "        deep(k % 7, f, per, out)", ""]
    path = os.path.join(tmpdir, "mh_bench_sites.py")
    with open(path, "w") as f:
        f.write("\n".join(lines))
    sys.path.insert(0, tmpdir)
    import mh_bench_sites
    return mh_bench_sites


# --------------------------------------------------------------------------
# 2. Snapshot analytics
# --------------------------------------------------------------------------

def _timed_reps(name, fn, reps, budget, setup=None):
    """Run fn up to `reps` times, stopping early once `budget` seconds are
    spent (at least once); returns the list of times."""
    times = []
    spent = 0.0
    for _ in range(reps):
        if setup is not None:
            setup()
        gc.collect()
        t0 = _now()
        res = fn()
        dt = _now() - t0
        del res
        times.append(dt)
        spent += dt
        if spent > budget:
            break
    log("    %-28s %s" % (name, " ".join("%.3f" % t for t in times)))
    return times


def task_snapshot(task):
    tool = task["tool"]
    nframe = int(task["nframe"])
    on = bool(task["tracing_on"])
    reps = int(task["reps"])
    budget = float(task["budget"])
    mod = tracer_module(tool)
    for attr in ("take_snapshot", "Snapshot", "Filter"):
        if not hasattr(mod, attr):
            raise Unavailable("unavailable", "%s.%s is missing" % (tool, attr))
    res = {"ops": {}, "errors": {}}
    with tempfile.TemporaryDirectory(prefix="mhbench-") as tmp:
        sites = make_sites(int(task["sites"]), tmp)
        n = int(task["tuples"])
        keep = []
        mod.start(nframe)
        try:
            t0 = _now()
            sites.allocate(int(n * 0.95), keep)
            res["allocate_s"] = _now() - t0
            old = mod.take_snapshot()
            sites.allocate(n - int(n * 0.95), keep)
            snap = mod.take_snapshot()
            res["traces"] = len(snap.traces)
            res["traced_memory"] = mod.get_traced_memory()[0]
            holder = []

            def take():
                holder.append(mod.take_snapshot())
            try:
                # The previous snapshot is freed in setup, outside the timed call.
                res["ops"]["take_snapshot"] = _timed_reps("take_snapshot", take, reps, budget,
                                                          setup=holder.clear)
            except Exception as exc:
                res["errors"]["take_snapshot"] = repr(exc)
            holder.clear()
        finally:
            if not on:
                mod.stop()
        filters = [mod.Filter(False, "<frozen importlib._bootstrap>"),
                   mod.Filter(False, "<unknown>")]
        dump_path = os.path.join(tmp, "snapshot.bin")
        ops = [
            ("statistics('lineno')", lambda: snap.statistics("lineno")),
            ("statistics('filename')", lambda: snap.statistics("filename")),
            ("statistics('traceback')", lambda: snap.statistics("traceback")),
            ("statistics('lineno', cumulative)", lambda: snap.statistics("lineno", cumulative=True)),
            ("compare_to(old, 'lineno')", lambda: snap.compare_to(old, "lineno")),
            ("filter_traces(2 filters)", lambda: snap.filter_traces(filters)),
            ("dump", lambda: snap.dump(dump_path)),
            ("load", lambda: mod.Snapshot.load(dump_path)),
        ]
        try:
            for name, fn in ops:
                try:
                    res["ops"][name] = _timed_reps(name, fn, reps, budget)
                except Exception as exc:
                    res["errors"][name] = repr(exc)
                    log("    %s failed: %r" % (name, exc))
            if os.path.exists(dump_path):
                res["file_size"] = os.path.getsize(dump_path)
        finally:
            if on:
                mod.stop()
        del keep
    return res


# --------------------------------------------------------------------------
# 3. Tracer memory
# --------------------------------------------------------------------------

def task_memory(task):
    tool = task["tool"]
    n = int(task["tuples"])
    with tempfile.TemporaryDirectory(prefix="mhbench-") as tmp:
        sites = make_sites(int(task["sites"]), tmp)
        keep = []
        sites.allocate(1000, keep)  # import/warm-up effects outside the window
        keep = []
        mode = {"untraced": "untraced", "tracemalloc": "tracemalloc:1",
                "memhound": "memhound:1", "memray": "memray"}[tool]
        with _Tracing(mode, tmp):
            keep2 = []
            sites.allocate(1000, keep2)
            del keep2
            gc.collect()
            trim_heap()
            blocks0 = sys.getallocatedblocks()
            rss0 = rss_bytes()
            sites.allocate(n, keep)
            gc.collect()
            rss1 = rss_bytes()
            blocks1 = sys.getallocatedblocks()
            out = {"rss_before": rss0, "rss_after": rss1, "rss_growth": rss1 - rss0,
                   "blocks": blocks1 - blocks0, "live_tuples": len(keep)}
            if tool in ("tracemalloc", "memhound"):
                mod = tracer_module(tool)
                out["self_reported"] = mod.get_tracemalloc_memory()
                out["traced_memory"] = mod.get_traced_memory()[0]
        if tool == "memray":
            files = [os.path.join(tmp, f) for f in os.listdir(tmp) if f.startswith("memray-")]
            out["capture_file_size"] = sum(os.path.getsize(f) for f in files)
        del keep
    return out


# --------------------------------------------------------------------------
# 4. Leak analysis
# --------------------------------------------------------------------------

def _heap_count():
    objs = gc.get_objects()
    n = len(objs)
    del objs
    return n


def _leak_memhound(task, leakapp, res):
    mh = _import_memhound()
    runs = int(task["runs"])
    per_call = int(task["per_call"])
    frames = int(task.get("frames", 16))
    # Single pass: the runs happen inside the block; memhound's analysis
    # (graph, survivors, paths, tracebacks, causes) runs when the block
    # exits.  Timestamps and RSS go into preallocated arrays so that the
    # benchmark itself leaves no survivor behind.
    import array
    marks = array.array("d", [0.0, 0.0, 0.0, 0.0])
    rss = array.array("q", [0, 0, 0])
    gc.collect()
    trim_heap()
    rss[1] = rss_bytes()
    reset_peak_rss()
    marks[0] = _now()
    with mh.survivors(frames=frames) as s:
        marks[1] = _now()
        for _ in range(runs):
            leakapp.step(per_call)
        rss[2] = peak_rss_bytes()  # peak of the census + runs phase
        trim_heap()
        rss[0] = rss_bytes()
        reset_peak_rss()
        marks[2] = _now()
    marks[3] = _now()
    res["census_s"] = marks[1] - marks[0]
    res["runs_s"] = marks[2] - marks[1]
    res["analysis_s"] = marks[3] - marks[2]
    peak = peak_rss_bytes()
    res["temp_bytes_analysis"] = max(0, peak - rss[0])
    # Everything memhound needed beyond the heap: census taken before the
    # runs (kept until the analysis) plus the analysis itself.
    res["temp_bytes"] = max(0, max(peak, rss[2]) - rss[1])
    report = s.report()
    res["self_reported"] = {k: v for k, v in report.stats.items() if isinstance(v, (int, float))}
    res["api"] = "memhound.survivors(frames=%d), analysis on exit" % frames
    _check_memhound_report(report, leakapp, res)


def _check_memhound_report(report, leakapp, res):
    groups = report.to_dict()["groups"]
    found = []
    for tname, holder, cause in leakapp.GROUPS:
        hit = None
        for g in groups:
            if g["type"] == tname or g["type"].endswith("." + tname):
                hit = g
                if holder in g["path_text"]:
                    break
        found.append({"type": tname, "holder": holder, "group": hit is not None,
                      "path_names_holder": bool(hit) and holder in hit["path_text"],
                      "created_at": bool(hit) and bool(hit["created_at"]),
                      "cause": hit["cause"] if hit else None,
                      "expected_cause": cause,
                      "count": hit["count"] if hit else None})
    res["groups_reported"] = len(groups)
    res["answers"] = found
    res["found"] = sum(1 for f in found if f["path_names_holder"])
    res["causes_right"] = sum(1 for f in found if f["cause"] == f["expected_cause"])


def _leak_objgraph(task, leakapp, res):
    objgraph = import_peer("objgraph")
    devnull = open(os.devnull, "w")
    runs = int(task["runs"])
    per_call = int(task["per_call"])
    peak = {}
    t0 = _now()
    objgraph.show_growth(limit=20, peak_stats=peak, file=devnull)
    res["growth_before_s"] = _now() - t0
    t0 = _now()
    for _ in range(runs):
        leakapp.step(per_call)
    res["runs_s"] = _now() - t0
    gc.collect()
    trim_heap()
    rss0 = rss_bytes()
    reset_peak_rss()
    t0 = _now()
    # show_growth() == growth() + printing; growth() gives us the names to check.
    growth = objgraph.growth(limit=20, peak_stats=peak)
    for name, total, delta in growth:
        devnull.write("%-30s%9d %+9d\n" % (name, total, delta))
    res["growth_after_s"] = _now() - t0
    grown = {name for name, _total, _delta in growth}
    chains_s, answers = [], []
    for g, (tname, holder, _cause) in enumerate(leakapp.GROUPS):
        t1 = _now()
        chain = objgraph.find_backref_chain(leakapp.representative(g), objgraph.is_proper_module)
        chains_s.append(_now() - t1)
        ok = len(chain) > 1 and getattr(chain[0], "__name__", None) == leakapp.__name__
        answers.append({"type": tname, "holder": holder, "path": ok, "chain_len": len(chain),
                        "in_growth": tname in grown})
        del chain
    res["analysis_s"] = res["growth_after_s"] + sum(chains_s)
    res["temp_bytes"] = max(0, peak_rss_bytes() - rss0)
    res["chains_s"] = chains_s
    res["answers"] = answers
    res["found"] = sum(1 for a in answers if a["path"])
    res["api"] = "objgraph.growth() + find_backref_chain(rep, is_proper_module) per group"
    devnull.close()


def _leak_guppy(task, leakapp, res):
    import_peer("guppy")
    from guppy import hpy
    runs = int(task["runs"])
    per_call = int(task["per_call"])
    hp = hpy()
    t0 = _now()
    for _ in range(runs):
        leakapp.step(per_call)
    res["runs_s"] = _now() - t0
    gc.collect()
    trim_heap()
    rss0 = rss_bytes()
    reset_peak_rss()
    t0 = _now()
    h = hp.heap()
    res["heap_objects"] = h.count
    str(h)  # the partition table users look at
    del h
    res["heap_s"] = _now() - t0
    sp_s, answers = [], []
    for g, (tname, holder, _cause) in enumerate(leakapp.GROUPS):
        t1 = _now()
        text = str(hp.iso(leakapp.representative(g)).sp)
        sp_s.append(_now() - t1)
        ok = ("i0_modules['%s']" % leakapp.__name__) in text and holder in text
        answers.append({"type": tname, "holder": holder, "path": ok,
                        "first_path": text.splitlines()[0][:200] if text else ""})
    res["analysis_s"] = res["heap_s"] + sum(sp_s)
    res["temp_bytes"] = max(0, peak_rss_bytes() - rss0)
    res["sp_s"] = sp_s
    res["answers"] = answers
    res["found"] = sum(1 for a in answers if a["path"])
    res["api"] = "guppy hpy().heap() + iso(rep).sp per group"


def task_leaks(task):
    import leakapp
    tool = task["tool"]
    runner = {"memhound": _leak_memhound, "objgraph": _leak_objgraph,
              "guppy3": _leak_guppy}[tool]
    if tool == "memhound":
        _import_memhound()
    elif tool == "objgraph":
        import_peer("objgraph")
    else:
        import_peer("guppy")
    t0 = _now()
    leakapp.build_heap(int(task["heap"]))
    leakapp.step(1)  # warm-up call: first-call effects are not leaks
    leakapp.reset()
    gc.collect()
    res = {"build_s": _now() - t0, "heap_gc_objects": _heap_count()}
    runner(task, leakapp, res)
    return res


TASKS = {"probe": task_probe, "overhead": task_overhead, "snapshot": task_snapshot,
         "memory": task_memory, "leaks": task_leaks}


# --------------------------------------------------------------------------
# 5. Programs: growing live sets, deep stacks, real programs (programs.py)
# --------------------------------------------------------------------------

def _program_tracing(mode, tmpdir, run):
    """_Tracing, plus memray with its default settings (PyMem/PyObject
    allocations reach it only when pymalloc asks the system for arenas)."""
    if mode != "memray-default":
        return _Tracing(mode, tmpdir, run)
    memray = import_peer("memray")
    path = os.path.join(tmpdir, "memray-default-%d-%d.bin" % (os.getpid(), run))
    return memray.Tracker(path)


def _tracer_memory_at_peak(mode, func, scale, tmpdir):
    """One traced run, untimed: the tracer's own memory
    (get_tracemalloc_memory()) and its live traced blocks, read while the
    workload's live set is at its largest."""
    mod = tracer_module(mode.split(":")[0])
    seen = {}

    def at_peak():
        seen["tracer_memory"] = mod.get_tracemalloc_memory()
        seen["traced_bytes"] = mod.get_traced_memory()[0]
        snapshot = mod.take_snapshot()
        seen["live_blocks"] = len(snapshot.traces)
        del snapshot

    gc.collect()
    start_tracer(mod, mode)
    try:
        func(scale, at_peak)
    finally:
        mod.stop()
    if seen.get("live_blocks"):
        seen["bytes_per_block"] = seen["tracer_memory"] / seen["live_blocks"]
    return seen


def task_program(task):
    """Like task_overhead, for a workload of programs.py: untraced and traced
    runs alternate in this one process (one tool per process), the workload's
    setup runs once untraced first; growth workloads also report the tracer's
    memory per live block (memhound and tracemalloc)."""
    import programs
    name = task["workload"]
    func = programs.WORKLOADS[name]
    scale = float(task["scale"])
    pairs = max(1, int(task.get("pairs", 1)))
    budget = float(task.get("budget", 0.0))
    mode = task["mode"]

    def timed():
        gc.collect()
        t0 = _now()
        func(scale)
        return _now() - t0

    with tempfile.TemporaryDirectory(prefix="mhbench-") as tmp:
        if mode.startswith("memray"):
            import_peer("memray")
        elif mode.startswith("memhound"):
            memhound_tracer()
        setup = programs.SETUP.get(name)
        try:
            if setup is not None:
                setup(tmp, scale)
        except programs.ProgramMissing as exc:
            raise Unavailable("not installed", str(exc))
        func(scale * 0.05)  # import-time and first-call effects, untraced
        if mode == "untraced":
            return {"times": [timed() for _ in range(pairs)]}
        out = _paired_runs(timed, func, scale, pairs, budget,
                           lambda i: _program_tracing(mode, tmp, i))
        if task.get("memory") and mode.startswith(("memhound", "tracemalloc")):
            out["memory"] = _tracer_memory_at_peak(mode, func, scale, tmp)
        return out


TASKS["program"] = task_program


def main(argv):
    global _now
    task = json.loads(argv[1])
    _now = time.perf_counter if task.get("clock") == "wall" else time.process_time
    try:
        out = TASKS[task["kind"]](task)
        out.setdefault("status", "ok")
    except Unavailable as exc:
        out = {"status": exc.status, "reason": exc.reason}
    except Exception as exc:
        out = {"status": "error", "reason": "%s: %s" % (type(exc).__name__, exc),
               "traceback": traceback.format_exc()}
    sys.stdout.write("\n%s %s\n" % (RESULT_MARK, json.dumps(out)))
    sys.stdout.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
