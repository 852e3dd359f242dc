#!/usr/bin/env python3
"""memhound benchmarks: memhound side by side with its peers, one command.

    python benchmarks/run.py                 # full run (docs/benchmarks.md tables + results.json)
    python benchmarks/run.py --quick         # CI smoke run: small sizes, few reps
    python benchmarks/run.py --all-pythons    # every supported CPython found, one after another
    python benchmarks/run.py --only overhead --python python3.11 --python python3.13
    python benchmarks/run.py --programs [--quick]   # programs section only

Sections (``--only`` takes one or more, comma separated):

  overhead  traced/untraced time of allocation-heavy workloads: stdlib
            tracemalloc start(1)/start(25), memhound start(1)/start(25),
            memray with Python-allocator tracing.
  snapshot  take_snapshot / statistics / compare_to / filter_traces / dump /
            load at ~1,000,000 live blocks, memhound vs tracemalloc, with
            tracing on and after stop().
  memory    RSS growth per live traced block minus untraced, memhound vs
            tracemalloc vs memray.
  leaks     leak analysis on a 2,000,000-object heap with 1,000 survivors in
            10 groups: memhound vs objgraph vs guppy3.
  programs  (opt-in: --programs) growing live sets, deep stacks and real
            programs (programs.py) under tracemalloc, memhound, memray with
            and without Python allocators; tracer memory per live block.

Every measurement runs in a fresh subprocess (benchmarks/worker.py) of the
Python under test, so tracers never interfere and RSS starts clean.  The
harness itself is stdlib-only; peers come from ``pip install .[bench]`` and a
missing one is reported as "not installed".  Results: markdown tables in
docs/benchmarks.md between ``<!-- bench:start -->`` and ``<!-- bench:end -->`` and
``benchmarks/results.json`` (machine info, versions, raw times).
"""
import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
WORKER = os.path.join(HERE, "worker.py")
RESULT_MARK = "@@RESULT@@"
START_MARK = "<!-- bench:start -->"
END_MARK = "<!-- bench:end -->"
SECTIONS = ("overhead", "snapshot", "memory", "leaks")
# Opt-in sections: run only when named (--only, or --programs).
EXTRA_SECTIONS = ("programs",)
SCHEMA = 1
CLOCK = ["cpu"]  # set from --clock

WORKLOAD_NAMES = ["small_objs", "json", "class_churn", "str_format", "small_objs_depth30"]
# memhound:1:64KiB: sampled tracing, start(1, sample_every=64 KiB) (docs/production.md).
OVERHEAD_MODES = ["untraced", "tracemalloc:1", "memhound:1", "tracemalloc:25",
                  "memhound:25", "memray", "memhound:1:64KiB"]
PROGRAM_WORKLOADS = (["grow_%s_%s" % (kind, size)
                      for kind in ("dicts", "lists", "dataclasses", "slots", "strings")
                      for size in ("100k", "1M")]
                     + ["depth_30", "depth_60", "depth_100"]
                     + ["black", "pytest_suite", "json_doc", "pickle_doc", "wsgi"])
# memray-default: memray.Tracker(path) with its default settings;
# memray: trace_python_allocators=True (every PyMem/PyObject call).
PROGRAM_MODES = ["tracemalloc:1", "memhound:1", "memhound:25", "memray", "memray-default",
                 "memhound:1:64KiB"]

FULL = {
    "reps": 5,                  # repetitions (fresh processes) per measurement
    "overhead_scale": 1.0,      # workload size; 1.0 = research notes' sizes
    "overhead_pairs": 7,        # untraced/traced pairs per process ...
    "overhead_budget": 3.0,     # ... until the traced calls took this many seconds
    "overhead_modes": OVERHEAD_MODES,
    "workloads": WORKLOAD_NAMES,
    "snapshot_tuples": 500_000,  # (int,) tuples -> ~1,000,000 live blocks
    "snapshot_sites": 200,
    # (frames, analysis while tracing?) pairs.  start(25) with tracing ON is
    # left out by default: tracemalloc then needs minutes per operation.
    "snapshot_configs": [[1, True], [1, False], [25, False]],
    "snapshot_budget": 10.0,    # seconds per operation before fewer reps are taken
    "memory_tuples": 500_000,
    "memory_sites": 200,
    "leak_heap": 2_000_000,     # GC objects in the background heap
    "leak_runs": 5,
    "leak_per_group": 100,      # survivors per group (10 groups)
    "leak_tools": ["memhound", "objgraph", "guppy3"],
    "timeout": 1800,
    # programs section (--programs): workloads of programs.py
    "programs_workloads": PROGRAM_WORKLOADS,
    "programs_modes": PROGRAM_MODES,
    "programs_scale": 1.0,
    "programs_reps": 3,         # fresh processes per cell
    "programs_pairs": 3,        # untraced/traced pairs per process ...
    "programs_budget": 4.0,     # ... until the traced runs took this many seconds
}

QUICK = dict(FULL, **{
    "reps": 3,
    "overhead_scale": 0.05,
    "overhead_pairs": 2,
    "overhead_budget": 0.2,
    "snapshot_tuples": 20_000,
    "snapshot_sites": 50,
    "snapshot_configs": [[1, True], [1, False]],
    "snapshot_budget": 1.0,
    "memory_tuples": 100_000,
    "memory_sites": 50,
    "leak_heap": 50_000,
    "leak_per_group": 20,
    "timeout": 300,
    "programs_workloads": ["grow_dicts_100k", "grow_strings_100k", "depth_100", "black",
                           "pytest_suite", "json_doc", "pickle_doc", "wsgi"],
    "programs_modes": ["tracemalloc:1", "memhound:1", "memray"],
    "programs_scale": 0.02,
    "programs_reps": 1,
    "programs_pairs": 1,
})


def log(msg):
    print(msg, flush=True)


# --------------------------------------------------------------------------
# Running workers
# --------------------------------------------------------------------------

def run_worker(python, task, timeout, verbose=False):
    """Run one task in a fresh interpreter; always returns a result dict."""
    task = dict(task, clock=CLOCK[0])
    cmd = [python, WORKER, json.dumps(task)]
    env = dict(os.environ)
    env.setdefault("PYTHONHASHSEED", "0")
    env.pop("PYTHONTRACEMALLOC", None)
    env.pop("PYTHONMALLOC", None)
    try:
        proc = subprocess.run(cmd, cwd=HERE, env=env, timeout=timeout,
                              stdout=subprocess.PIPE,
                              stderr=None if verbose else subprocess.PIPE,
                              universal_newlines=True)
    except subprocess.TimeoutExpired:
        return {"status": "timeout", "reason": "no result after %d s" % timeout}
    except OSError as exc:
        return {"status": "error", "reason": "cannot run %s: %s" % (python, exc)}
    for line in reversed(proc.stdout.splitlines()):
        if line.startswith(RESULT_MARK):
            return json.loads(line[len(RESULT_MARK):])
    tail = (proc.stderr or "")[-800:]
    return {"status": "error",
            "reason": "worker exited with %s and no result: %s" % (proc.returncode, tail.strip())}


def med(values):
    return statistics.median(values) if values else None


# --------------------------------------------------------------------------
# Sections
# --------------------------------------------------------------------------

def _skip_reason(ctx, mode_or_tool):
    """Status of a tool the probe found unusable (so its cells are not retried)."""
    tool = mode_or_tool.split(":")[0]
    return ctx["unusable"].get(tool)


def round_robin(reps, workloads, modes):
    """(i, total, rep, workload, mode) for every cell of every repetition,
    round-robin over the modes so that load from elsewhere on the machine
    hits every mode alike."""
    total = reps * len(workloads) * len(modes)
    i = 0
    for rep in range(reps):
        for w in workloads:
            for m in modes:
                i += 1
                yield i, total, rep, w, m


def section_overhead(py, cfg, ctx):
    modes, workloads = cfg["overhead_modes"], cfg["workloads"]
    samples = {w: {m: [] for m in modes} for w in workloads}
    paired = {w: {m: [] for m in modes} for w in workloads}
    status = {w: {m: _skip_reason(ctx, m) or "ok" for m in modes} for w in workloads}
    for i, total, rep, w, m in round_robin(cfg["reps"], workloads, modes):
        if status[w][m] != "ok":
            if rep == 0:
                log("  [overhead %d/%d] %-20s %-15s %s" % (i, total, w, m, status[w][m]))
            continue  # unavailable/failed once: do not retry every rep
        r = run_worker(py, {"kind": "overhead", "workload": w, "mode": m,
                            "scale": cfg["overhead_scale"],
                            "pairs": cfg["overhead_pairs"],
                            "budget": cfg["overhead_budget"]},
                       cfg["timeout"], ctx["verbose"])
        if r["status"] == "ok":
            samples[w][m].extend(r["times"])
            shown = "median %.3f s of %d" % (med(r["times"]), len(r["times"]))
            if r.get("pair_ratios"):
                paired[w][m].extend(r["pair_ratios"])
                shown += "  (%.2fx of %.3f s untraced, median of %d pairs)" % (
                    r["paired_ratio"], med(r["baseline"]), len(r["pair_ratios"]))
        else:
            status[w][m] = r["status"] + ": " + r.get("reason", "")
            shown = status[w][m]
        log("  [overhead %d/%d] rep %d %-20s %-15s %s" % (i, total, rep + 1, w, m, shown))
    out = {}
    for w in workloads:
        base = med(samples[w].get("untraced", []))
        row = {}
        for m in modes:
            t = med(samples[w][m])
            e = {"status": "ok" if t is not None else status[w][m],
                 "times": samples[w][m], "median_s": t,
                 "paired_ratios": paired[w][m],
                 # across processes: median traced time / median untraced-process time
                 "ratio_unpaired": (t / base) if (t is not None and base) else None}
            # reported: median of the traced/untraced ratios of all pairs
            e["ratio"] = med(paired[w][m]) if paired[w][m] else (1.0 if m == "untraced" and t else None)
            row[m] = e
        out[w] = row
    return out


def section_snapshot(py, cfg, ctx):
    out = {"tuples": cfg["snapshot_tuples"], "sites": cfg["snapshot_sites"], "runs": []}
    for nframe, on in cfg["snapshot_configs"]:
        for tool in ("tracemalloc", "memhound"):
            log("  [snapshot] %s start(%d) analysis with tracing %s"
                % (tool, nframe, "ON" if on else "off (after stop())"))
            skip = _skip_reason(ctx, tool)
            task = {"kind": "snapshot", "tool": tool, "nframe": nframe, "tracing_on": on,
                    "tuples": cfg["snapshot_tuples"], "sites": cfg["snapshot_sites"],
                    "reps": cfg["reps"], "budget": cfg["snapshot_budget"]}
            if skip:
                r = {"status": skip.split(":")[0], "reason": skip}
            else:
                r = run_worker(py, task, cfg["timeout"], ctx["verbose"])
            if r["status"] != "ok":
                log("    -> %s: %s" % (r["status"], r.get("reason", "")))
            else:
                log("    -> %s traces, allocate %.2f s" % (r.get("traces"), r.get("allocate_s", 0)))
            r.update(tool=tool, nframe=nframe, tracing_on=on)
            out["runs"].append(r)
    return out


def section_memory(py, cfg, ctx):
    tools = ["untraced", "tracemalloc", "memhound", "memray"]
    raw = {t: [] for t in tools}
    status = {t: _skip_reason(ctx, t) or "ok" for t in tools}
    for rep in range(cfg["reps"]):
        for t in tools:
            if status[t] != "ok":
                continue
            r = run_worker(py, {"kind": "memory", "tool": t, "tuples": cfg["memory_tuples"],
                                "sites": cfg["memory_sites"]}, cfg["timeout"], ctx["verbose"])
            if r["status"] == "ok":
                raw[t].append(r)
                shown = "RSS +%.1f MB, %d blocks" % (r["rss_growth"] / 1e6, r["blocks"])
            else:
                status[t] = r["status"] + ": " + r.get("reason", "")
                shown = status[t]
            log("  [memory] rep %d %-12s %s" % (rep + 1, t, shown))
    base_growth = med([r["rss_growth"] for r in raw["untraced"]])
    blocks = med([r["blocks"] for r in raw["untraced"]])
    out = {"tuples": cfg["memory_tuples"], "blocks": blocks, "tools": {}}
    for t in tools:
        if not raw[t]:
            out["tools"][t] = {"status": status[t]}
            continue
        growth = med([r["rss_growth"] for r in raw[t]])
        entry = {"status": "ok", "rss_growth": growth, "raw": raw[t]}
        if t != "untraced" and base_growth is not None and blocks:
            entry["bytes_per_block"] = (growth - base_growth) / blocks
        if "self_reported" in raw[t][0] and blocks:
            entry["self_reported_per_block"] = med([r["self_reported"] for r in raw[t]]) / blocks
        if "capture_file_size" in raw[t][0] and blocks:
            entry["capture_file_per_block"] = med([r["capture_file_size"] for r in raw[t]]) / blocks
        out["tools"][t] = entry
    return out


def section_leaks(py, cfg, ctx):
    tools = cfg["leak_tools"]
    raw = {t: [] for t in tools}
    # memhound's leak API is probed by the worker itself (it may exist while
    # the tracer does not, or the reverse).
    status = {t: (_skip_reason(ctx, t) if t != "memhound" else None) or "ok" for t in tools}
    per_call = max(1, cfg["leak_per_group"] // cfg["leak_runs"])
    for rep in range(cfg["reps"]):
        for t in tools:
            if status[t] != "ok":
                continue
            r = run_worker(py, {"kind": "leaks", "tool": t, "heap": cfg["leak_heap"],
                                "runs": cfg["leak_runs"], "per_call": per_call},
                           cfg["timeout"], ctx["verbose"])
            if r["status"] == "ok":
                raw[t].append(r)
                shown = "heap %d gc objects, analysis %s s, paths found %s/10" % (
                    r.get("heap_gc_objects", 0),
                    "%.3f" % r["analysis_s"] if r.get("analysis_s") is not None else "?",
                    r.get("found"))
            else:
                status[t] = r["status"] + ": " + r.get("reason", "")
                shown = status[t]
            log("  [leaks] rep %d %-9s %s" % (rep + 1, t, shown))
    out = {"heap": cfg["leak_heap"], "runs": cfg["leak_runs"], "per_call": per_call,
           "survivors": per_call * cfg["leak_runs"] * 10, "tools": {}}
    for t in tools:
        if not raw[t]:
            out["tools"][t] = {"status": status[t]}
            continue
        heap = med([r["heap_gc_objects"] for r in raw[t]])
        entry = {"status": "ok", "raw": raw[t], "heap_gc_objects": heap,
                 "api": raw[t][0].get("api"),
                 "found": min(r.get("found") or 0 for r in raw[t])}
        if any("causes_right" in r for r in raw[t]):
            entry["causes_right"] = min(r.get("causes_right") or 0 for r in raw[t])
        for key in ("analysis_s", "census_s", "total_s", "runs_s", "heap_s", "growth_after_s"):
            vals = [r[key] for r in raw[t] if r.get(key) is not None]
            if vals:
                entry[key] = med(vals)
        temps = [r["temp_bytes"] for r in raw[t] if r.get("temp_bytes") is not None]
        if temps and heap:
            entry["temp_bytes_per_object"] = med(temps) / heap
        out["tools"][t] = entry
    return out


def section_programs(py, cfg, ctx):
    """Growth, depth and real-program workloads (programs.py): one process per
    (workload, tool, rep), each alternating untraced and traced runs; the
    cell is the median of every pair's traced/untraced ratio."""
    modes, workloads = cfg["programs_modes"], cfg["programs_workloads"]
    cells = {w: {m: {"status": _skip_reason(ctx, m.split("-")[0]) or "ok", "pair_ratios": [],
                     "times": [], "baseline": [], "memory": []} for m in modes}
             for w in workloads}
    for i, total, rep, w, m in round_robin(cfg["programs_reps"], workloads, modes):
        cell = cells[w][m]
        if cell["status"] != "ok":
            if rep == 0:
                log("  [programs %d/%d] %-22s %-15s %s" % (i, total, w, m, cell["status"]))
            continue
        r = run_worker(py, {"kind": "program", "workload": w, "mode": m,
                            "scale": cfg["programs_scale"],
                            "pairs": cfg["programs_pairs"],
                            "budget": cfg["programs_budget"],
                            # the tracer's memory once per cell, growth/depth only
                            "memory": rep == 0 and w not in PROGRAM_REAL},
                       cfg["timeout"], ctx["verbose"])
        if r["status"] == "ok":
            cell["pair_ratios"].extend(r["pair_ratios"])
            cell["times"].extend(r["times"])
            cell["baseline"].extend(r["baseline"])
            shown = "%.2fx of %.3f s untraced (median of %d pairs)" % (
                r["paired_ratio"], med(r["baseline"]), len(r["pair_ratios"]))
            if r.get("memory"):
                cell["memory"].append(r["memory"])
                if r["memory"].get("bytes_per_block") is not None:
                    shown += "; %.1f B tracer memory per live block" % (
                        r["memory"]["bytes_per_block"])
        else:
            cell["status"] = r["status"] + ": " + r.get("reason", "")
            shown = cell["status"]
        log("  [programs %d/%d] rep %d %-22s %-15s %s" % (i, total, rep + 1, w, m, shown))
    out = {"workloads": {}, "geomean": {}}
    for w in workloads:
        row = {}
        for m in modes:
            cell = cells[w][m]
            if cell["pair_ratios"]:
                cell["status"] = "ok"
            cell["ratio"] = med(cell["pair_ratios"])
            if cell["memory"]:
                cell["bytes_per_block"] = med([x["bytes_per_block"] for x in cell["memory"]
                                               if x.get("bytes_per_block") is not None] or [None])
            row[m] = cell
        baselines = [t for cell in row.values() for t in cell["baseline"]]
        out["workloads"][w] = {"untraced_s": med(baselines), "modes": row}
    for m in modes:
        ratios = [out["workloads"][w]["modes"][m]["ratio"] for w in workloads
                  if w in PROGRAM_REAL]
        if ratios and all(r is not None for r in ratios):
            out["geomean"][m] = geomean(ratios)
    return out


PROGRAM_REAL = ("black", "pytest_suite", "json_doc", "pickle_doc", "wsgi")


def geomean(values):
    import math
    return math.exp(sum(math.log(v) for v in values) / len(values))


SECTION_FUNCS = {"overhead": section_overhead, "snapshot": section_snapshot,
                 "memory": section_memory, "leaks": section_leaks,
                 "programs": section_programs}


# --------------------------------------------------------------------------
# Machine information
# --------------------------------------------------------------------------

def find_python(version):
    """Path of a CPython `version` ('3.12'): pyenv's install first, then PATH."""
    try:
        prefix = subprocess.run(["pyenv", "prefix", version], stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, universal_newlines=True,
                                timeout=30).stdout.strip()
        exe = os.path.join(prefix, "bin", "python" + version)
        if prefix and os.path.exists(exe):
            return exe
    except (OSError, subprocess.SubprocessError):
        pass
    import shutil
    return shutil.which("python" + version)


def machine_info():
    info = {"platform": platform.platform(), "kernel": platform.release(),
            "machine": platform.machine(), "cores": os.cpu_count()}
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    info["memory_gib"] = round(int(line.split()[1]) / 1024 / 1024, 1)
    except OSError:
        pass
    try:
        info["loadavg_at_start"] = list(os.getloadavg())
    except OSError:
        pass
    try:
        info["git_commit"] = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL, universal_newlines=True, timeout=10).stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        info["git_commit"] = None
    return info


# --------------------------------------------------------------------------
# Rendering
# --------------------------------------------------------------------------

def fmt_s(t):
    if t is None:
        return "–"
    if t < 0.01:
        return "%.2f ms" % (t * 1e3)
    if t < 1:
        return "%.0f ms" % (t * 1e3) if t >= 0.1 else "%.1f ms" % (t * 1e3)
    return "%.2f s" % t


def fmt_x(r):
    return "–" if r is None else "%.2f×" % r


def fmt_bytes(b):
    return "–" if b is None else "%.1f B" % b


def cell_status(entry):
    """'unavailable'/'not installed'/... for a failed cell, else None."""
    st = (entry or {}).get("status", "missing")
    if st == "ok":
        return None
    return st.split(":")[0]


TARGETS = [
    ("overhead1", "Issue 3: overhead with memhound start(1) ≤ 1.5× on every workload"),
    ("overhead25", "Issue 3: overhead with memhound start(25) ≤ 2.0× on every workload"),
    ("snapshot", "Issue 3: snapshot analytics ≥ 10× faster than tracemalloc, tracing on and off"),
    ("memory", "Issue 3: ≤ 32 bytes of metadata per live traced block (RSS)"),
    ("leak_time", "Issue 4: leak analysis ≤ 1.0 s (2,000,000-object heap)"),
    ("leak_mem", "Issue 4: ≤ 64 bytes of temporary memory per heap object"),
    ("programs1", "Issue 19: memhound start(1) ≤ 1.5× on every programs workload"),
    ("programs25", "Issue 19: memhound start(25) ≤ 2.0× on every programs workload"),
    ("programs_memray", "Issue 19: memhound start(1) never slower than memray (Python allocators)"),
    ("programs_geomean", "Issue 19: memhound start(1) geometric mean ≤ 1.3× over the real programs"),
    ("programs_memory", "Issue 19: memhound's own memory ≤ 24 B per live traced block"),
]

MODE_LABELS = {"untraced": "untraced", "tracemalloc:1": "tracemalloc start(1)",
               "tracemalloc:25": "tracemalloc start(25)", "memhound:1": "memhound start(1)",
               "memhound:25": "memhound start(25)", "memray": "memray (Python allocators)",
               "memray-default": "memray default",
               "memhound:1:64KiB": "memhound sampled 64 KiB",
               "nullhook": "forwarding hooks only", "nullhook:ref": "forwarding hooks + reftracer"}


def _tcat(mode):
    return "overhead1" if mode.endswith(":1") else "overhead25"


def _render_targets(targets, quick=False):
    """One line per target of issues 3/4: met / missed (which, by how much) / not measured."""
    lines = ["Targets:" if not quick else
             "Targets (quick run: smaller sizes than the targets assume, indicative only):", ""]
    for cat, title in TARGETS:
        items = [(t[1], t[2]) for t in targets if t[0] == cat]
        worst = max((t for t in targets if t[0] == cat and t[1] and len(t) > 3),
                    key=lambda t: t[3], default=None)
        if not items:
            continue
        met = [t for ok, t in items if ok]
        missed = [t for ok, t in items if ok is False]
        unmeasured = [t for ok, t in items if ok is None]
        if unmeasured and not met and not missed:
            verdict = "not measured (memhound %s)" % unmeasured[0].split()[-1]
        elif not missed and not unmeasured:
            if len(met) > 6 and worst is not None:
                verdict = "**met** (%d/%d; closest: %s)" % (len(met), len(items), worst[2])
            else:
                verdict = "**met** (%d/%d: %s)" % (len(met), len(items), ", ".join(met))
        else:
            verdict = "**missed** on %d of %d: %s" % (len(missed), len(items), ", ".join(missed))
            if unmeasured:
                verdict += "; not measured: %s" % ", ".join(unmeasured)
        lines.append("- %s — %s" % (title, verdict))
    lines.append("")
    return lines


def render_python(pyres, cfg, command):
    # A combined results file (--combine) keeps the settings of the run that
    # measured each section.
    base_cfg = cfg
    lines = []
    v = pyres["versions"]
    mh = v["tools"].get("memhound", {})
    mh_desc = "memhound %s" % (mh.get("version") or "?")
    if mh.get("status") != "ok":
        mh_desc += " (%s: %s)" % (mh.get("status"), mh.get("reason", ""))
    peers = ", ".join("%s %s" % (n, v["tools"][n].get("version") or v["tools"][n].get("status"))
                      for n in ("memray", "objgraph", "guppy3") if n in v["tools"])
    lines.append("### CPython %s — %s; %s" % (v["python"], mh_desc, peers))
    lines.append("")
    targets = []
    secs = pyres["sections"]

    if "overhead" in secs:
        cfg = pyres.get("section_config", {}).get("overhead", base_cfg)
        o = secs["overhead"]
        pairs = cfg.get("overhead_pairs", 1)
        lines += ["**Tracing overhead** — traced time / untraced time (lower is better): %d fresh "
                  "processes per cell, each alternating the workload untraced and traced up to %d "
                  "times (until the traced runs took %.0f s); the cell is the median ratio of all "
                  "those pairs. \"tm/mh\" = how many times more overhead "
                  "tracemalloc adds than memhound (ratio of the traced/untraced ratios)."
                  % (cfg["reps"], pairs, cfg.get("overhead_budget", 0)), "",
                  "| workload | untraced | tracemalloc start(1) | memhound start(1) | tm/mh | "
                  "tracemalloc start(25) | memhound start(25) | tm/mh | memray (Python allocators) | memray/mh(1) |",
                  "|---|---|---|---|---|---|---|---|---|---|"]
        order = [w for w in cfg.get("workloads", []) if w in o] + sorted(w for w in o if w not in cfg.get("workloads", []))
        for w in order:
            row = o[w]
            def c(m):
                e = row.get(m)
                if e is None:
                    return "not run"
                return cell_status(e) or fmt_x(e["ratio"])

            def rel(a, b):
                ea, eb = row.get(a) or {}, row.get(b) or {}
                if ea.get("ratio") and eb.get("ratio"):
                    return fmt_x(ea["ratio"] / eb["ratio"])
                return "–"
            base = row.get("untraced", {}).get("median_s")
            lines.append("| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |" % (
                w, fmt_s(base), c("tracemalloc:1"), c("memhound:1"), rel("tracemalloc:1", "memhound:1"),
                c("tracemalloc:25"), c("memhound:25"), rel("tracemalloc:25", "memhound:25"),
                c("memray"), rel("memray", "memhound:1")))
            for m, limit in (("memhound:1", 1.5), ("memhound:25", 2.0)):
                r = (row.get(m) or {}).get("ratio")
                if r is not None:
                    targets.append((_tcat(m), r <= limit, "%s %.2f×" % (w, r)))
                elif m in row:
                    targets.append((_tcat(m), None, "%s %s" % (w, cell_status(row[m]))))
        lines.append("")

    if "snapshot" in secs:
        cfg = pyres.get("section_config", {}).get("snapshot", base_cfg)
        s = secs["snapshot"]
        runs = s["runs"]
        lines += ["**Snapshot analytics** — %d `(int,)` tuples from %d allocation sites at call depth 0–6 "
                  "(≈%d live blocks); median time of up to %d runs per operation (n = runs taken; fewer "
                  "when one run exceeds the time budget). \"ON\" = analysis while still tracing, \"off\" "
                  "= after `stop()`." % (s["tuples"], s["sites"], 2 * s["tuples"], cfg["reps"]), "",
                  "| operation | frames | tracing | tracemalloc | memhound | speed-up (target ≥ 10×) |",
                  "|---|---|---|---|---|---|"]
        by = {(r["tool"], r["nframe"], r["tracing_on"]): r for r in runs}
        for nframe, on in cfg["snapshot_configs"]:
            tm = by.get(("tracemalloc", nframe, on), {})
            mh_r = by.get(("memhound", nframe, on), {})
            names = list((tm.get("ops") or {}).keys()) or list((mh_r.get("ops") or {}).keys())
            for extra in list((mh_r.get("ops") or {}).keys()):
                if extra not in names:
                    names.append(extra)
            has_on = [nframe, True] in [list(c) for c in cfg["snapshot_configs"]]
            first = on or not has_on  # rows shown once per frame count
            for op in names:
                if op == "take_snapshot" and not first:
                    continue  # taken while tracing in both runs; shown once
                cells = []
                meds = []
                for r in (tm, mh_r):
                    st = cell_status(r)
                    if st:
                        cells.append(st)
                        meds.append(None)
                        continue
                    times = (r.get("ops") or {}).get(op)
                    if not times:
                        err = (r.get("errors") or {}).get(op)
                        cells.append("failed: %s" % err[:60] if err else "–")
                        meds.append(None)
                        continue
                    m = med(times)
                    meds.append(m)
                    cells.append("%s (n=%d)" % (fmt_s(m), len(times)))
                sp = meds[0] / meds[1] if meds[0] and meds[1] else None
                # take_snapshot can only run while tracing, whatever the configuration.
                shown_on = on or op == "take_snapshot"
                lines.append("| %s | %d | %s | %s | %s | %s |" % (
                    op, nframe, "ON" if shown_on else "off", cells[0], cells[1], fmt_x(sp)))
                if sp is not None:
                    targets.append(("snapshot", sp >= 10, "%s start(%d) %s %.1f×"
                                    % (op, nframe, "ON" if shown_on else "off", sp), -sp))
                elif not cell_status(tm):
                    targets.append(("snapshot", None, "%s start(%d) %s %s"
                                    % (op, nframe, "ON" if on else "off",
                                       cell_status(mh_r) or "failed")))
            if first:
                fs = [r.get("file_size") for r in (tm, mh_r)]
                if any(fs):
                    lines.append("| dump file size | %d | – | %s | %s | %s |" % (
                        nframe, "%.1f MB" % (fs[0] / 1e6) if fs[0] else "–",
                        "%.1f MB" % (fs[1] / 1e6) if fs[1] else "–",
                        fmt_x(fs[0] / fs[1]) + " smaller" if fs[0] and fs[1] else "–"))
        lines.append("")

    if "memory" in secs:
        cfg = pyres.get("section_config", {}).get("memory", base_cfg)
        m = secs["memory"]
        t = m["tools"]
        blocks = m.get("blocks")
        lines += ["**Tracer memory** — RSS growth (Linux `/proc/self/statm`) while %d `(int,)` tuples "
                  "(%s live blocks by `sys.getallocatedblocks()`) are allocated under the tracer, minus the "
                  "same work untraced (%s), per live block; median of %d fresh processes."
                  % (m["tuples"], blocks if blocks is not None else "?",
                     "%.1f MB" % (t["untraced"]["rss_growth"] / 1e6)
                     if t.get("untraced", {}).get("status") == "ok" else "unavailable", cfg["reps"]), "",
                  "| peer | peer bytes/block | memhound bytes/block (target ≤ 32 B) | peer / memhound | notes |",
                  "|---|---|---|---|---|"]
        mhe = t.get("memhound", {})
        mh_b = mhe.get("bytes_per_block")
        for peer in ("tracemalloc", "memray"):
            pe = t.get(peer, {})
            pb = pe.get("bytes_per_block")
            notes = []
            if pe.get("self_reported_per_block") is not None:
                notes.append("tracemalloc self-reports %.1f B/block" % pe["self_reported_per_block"])
            if mhe.get("self_reported_per_block") is not None and peer == "tracemalloc":
                notes.append("memhound self-reports %.1f B/block" % mhe["self_reported_per_block"])
            if pe.get("capture_file_per_block") is not None:
                notes.append("memray keeps its data in a capture file: %.1f B/block written"
                             % pe["capture_file_per_block"])
            lines.append("| %s | %s | %s | %s | %s |" % (
                peer, cell_status(pe) or fmt_bytes(pb), cell_status(mhe) or fmt_bytes(mh_b),
                fmt_x(pb / mh_b) if (pb and pb > 1 and mh_b and mh_b > 1) else "–", "; ".join(notes)))
        if mh_b is not None:
            targets.append(("memory", mh_b <= 32, "%.1f B per live block" % mh_b))
        else:
            targets.append(("memory", None, cell_status(mhe)))
        lines.append("")

    if "leaks" in secs:
        cfg = pyres.get("section_config", {}).get("leaks", base_cfg)
        lk = secs["leaks"]
        t = lk["tools"]
        heaps = [e.get("heap_gc_objects") for e in t.values() if e.get("heap_gc_objects")]
        lines += ["**Leak analysis** — background heap of %s GC objects, %d survivors in 10 groups behind 10 "
                  "different holders (module list/dict/deque/set, class attribute, instance attribute chain, "
                  "closure, lru_cache, suspended generator, exception traceback; 2 groups are untracked "
                  "str/bytes). Time of the analysis after the runs (what survived, a path from a named root "
                  "for every group); temporary memory = peak RSS during the analysis minus RSS before, per "
                  "heap object (for memhound from before its census, which it takes before the runs); median of %d fresh processes. objgraph/guppy3 are handed the representative "
                  "object of each group (they cannot find untracked survivors themselves), memhound finds "
                  "them itself and also reports creation tracebacks and causes."
                  % (int(med(heaps)) if heaps else lk["heap"], lk["survivors"], cfg["reps"]), "",
                  "| peer (what it runs) | peer paths found | peer analysis | memhound paths found "
                  "| memhound analysis (target ≤ 1.0 s) | speed-up | peer temp B/object | memhound temp B/object "
                  "(target ≤ 64 B) |",
                  "|---|---|---|---|---|---|---|---|"]
        mhe = t.get("memhound", {})
        mh_time = mhe.get("analysis_s")
        for peer in ("objgraph", "guppy3"):
            if peer not in t:
                continue
            pe = t[peer]
            pt = pe.get("analysis_s")
            lines.append("| %s (%s) | %s | %s | %s | %s | %s | %s | %s |" % (
                peer, pe.get("api") or "–",
                cell_status(pe) or "%s/10" % pe.get("found"), cell_status(pe) or fmt_s(pt),
                cell_status(mhe) or "%s/10 (causes right: %s/10)" % (mhe.get("found"), mhe.get("causes_right")),
                cell_status(mhe) or (fmt_s(mh_time) + (" (+ %s census before the runs)" % fmt_s(mhe["census_s"])
                                                        if mhe.get("census_s") is not None else "")),
                fmt_x(pt / mh_time) if (pt and mh_time) else "–",
                cell_status(pe) or fmt_bytes(pe.get("temp_bytes_per_object")),
                cell_status(mhe) or fmt_bytes(mhe.get("temp_bytes_per_object"))))
        if mh_time is not None:
            targets.append(("leak_time", mh_time <= 1.0, "%.3f s" % mh_time))
            tb = mhe.get("temp_bytes_per_object")
            if tb is not None:
                targets.append(("leak_mem", tb <= 64, "%.1f B per heap object" % tb))
        else:
            targets.append(("leak_time", None, cell_status(mhe)))
        lines.append("")

    if "programs" in secs:
        cfg = pyres.get("section_config", {}).get("programs", base_cfg)
        lines += _render_programs(secs["programs"], cfg, targets)

    if targets:
        lines += _render_targets(targets, cfg.get("quick"))
    return lines


def _render_programs(sec, cfg, targets):
    modes = cfg["programs_modes"]
    lines = ["**Programs** — traced time / untraced time (lower is better) of workloads that build "
             "data: growing live sets (kept alive until the workload returns), the dict growth "
             "30/60/100 frames deep, and real programs. %d fresh process(es) per cell (one tool "
             "each), each alternating the workload untraced and traced up to %d times (until the "
             "traced runs took %.0f s); the cell is the median ratio of all those pairs; scale "
             "%g. \"B/block\" = the tracer's own memory (`get_tracemalloc_memory()`) divided by "
             "its live traced blocks (`len(take_snapshot().traces)`), read while the live set "
             "is at its largest. memray default = `Tracker(path)`; memray (Python allocators) "
             "= `Tracker(path, trace_python_allocators=True)`."
             % (cfg["programs_reps"], cfg["programs_pairs"], cfg["programs_budget"],
                cfg["programs_scale"]), ""]
    mem_modes = [m for m in ("memhound:1", "tracemalloc:1") if m in modes]
    header = (["workload", "kind", "untraced"] + [MODE_LABELS.get(m, m) for m in modes]
              + ["%s B/block" % m.split(":")[0] for m in mem_modes]
              + (["memray/mh(1)"] if "memray" in modes and "memhound:1" in modes else []))
    lines += ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    import programs as workload_defs
    for w in cfg["programs_workloads"]:
        entry = sec["workloads"].get(w)
        if entry is None:
            continue
        row = entry["modes"]
        kind = workload_defs.KIND.get(w, "?")
        cells = [w, kind, fmt_s(entry.get("untraced_s"))]
        for m in modes:
            c = row.get(m, {})
            cells.append(cell_status(c) or fmt_x(c.get("ratio")))
        for m in mem_modes:
            cells.append(fmt_bytes(row.get(m, {}).get("bytes_per_block")))
        mh = row.get("memhound:1", {}).get("ratio")
        if "memray" in modes and "memhound:1" in modes:
            mr = row.get("memray", {}).get("ratio")
            cells.append(fmt_x(mr / mh) if mr and mh else "–")
            if mr and mh:
                targets.append(("programs_memray", mh <= mr, "%s %.2f× vs %.2f×" % (w, mh, mr)))
        lines.append("| " + " | ".join(cells) + " |")
        for m, cat, limit in (("memhound:1", "programs1", 1.5), ("memhound:25", "programs25", 2.0)):
            r = row.get(m, {}).get("ratio")
            if r is not None:
                targets.append((cat, r <= limit, "%s %.2f×" % (w, r), r))
        b = row.get("memhound:1", {}).get("bytes_per_block")
        if b is not None:
            targets.append(("programs_memory", b <= 24, "%s %.1f B" % (w, b), b))
    geo = sec.get("geomean") or {}
    if geo:
        cells = ["**geometric mean, real programs**", "", ""]
        cells += [fmt_x(geo.get(m)) for m in modes]
        cells += [""] * (len(header) - len(cells))
        lines.append("| " + " | ".join(cells) + " |")
        if geo.get("memhound:1") is not None:
            targets.append(("programs_geomean", geo["memhound:1"] <= 1.3,
                            "%.2f×" % geo["memhound:1"]))
    lines += ["", "Workloads: " + "; ".join("`%s` %s" % (w, workload_defs.DESCRIPTIONS[w])
                                             for w in cfg["programs_workloads"]
                                             if w in workload_defs.DESCRIPTIONS) + ".", ""]
    return lines


def _fmt_load(la):
    return "/".join("%.1f" % x for x in la) if la else "?"


def render(results):
    cfg = results["config"]
    m = results["machine"]
    if results.get("combined_from"):
        produced = ("Combined (`benchmarks/run.py --combine`) from separate runs, each section "
                    "from the last run that measured it: %s. Machine: %s, %s cores, %s GiB, Linux %s; "
                    "load average %s at the end of the last run." % (
                        "; ".join("`%s` (finished %s UTC)" % (c, f)
                                  for c, f in results["combined_from"]),
                        m.get("cpu", "?"), m.get("cores"), m.get("memory_gib", "?"), m.get("kernel"),
                        _fmt_load(results.get("loadavg_at_end"))))
    else:
        produced = (
            "Produced by `%s` on %s UTC (run time per Python version: %s). Machine: %s, %s cores, "
            "%s GiB, Linux %s; load average %s at the start, %s at the end." % (
                results["command"], results["finished"],
                ", ".join("%s %s" % (k, v) for k, v in sorted(results["durations"].items())),
                m.get("cpu", "?"), m.get("cores"), m.get("memory_gib", "?"), m.get("kernel"),
                _fmt_load(m.get("loadavg_at_start")), _fmt_load(results.get("loadavg_at_end"))))
    lines = ["## Benchmarks", "",
             produced + " Peers: `pip install .[bench]`. Raw numbers and versions: "
             "`benchmarks/results.json`.",
             "",
             ("All times are process CPU time (`time.process_time()`: every thread of the measured "
              "process), which load from other processes on this shared machine barely changes; "
              "`--clock wall` measures elapsed time instead." if cfg.get("clock", "cpu") == "cpu" else
              "All times are elapsed (wall-clock) time."),
             ""]
    if cfg.get("quick"):
        lines += ["*Quick (smoke) run: small sizes, few repetitions — not the reference numbers.*", ""]
    for key in sorted(results["pythons"]):
        lines += render_python(results["pythons"][key], cfg, results["command"])
    return "\n".join(lines).rstrip() + "\n"


def write_readme(path, text):
    try:
        with open(path, encoding="utf-8") as f:
            old = f.read()
    except FileNotFoundError:
        old = ""
    block = "%s\n%s%s" % (START_MARK, text, END_MARK)
    if START_MARK in old and END_MARK in old and old.index(START_MARK) < old.index(END_MARK):
        a = old.index(START_MARK)
        b = old.index(END_MARK) + len(END_MARK)
        new = old[:a] + block + old[b:]
    else:
        new = old + ("" if old.endswith("\n") or not old else "\n") + "\n" + block + "\n"
    with open(path, "w", encoding="utf-8") as f:
        f.write(new)


# --------------------------------------------------------------------------
# Main
# --------------------------------------------------------------------------

def parse_args(argv):
    p = argparse.ArgumentParser(
        prog="benchmarks/run.py",
        description="memhound vs tracemalloc, memray, objgraph and guppy3, in fresh processes.")
    p.add_argument("--quick", action="store_true",
                   help="small sizes and 3 reps (CI smoke run, < 2 min per Python); "
                        "does not touch docs/benchmarks.md unless --readme is given")
    p.add_argument("--only", metavar="SECTION", action="append",
                   help="run only these sections (%s); repeat or comma-separate" % ", ".join(SECTIONS))
    p.add_argument("--programs", action="store_true",
                   help="run the programs section (growing live sets, deep stacks, black, "
                        "pytest, json, pickle, wsgiref) instead of the default sections; "
                        "with --quick: small sizes, seconds; writes "
                        "benchmarks/results-programs.json, never docs/benchmarks.md")
    p.add_argument("--python", metavar="EXE", action="append",
                   help="interpreter to benchmark (repeat for several; default: this one)")
    p.add_argument("--all-pythons", action="store_true",
                   help="benchmark CPython 3.11 to 3.15 (those found on PATH or via pyenv), one after another")
    p.add_argument("--json", metavar="FILE", help="results file (default benchmarks/results.json, "
                                                  "benchmarks/results-quick.json with --quick)")
    p.add_argument("--readme", metavar="FILE",
                   help="file whose bench:start/bench:end block gets the tables "
                        "(default docs/benchmarks.md; not with --quick)")
    p.add_argument("--no-readme", action="store_true", help="do not write the tables into docs/benchmarks.md")
    p.add_argument("--merge", action="store_true",
                   help="keep other Python versions' results already in the JSON file")
    p.add_argument("--set", metavar="KEY=VALUE", action="append", default=[],
                   help="override a size/rep setting, VALUE as JSON (e.g. --set reps=7)")
    p.add_argument("--clock", choices=("cpu", "wall"), default="cpu",
                   help="cpu: process CPU time, robust to other load on a shared machine "
                        "(default); wall: elapsed time")
    p.add_argument("--verbose", "-v", action="store_true", help="show worker progress (per-op times)")
    p.add_argument("--combine", metavar="FILE", nargs="+",
                   help="measure nothing: merge these results files (later ones win per Python "
                        "version) into --json and write the tables from them -- for runs "
                        "made on other interpreters at the same time, e.g. 3.14/3.15 in a chroot")
    args = p.parse_args(argv)
    sections = []
    for item in args.only or []:
        for s in item.split(","):
            s = s.strip()
            if s not in SECTIONS + EXTRA_SECTIONS:
                p.error("unknown section %r (choose from %s)"
                        % (s, ", ".join(SECTIONS + EXTRA_SECTIONS)))
            if s not in sections:
                sections.append(s)
    if args.programs and "programs" not in sections:
        sections.append("programs")
    args.sections = sections or list(SECTIONS)
    cfg = dict(QUICK if args.quick else FULL)
    for item in args.set:
        key, sep, value = item.partition("=")
        if not sep or key not in cfg:
            p.error("--set expects KEY=VALUE with KEY one of: %s" % ", ".join(sorted(cfg)))
        try:
            cfg[key] = json.loads(value)
        except ValueError:
            cfg[key] = value
    cfg["quick"] = args.quick
    cfg["clock"] = args.clock
    args.cfg = cfg
    return args


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    cfg = args.cfg
    CLOCK[0] = cfg["clock"]
    command = "python benchmarks/run.py" + "".join(" " + shlex.quote(a) for a in argv)
    opt_in = any(section in EXTRA_SECTIONS for section in args.sections)
    json_path = args.json or os.path.join(HERE, "results%s%s.json" % (
        "-programs" if opt_in else "", "-quick" if args.quick else ""))
    readme = None
    # docs/benchmarks.md shows the default sections; the opt-in ones write
    # it only when asked to (--readme).
    if not args.no_readme and (args.readme or not (args.quick or opt_in)):
        readme = args.readme or os.path.join(ROOT, "docs", "benchmarks.md")
    if args.combine:
        return combine(args.combine, json_path, readme)
    pythons = list(args.python or [])
    if args.all_pythons:
        for v in ("3.11", "3.12", "3.13", "3.14", "3.15"):
            exe = find_python(v)
            if exe:
                pythons.append(exe)
            else:
                log("warning: no python%s found (PATH, pyenv); skipped" % v)
    pythons = pythons or [sys.executable]
    results = {"schema": SCHEMA, "command": command, "config": cfg, "machine": machine_info(),
               "started": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
               "pythons": {}, "durations": {}}
    if args.merge and os.path.exists(json_path):
        try:
            with open(json_path) as f:
                old = json.load(f)
            if old.get("schema") == SCHEMA:
                results["pythons"].update(old.get("pythons", {}))
                results["durations"].update(old.get("durations", {}))
        except (OSError, ValueError) as exc:
            log("warning: cannot merge %s: %s" % (json_path, exc))
    ctx = {"verbose": args.verbose}
    for py in pythons:
        t_py = time.time()
        log("== probing %s" % py)
        probe = run_worker(py, {"kind": "probe"}, 120, args.verbose)
        if probe.get("status") != "ok":
            log("   cannot run %s: %s" % (py, probe.get("reason")))
            continue
        key = ".".join(probe["python"].split(".")[:2])
        for name, t in sorted(probe["tools"].items()):
            log("   %-9s %s" % (name, t.get("version") if t.get("status") == "ok"
                                else "%s (%s)" % (t.get("status"), t.get("reason", ""))))
        pyres = {"versions": probe, "sections": {}, "section_seconds": {}}
        ctx["unusable"] = {name: "%s: %s" % (t.get("status"), t.get("reason", ""))
                           for name, t in probe["tools"].items() if t.get("status") != "ok"}
        if "guppy3" in ctx["unusable"]:
            ctx["unusable"]["guppy"] = ctx["unusable"]["guppy3"]
        for section in args.sections:
            log("== %s on CPython %s" % (section, probe["python"]))
            t0 = time.time()
            pyres["sections"][section] = SECTION_FUNCS[section](py, cfg, ctx)
            pyres["section_seconds"][section] = round(time.time() - t0, 1)
            log("   %s took %.0f s" % (section, time.time() - t0))
        results["pythons"][key] = pyres
        secs = time.time() - t_py
        results["durations"][key] = "%dm%02ds" % (secs // 60, secs % 60)
        log("== CPython %s done in %s" % (probe["python"], results["durations"][key]))
    results["finished"] = time.strftime("%Y-%m-%d %H:%M", time.gmtime())
    try:
        results["loadavg_at_end"] = list(os.getloadavg())
    except OSError:
        pass
    text = render(results)
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    log("")
    log(text)
    log("results: %s" % json_path)
    if readme:
        write_readme(readme, text)
        log("table written to %s" % readme)
    return 0 if results["pythons"] else 1


def combine(paths, json_path, readme):
    """Merge results files made by separate runs into one (see --combine)."""
    parts = []
    for path in paths:
        try:
            with open(path) as f:
                part = json.load(f)
        except (OSError, ValueError) as exc:
            log("error: %s: %s" % (path, exc))
            return 2
        if not isinstance(part, dict) or part.get("schema") != SCHEMA:
            log("error: %s: not a results file of this version (schema %r)"
                % (path, part.get("schema") if isinstance(part, dict) else None))
            return 2
        parts.append(part)
    # Per Python version and section: a later file's section replaces an
    # earlier one's and keeps the settings it was measured with.
    results = dict(parts[0], pythons={}, durations={})
    for part in parts:
        for key, pyres in part["pythons"].items():
            mine = results["pythons"].setdefault(
                key, {"sections": {}, "section_seconds": {}, "section_config": {}})
            mine["versions"] = pyres["versions"]
            for section, data in pyres["sections"].items():
                mine["sections"][section] = data
                mine["section_seconds"][section] = pyres.get("section_seconds", {}).get(section)
                mine["section_config"][section] = (pyres.get("section_config", {}).get(section)
                                                   or part["config"])
        results["durations"].update(part["durations"])
    results["combined_from"] = [run for part in parts
                                for run in part.get("combined_from") or [[part["command"],
                                                                          part["finished"]]]]
    results["command"] = "` + `".join(command for command, _ in results["combined_from"])
    results["finished"] = max(part["finished"] for part in parts)
    results["loadavg_at_end"] = max((p for p in parts if p.get("loadavg_at_end")),
                                    key=lambda p: p["finished"], default={}).get("loadavg_at_end")
    text = render(results)
    with open(json_path, "w") as f:
        json.dump(results, f, indent=1, sort_keys=True)
        f.write("\n")
    if readme:
        write_readme(readme, text)
        log("table written to %s" % readme)
    return 0


if __name__ == "__main__":
    sys.exit(main())
