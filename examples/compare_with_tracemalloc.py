"""Run examples/growing_cache.py under stdlib tracemalloc or memhound and print
where each says the cached objects were created.

    python examples/compare_with_tracemalloc.py tracemalloc
    python examples/compare_with_tracemalloc.py memhound

Prints how many of the 3,000 cached dicts each tracer attributes to the line
that builds them (13) and how many it reports as untraced (3.13+: a dict that
reuses a free-listed block allocated before start()), and the block counts of statistics("lineno") on that line and on the line of the
request's temporaries (18).
"""
import os
import runpy
import sys

if len(sys.argv) != 2 or sys.argv[1] not in ("tracemalloc", "memhound"):
    sys.exit("usage: python examples/compare_with_tracemalloc.py tracemalloc|memhound")
if sys.argv[1] == "memhound":
    import memhound as tracer
else:
    import tracemalloc as tracer

EXAMPLE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "growing_cache.py")
tracer.start()
example = runpy.run_path(EXAMPLE, run_name="growing_cache")
example["time"].sleep = lambda seconds: None
example["main"]()
cache = example["_cache"]
lines = [tracer.get_object_traceback(user) for user in cache.values()]
at_13 = sum(1 for tb in lines if tb is not None and tb[0].lineno == 13)
untraced = sum(1 for tb in lines if tb is None)
counts = {s.traceback[0].lineno: s.count for s in tracer.take_snapshot().statistics("lineno")
          if s.traceback[0].filename == EXAMPLE}
print("%s on %s: %d of %d cached dicts created at line 13, %d untraced; "
      "blocks at line 13: %s, at line 18: %s"
      % (sys.argv[1], sys.version.split()[0], at_13, len(cache), untraced,
         counts.get(13, 0), counts.get(18, 0)))
