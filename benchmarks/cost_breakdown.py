#!/usr/bin/env python3
"""Where a tracer's added instructions and cache misses go, from two
callgrind.out files (untraced and traced) of benchmarks/instructions.py
--cache-sim --keep DIR.

    python benchmarks/cost_breakdown.py DIR/callgrind.out.grow_dicts_1M.untraced \\
        DIR/callgrind.out.grow_dicts_1M.memhound1 [--items 1000000]

Reads `callgrind_annotate --inclusive=no` of both files and groups the
difference per file:function (by the memhound function a line was inlined
into, whatever header it came from) into memhound's parts (the hooks in tracer.c
with what is inlined into them, the live-block table, the stack walk and
depth count, traceback interning, the thread-state lookup) and "CPython"
(the interpreter and libc running differently under the tracer).
"""
import argparse
import re
import subprocess

# First match wins; patterns are searched in "file:function".
GROUPS = [
    ("stack walk + total_nframe (compat.c: mh_compat_stack_is, mh_compat_capture)",
     r":mh_compat_(stack_is|capture)\b|:mh_stack_depth|:mh_first_complete"),
    ("traceback interning (tracebacks.c)", r"tracebacks\.[ch]:|:mh_tb_"),
    ("block table, probed part (blocks.c: evictions, lookups, resize, unlink)", r"blocks\.c:"),
    ("block table, front (blocks.h, inlined into the hooks)", r"blocks\.h:"),
    ("other compat.c (top key, thread state, interpreters)", r":mh_compat_"),
    ("thread-state lookup (__tls_get_addr: libpython's thread-local tstate)", r"tls_get_addr"),
    ("hooks (tracer.c: reentrancy, counters, recent-traceback cache, reftracer)",
     r"tracer\.[ch]:|:mh_(gil|raw|reftrace|track|untrack)"),
    ("memory.c (memhound's own mmap)", r"memory\.c:|:mh_mem_"),
    ("CPython / libc / kernel (difference)", r"."),
]
EVENTS = ["Ir", "D1mr", "D1mw", "DLmr", "DLmw"]


def per_function(path):
    out = subprocess.run(["callgrind_annotate", "--inclusive=no", "--threshold=100", "--auto=no", path],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                         universal_newlines=True).stdout
    events, rows, in_table = None, {}, False
    for line in out.splitlines():
        if line.startswith("Events shown:"):
            events = line.split(":", 1)[1].split()
        if "file:function" in line:
            in_table = True
            continue
        if not in_table or not line.strip() or line.startswith("-"):
            continue
        # "1,234 (1.0%)  5 ( 0.1%)  .  file:function [object]"
        tokens = re.sub(r"\(\s*[\d.]+%\)", " ", line).split()
        if len(tokens) <= len(events):
            continue
        try:
            values = [0 if v == "." else int(v.replace(",", "")) for v in tokens[:len(events)]]
        except ValueError:
            continue
        name = " ".join(tokens[len(events):]).split(" [")[0]
        rows[name] = rows.get(name, [0] * len(events))
        rows[name] = [a + b for a, b in zip(rows[name], values)]
    return events, rows


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("untraced")
    p.add_argument("traced")
    p.add_argument("--items", type=int, help="divide by this many workload items")
    p.add_argument("--allocations", type=int, help="also divide by this many traced allocations")
    args = p.parse_args()
    ev_u, base = per_function(args.untraced)
    ev_t, traced = per_function(args.traced)
    assert ev_u == ev_t, (ev_u, ev_t)
    idx = {e: ev_t.index(e) for e in EVENTS if e in ev_t}
    sums = {g: [0] * len(ev_t) for g, _ in GROUPS}
    for name in set(base) | set(traced):
        diff = [a - b for a, b in zip(traced.get(name, [0] * len(ev_t)), base.get(name, [0] * len(ev_t)))]
        for group, pattern in GROUPS:
            if re.search(pattern, name):
                sums[group] = [a + b for a, b in zip(sums[group], diff)]
                break
    total = [sum(v[i] for v in sums.values()) for i in range(len(ev_t))]
    cols = [e for e in EVENTS if e in idx]
    header = ["part"] + ["added %s" % e for e in cols] + ["share of added Ir"]
    if args.items:
        header.append("Ir per item")
    print("| " + " | ".join(header) + " |")
    print("|" + "---|" * len(header))
    for group, _ in GROUPS + [("**total**", None)]:
        v = total if group == "**total**" else sums[group]
        row = [group] + ["{:+,}".format(v[idx[e]]) for e in cols]
        row.append("%.0f %%" % (100.0 * v[idx["Ir"]] / total[idx["Ir"]]) if total[idx["Ir"]] else "–")
        if args.items:
            row.append("%.0f" % (v[idx["Ir"]] / args.items))
        print("| " + " | ".join(row) + " |")


if __name__ == "__main__":
    main()
