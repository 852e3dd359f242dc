"""Measure the leak finder's analysis on a large heap (not a test: run it).

    PYTHONPATH=src python benchmarks/leaks_perf.py [n_objects]

Builds a heap of about n_objects (default 2,000,000) live GC objects, then
find_leaks() on a function that leaves 1,000 survivors over 5 runs in 10
groups behind 10 different holders.  Prints the analysis time (graph,
survivors, paths, tracebacks, causes) and memhound's temporary memory per
heap object.
"""
import gc
import resource
import sys
import time

import memhound


class Rec:
    __slots__ = ("a", "b")

    def __init__(self, a, b):
        self.a = a
        self.b = b


def build_heap(n):
    # n/4 each of Rec, list, dict, tuple-in-list
    q = n // 4
    recs = [Rec(i, None) for i in range(q)]
    lists = [[r] for r in recs]
    dicts = [{"k": lst} for lst in lists]
    tuples = [(d, i) for i, d in enumerate(dicts)]
    return recs, lists, dicts, tuples


class Holder:
    def __init__(self):
        self.items = []


HOLDERS = [[] for _ in range(4)] + [{} for _ in range(3)] + [Holder() for _ in range(3)]
_calls = [0]


class Leak0: pass
class Leak1: pass
class Leak2: pass
class Leak3: pass
class Leak4: pass
class Leak5: pass
class Leak6: pass
class Leak7: pass
class Leak8: pass
class Leak9: pass


KINDS = [Leak0, Leak1, Leak2, Leak3, Leak4, Leak5, Leak6, Leak7, Leak8, Leak9]


def leak():
    _calls[0] += 1
    for g, (holder, kind) in enumerate(zip(HOLDERS, KINDS)):
        for j in range(20):
            obj = kind()
            if isinstance(holder, list):
                holder.append(obj)
            elif isinstance(holder, dict):
                holder[(_calls[0], j)] = obj
            else:
                holder.items.append(obj)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 2_000_000
    heap = build_heap(n)
    gc.collect()
    print("python %s, gc objects: %d" % (sys.version.split()[0], len(gc.get_objects())))
    t = time.perf_counter()
    report = memhound.find_leaks(leak, warmup=1, runs=5)
    total = time.perf_counter() - t
    s = report.stats
    print("leaked=%s groups=%d survivors=%d" % (report.leaked, len(report.groups), s["survivors"]))
    print("graph: nodes=%d edges=%d" % (s["nodes"], s["edges"]))
    print("analysis after the runs: %.3f s wall, %.3f s CPU (index %.3f, edges %.3f, bfs %.3f CPU)"
          % (s["t_analysis"], s["t_analysis_cpu"], s["t_nodes"], s["t_edges"], s["t_bfs"]))
    print("census before the runs: %.3f s CPU" % s["t_census_cpu"])
    tmp = s["peak_bytes"] + s["census_bytes"]
    print("temporary memory: graph peak %.1f MB + census %.1f MB = %.1f bytes per heap object"
          % (s["peak_bytes"] / 1e6, s["census_bytes"] / 1e6, tmp / s["nodes"]))
    print("whole find_leaks (incl. warm-up and runs): %.3f s; max RSS %d MB"
          % (total, resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024))
    print("extra runs (are the holders bounded?): %d calls, %.3f s"
          % (report.extra_runs, s.get("t_extra", 0.0)))
    for g in report.groups[:10]:
        print("  %-22s %4d %-18s %s" % (g.type, g.count, g.cause, g.path_text))
    del heap


if __name__ == "__main__":
    main()
