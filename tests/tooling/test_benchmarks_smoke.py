"""Smoke test of benchmarks/run.py: a trivially small run of every section.

Checks the structure of results.json and the README marker handling, never
timings.  Peers (memray, objgraph, guppy3) and the memhound engine may be
missing; their cells must then say so instead of crashing the harness.
"""
import json
import os
import statistics
import subprocess
import sys

import pytest

from conftest import ROOT

RUN = os.path.join(ROOT, "benchmarks", "run.py")

TINY = {
    "reps": 1,
    "overhead_scale": 0.01,
    "overhead_pairs": 3,        # a tiny workload never reaches the budget
    "overhead_budget": 60.0,
    "workloads": ["small_objs", "json"],
    "overhead_modes": ["untraced", "tracemalloc:1", "memhound:1", "memray"],
    "snapshot_tuples": 2000,
    "snapshot_sites": 5,
    "snapshot_budget": 0.5,
    "memory_tuples": 5000,
    "memory_sites": 5,
    "leak_heap": 2000,
    "leak_per_group": 5,
    "timeout": 120,
}

CELL_STATUSES = {"ok", "not installed", "unavailable", "error", "timeout"}


def _status(entry):
    return entry["status"].split(":")[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("bench")
    readme = tmp / "README.md"
    readme.write_text("# title\n\nintro\n\n<!-- bench:start -->\nstale table\n<!-- bench:end -->\n\nfooter\n")
    out = tmp / "results.json"
    cmd = [sys.executable, RUN, "--quick", "--json", str(out), "--readme", str(readme)]
    for key, value in TINY.items():
        cmd += ["--set", "%s=%s" % (key, json.dumps(value))]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    with open(str(out)) as f:
        results = json.load(f)
    return results, readme.read_text(), proc.stdout


def test_top_level_structure(run):
    results, _, _ = run
    assert results["schema"] == 1
    assert results["command"].startswith("python benchmarks/run.py --quick")
    machine = results["machine"]
    for key in ("cpu", "cores", "kernel"):
        assert machine.get(key), key
    assert results["config"]["reps"] == 1
    key = "%d.%d" % sys.version_info[:2]
    assert list(results["pythons"]) == [key]
    py = results["pythons"][key]
    assert py["versions"]["python"] == "%d.%d.%d" % sys.version_info[:3]
    tools = py["versions"]["tools"]
    for name in ("memhound", "memray", "objgraph", "guppy3", "pympler", "psutil"):
        assert tools[name]["status"] in CELL_STATUSES, tools[name]
    assert set(py["sections"]) == {"overhead", "snapshot", "memory", "leaks"}


def test_overhead_cells(run):
    results, _, _ = run
    sec = next(iter(results["pythons"].values()))["sections"]["overhead"]
    assert set(sec) == {"small_objs", "json"}
    for row in sec.values():
        assert set(row) == set(TINY["overhead_modes"])
        for mode, cell in row.items():
            assert _status(cell) in CELL_STATUSES, (mode, cell)
        # The baseline and the stdlib tracer are always measurable.
        assert row["untraced"]["status"] == "ok"
        assert row["tracemalloc:1"]["status"] == "ok"
        tm = row["tracemalloc:1"]
        assert len(tm["times"]) == 3
        assert len(tm["paired_ratios"]) == 3
        assert tm["ratio"] == statistics.median(tm["paired_ratios"]) > 0


def test_snapshot_cells(run):
    results, _, _ = run
    sec = next(iter(results["pythons"].values()))["sections"]["snapshot"]
    runs = {(r["tool"], r["tracing_on"]): r for r in sec["runs"]}
    assert set(runs) == {("tracemalloc", True), ("tracemalloc", False),
                         ("memhound", True), ("memhound", False)}
    for on in (True, False):
        tm = runs[("tracemalloc", on)]
        assert tm["status"] == "ok", tm
        assert tm["traces"] >= TINY["snapshot_tuples"]
        for op in ("take_snapshot", "statistics('lineno')", "statistics('traceback')",
                   "compare_to(old, 'lineno')", "filter_traces(2 filters)", "dump", "load"):
            assert len(tm["ops"][op]) >= 1, op
        assert tm["file_size"] > 0
        assert runs[("memhound", on)]["status"] in CELL_STATUSES


def test_memory_cells(run):
    results, _, _ = run
    sec = next(iter(results["pythons"].values()))["sections"]["memory"]
    assert sec["blocks"] >= TINY["memory_tuples"]
    assert set(sec["tools"]) == {"untraced", "tracemalloc", "memhound", "memray"}
    assert "bytes_per_block" in sec["tools"]["tracemalloc"]
    for cell in sec["tools"].values():
        assert _status(cell) in CELL_STATUSES


def test_leak_cells(run):
    results, _, _ = run
    sec = next(iter(results["pythons"].values()))["sections"]["leaks"]
    assert sec["survivors"] == 10 * TINY["leak_per_group"]
    assert set(sec["tools"]) == {"memhound", "objgraph", "guppy3"}
    for name, cell in sec["tools"].items():
        assert _status(cell) in CELL_STATUSES, (name, cell)
        if cell["status"] == "ok":
            assert cell["analysis_s"] >= 0
            assert 0 <= cell["found"] <= 10
            assert cell["heap_gc_objects"] >= TINY["leak_heap"]


def test_readme_between_markers_only(run):
    _, readme, _ = run
    assert readme.startswith("# title\n\nintro\n\n<!-- bench:start -->\n## Benchmarks")
    assert readme.endswith("<!-- bench:end -->\n\nfooter\n")
    assert "stale table" not in readme
    assert "python benchmarks/run.py --quick" in readme
    assert readme.count("<!-- bench:start -->") == 1


PROGRAM_WORKLOADS = ["grow_dicts_100k", "depth_30", "json_doc", "wsgi"]
PROGRAM_MODES = ["tracemalloc:1", "memhound:1", "memray"]


def test_programs_section(tmp_path):
    out = tmp_path / "programs.json"
    cmd = [sys.executable, RUN, "--programs", "--quick", "--json", str(out), "--no-readme",
           "--set", "programs_workloads=" + json.dumps(PROGRAM_WORKLOADS),
           "--set", "programs_modes=" + json.dumps(PROGRAM_MODES)]
    proc = subprocess.run(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:]
    with open(str(out)) as f:
        results = json.load(f)
    (section_sets,) = [set(py["sections"]) for py in results["pythons"].values()]
    assert section_sets == {"programs"}
    (programs,) = [py["sections"]["programs"] for py in results["pythons"].values()]
    assert set(programs["workloads"]) == set(PROGRAM_WORKLOADS)
    for name, workload in programs["workloads"].items():
        assert set(workload["modes"]) == set(PROGRAM_MODES)
        for mode, cell in workload["modes"].items():
            assert _status(cell) in CELL_STATUSES, (name, mode, cell)
        tracemalloc = workload["modes"]["tracemalloc:1"]
        assert tracemalloc["status"] == "ok" and tracemalloc["ratio"] > 0, (name, tracemalloc)
        if name in ("grow_dicts_100k", "depth_30"):
            assert tracemalloc["bytes_per_block"] > 0
            assert workload["modes"]["memhound:1"]["bytes_per_block"] > 0
    real = [w for w in PROGRAM_WORKLOADS if w in ("json_doc", "wsgi")]
    for mode in ("tracemalloc:1", "memhound:1"):
        if all(programs["workloads"][w]["modes"][mode]["status"] == "ok" for w in real):
            assert programs["geomean"][mode] > 0


def test_bad_section_is_a_usage_error():
    proc = subprocess.run([sys.executable, RUN, "--only", "nonsense"], cwd=ROOT,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, universal_newlines=True)
    assert proc.returncode == 2
    assert "unknown section 'nonsense'" in proc.stderr


def test_overhead_pairs_stop_at_the_budget(monkeypatch):
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import worker
    task = {"kind": "overhead", "workload": "json", "mode": "memhound:1", "scale": 0.01, "pairs": 4}
    full = worker.task_overhead(dict(task, budget=60.0))
    assert len(full["times"]) == len(full["baseline"]) == len(full["pair_ratios"]) == 4
    assert full["pair_ratios"] == [t / b for t, b in zip(full["times"], full["baseline"])]
    assert full["paired_ratio"] == statistics.median(full["pair_ratios"])
    one = worker.task_overhead(dict(task, budget=0.0))
    assert len(one["times"]) == len(one["pair_ratios"]) == 1
    untraced = worker.task_overhead(dict(task, mode="untraced", budget=0.0))
    assert set(untraced) == {"times"} and len(untraced["times"]) == 4


def test_combine_merges_runs_of_other_interpreters(run, tmp_path):
    # A run made elsewhere (3.14/3.15 in the CI chroot) is merged per Python
    # version; the table then shows both and names both commands.
    results, _, _ = run
    here = next(iter(results["pythons"]))
    other = dict(results, command="python benchmarks/run.py --python elsewhere",
                 pythons={"3.99": results["pythons"][here]}, durations={"3.99": "0m01s"})
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    a.write_text(json.dumps(results))
    b.write_text(json.dumps(other))
    readme = tmp_path / "README.md"
    readme.write_text("<!-- bench:start -->\nstale\n<!-- bench:end -->\n")
    out = tmp_path / "combined.json"
    proc = subprocess.run([sys.executable, RUN, "--combine", str(a), str(b), "--json", str(out),
                           "--readme", str(readme)], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)
    assert proc.returncode == 0, proc.stderr
    combined = json.loads(out.read_text())
    assert sorted(combined["pythons"]) == sorted({here, "3.99"})
    table = readme.read_text()
    assert "stale" not in table and "--python elsewhere" in table and results["command"] in table


@pytest.mark.parametrize("content, message", [
    (json.dumps({"schema": 0}), "bad.json: not a results file of this version (schema 0)"),
    ("{not json", "bad.json: Expecting property name"),
])
def test_combine_refuses_a_file_that_is_not_a_results_file(tmp_path, content, message):
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    proc = subprocess.run([sys.executable, RUN, "--combine", str(bad), "--json",
                           str(tmp_path / "out.json"), "--no-readme"],
                          cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert message in proc.stderr + proc.stdout
    assert len((proc.stderr + proc.stdout).strip().splitlines()) == 1
    assert not (tmp_path / "out.json").exists()


def test_nullhook_forwards_every_allocation(monkeypatch):
    # The floor the benchmarks compare hook-based tracers with: hooks that
    # only forward.  While installed, memory still works and nothing traces;
    # stop() gives the allocators back (memhound can start over them after).
    monkeypatch.syspath_prepend(os.path.join(ROOT, "benchmarks"))
    import worker
    try:
        nullhook = worker.nullhook()
    except worker.Unavailable as exc:
        pytest.skip(str(exc))
    import memhound
    ref = sys.version_info >= (3, 13)
    worker.start_tracer(nullhook, "nullhook:ref" if ref else "nullhook")
    try:
        with pytest.raises(RuntimeError, match="already started"):
            nullhook.start()
        data = [bytes(100 + i) for i in range(1000)] + [bytearray(1 << 20)]
        assert sum(map(len, data)) == sum(100 + i for i in range(1000)) + (1 << 20)
    finally:
        nullhook.stop()
    memhound.start(1)
    try:
        kept = bytes(5000)
        assert memhound.get_object_traceback(kept) is not None
    finally:
        memhound.stop()
    if not ref:
        with pytest.raises(RuntimeError, match="3.13"):
            nullhook.start(reftracer=True)
