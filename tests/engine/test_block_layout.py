"""The live-block table's layout (blocks.h): pymalloc's blocks in per-pool
slot arrays, every other block in the hashed part.  Exactness must not depend
on which allocator is below memhound, on memory moving between pymalloc and
malloc, or on the number of live blocks."""
import subprocess
import sys
import textwrap

import pytest

import memhound
from conftest import child_env

# A child process: every allocator configuration is fixed at start-up.  It
# checks the per-line totals of bytes and bytearray objects against
# sys.getsizeof() (their blocks are exactly that big) and prints "ok".  The
# loops are `while` loops: 3.14+ keeps freed range objects and iterators on
# free lists, still traced at the line that made them.
SCENARIO = r'''
import gc, sys
from collections import Counter
import memhound
from memhound import _core

FILE = sys._getframe().f_code.co_filename

def line_totals(lines):
    # Blocks under 34 bytes are the loops' ints, not the bytes objects
    # compared (3.14+ keeps freed ints on a free list, still traced).
    totals = {}
    for trace in memhound.take_snapshot().traces:
        frame = trace.traceback[0]
        if frame.filename == FILE and frame.lineno in lines and trace.size >= 34:
            size, count = totals.get(frame.lineno, (0, 0))
            totals[frame.lineno] = (size + trace.size, count + 1)
    return totals

def expect(line, objs):
    got = line_totals({line}).get(line, (0, 0))
    want = (sum(map(sys.getsizeof, objs)), len(objs))
    assert got == want, (line, got, want)

def here():
    return sys._getframe(1).f_lineno

gc.collect()
memhound.start(1)
n = __N__
keep = [None] * n
i = 0
line_a = here() + 1
while i < n: keep[i] = bytes(1 + i % 600); i += 1   # every pymalloc class, and malloc's
expect(line_a, keep)
del keep[::3]
expect(line_a, keep)
for obj in keep[::4999]:
    assert _core._get_object_traceback(obj) == ((FILE, line_a),), obj
del obj

# Free everything: pymalloc releases its arenas and malloc may get the
# memory back; the pool entries must not outlive their blocks.
del keep
gc.collect()
assert line_totals({line_a}) == {}
big, mixed = [None] * 30, [None] * (n // 2)
line_b = here() + 2
i = 0
while i < len(big): big[i] = bytes(1 << 20); i += 1
line_c = here() + 2
i = 0
while i < len(mixed): mixed[i] = bytes(600 + i % 300) if i % 2 else bytes(8 + i % 40); i += 1
expect(line_b, big)
expect(line_c, mixed)

# A malloc block shrunk by realloc stays in malloc memory at a small size:
# found and counted wherever it lands.
arrays = [None] * 3000
i = 0
line_d = here() + 1
while i < len(arrays): arrays[i] = bytearray(2000 + i); i += 1
line_e = here() + 1
for a in arrays: del a[50 + len(a) % 300:]
headers = line_totals({line_d})[line_d]
assert headers == (sum(map(sys.getsizeof, arrays)) - sum(a.__alloc__() for a in arrays),
                   len(arrays)), headers
storage = Counter(t.size for t in memhound.take_snapshot().traces
                  if t.traceback[0].lineno == line_e and t.traceback[0].filename == FILE)
want = Counter(a.__alloc__() for a in arrays)
# Beyond the storage blocks, at most the loop's iterator and slice (3.14+
# keeps them on free lists).
assert not want - storage and sum((storage - want).values()) <= 2, (storage - want, want - storage)

# clear_traces() keeps tracing with empty tables.
memhound.clear_traces()
again = [None] * 20000
i = 0
line_f = here() + 1
while i < len(again): again[i] = bytes(100 + i % 50); i += 1
expect(line_f, again)
del mixed, big, arrays
memhound.stop()
print("ok")
'''


def run_scenario(n, options=(), **env):
    code = textwrap.dedent(SCENARIO).replace("__N__", str(n))
    proc = subprocess.run([sys.executable, *options, "-c", code], capture_output=True,
                          text=True, timeout=300, env=child_env(**env))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert proc.stdout.startswith("ok"), proc.stdout + proc.stderr


@pytest.mark.parametrize("options, env", [
    ((), {"PYTHONMALLOC": None}),
    ((), {"PYTHONMALLOC": "malloc"}),
    (("-X", "dev"), {"PYTHONMALLOC": None}),        # pymalloc under the debug hooks
    ((), {"PYTHONMALLOC": "pymalloc_debug"}),
], ids=["pymalloc", "malloc", "dev-mode", "pymalloc_debug"])
def test_exact_under_every_allocator(options, env):
    run_scenario(60_000, options, **env)


def test_millions_of_live_blocks_stay_exact_and_small():
    # 2,000,000 live blocks of pymalloc memory; the tracer's memory per block
    # (tables + tracebacks) must stay within the 24-byte budget.
    code = textwrap.dedent(r'''
        import sys
        import memhound
        memhound.start(1)
        n = 2_000_000
        keep = [None] * n
        line = sys._getframe().f_lineno + 1
        for i in range(n): keep[i] = bytes(2 + i % 9)
        del i
        file = sys._getframe().f_code.co_filename
        def totals():
            for stat in memhound.take_snapshot().statistics("lineno"):
                if stat.traceback[0].lineno == line and stat.traceback[0].filename == file:
                    return stat.size, stat.count
        mem = memhound.get_tracemalloc_memory()
        assert totals() == (sum(map(sys.getsizeof, keep)), n)
        del keep[::2]
        assert totals() == (sum(map(sys.getsizeof, keep)), n // 2)
        print("ok", mem / n)
    ''')
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=300, env=child_env(PYTHONMALLOC=None))
    assert proc.returncode == 0 and proc.stdout.startswith("ok"), proc.stdout + proc.stderr
    assert float(proc.stdout.split()[1]) <= 24


def test_started_over_another_hook_still_exact():
    # tracemalloc below memhound: its hooks hide pymalloc, so the layout falls
    # back to the hashed table; tracemalloc's own memory is not the program's.
    import tracemalloc
    tracemalloc.start(1)
    memhound.start(1)
    try:
        keep = [None] * 30_000
        i = 0
        line = sys._getframe().f_lineno + 1
        while i < len(keep): keep[i] = bytes(1 + i % 600); i += 1    # noqa: E701,E702
        ours = [t for t in memhound.take_snapshot().traces      # >= 34: no ints (3.14+)
                if t.traceback[0].lineno == line and t.traceback[0].filename == __file__
                and t.size >= 34]
        assert (sum(t.size for t in ours), len(ours)) == (sum(map(sys.getsizeof, keep)), len(keep))
    finally:
        memhound.stop()
        tracemalloc.stop()
