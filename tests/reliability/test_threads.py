"""Threads: exact accounting and no deadlock while 8 threads allocate.

Every scenario runs in a child interpreter with a timeout, so that a deadlock
fails the test instead of hanging the suite.  RAW allocations without the GIL
come from zlib/bz2 (which release the GIL around their work) and from
PyMem_RawMalloc called through ctypes.CDLL (which releases the GIL for the
call), so the no-GIL path is exercised deterministically.
"""
import pytest

from conftest import run_child

PRELUDE = r'''
import ctypes, gc, os, sys, threading, time, zlib, bz2, hashlib
from memhound import _core

def rawapi(lib):
    lib.PyMem_RawMalloc.restype = ctypes.c_void_p
    lib.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
    lib.PyMem_RawRealloc.restype = ctypes.c_void_p
    lib.PyMem_RawRealloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    lib.PyMem_RawFree.restype = None
    lib.PyMem_RawFree.argtypes = [ctypes.c_void_p]
    return lib

NOGIL = rawapi(ctypes.CDLL(None))       # ctypes.CDLL releases the GIL per call
WITHGIL = rawapi(ctypes.PyDLL(None))    # PyDLL keeps it
DATA = os.urandom(1 << 16)
'''


def test_start_stop_snapshot_while_8_threads_allocate():
    # Tracing is started, snapshotted, cleared and stopped again and again
    # while 8 threads churn through OBJ, MEM and RAW (with and without the GIL).
    out = run_child(r'''
        stop = threading.Event()
        progress = [0]
        def churn(i):
            held = []
            n = 0
            while not stop.is_set():
                n += 1
                progress[0] += 1
                held.append([{"k": j} for j in range(20)])            # OBJ
                held.append(set(range(n % 64)))                       # MEM
                held.append(zlib.compress(DATA[: 8192 + n % 512], 1)) # RAW, no GIL
                held.append(bz2.compress(DATA[:2048]))                # RAW, no GIL
                hashlib.sha256(DATA).digest()
                p = NOGIL.PyMem_RawMalloc(64 + n % 256)
                p = NOGIL.PyMem_RawRealloc(p, 512 + n % 256)
                NOGIL.PyMem_RawFree(p)
                q = WITHGIL.PyMem_RawMalloc(32)
                WITHGIL.PyMem_RawFree(q)
                if len(held) > 64:
                    held.clear()
        threads = [threading.Thread(target=churn, args=(i,)) for i in range(8)]
        for t in threads:
            t.start()
        cycles = 0
        deadline = time.monotonic() + 2.5
        try:
            while time.monotonic() < deadline:
                _core.start(1 + cycles % 25)
                # Let the workers run a few iterations (the GIL may starve them).
                p0, t0 = progress[0], time.monotonic()
                while progress[0] < p0 + 8 and time.monotonic() < t0 + 2:
                    time.sleep(0.002)
                assert _core.is_tracing()
                cur, peak = _core.get_traced_memory()
                assert 0 <= cur <= peak, (cur, peak)
                assert peak > 0, "workers allocated, nothing was traced"
                _core.take_snapshot()
                if cycles % 3 == 0:
                    _core.clear_traces()
                    assert _core.is_tracing()
                _core.stop()
                assert _core.get_traced_memory() == (0, 0)
                cycles += 1
        finally:
            stop.set()
            for t in threads:
                t.join()
        print(cycles)
    ''', prelude=PRELUDE).stdout
    assert int(out) >= 10


EXACT = r'''
NTHREADS, ROUNDS, HOLD = 8, 200, 24

class Worker:
    def __init__(self, i):
        # Everything the worker keeps is allocated before tracing starts.
        self.objs = [None] * HOLD
        self.ptrs = (ctypes.c_size_t * HOLD)()
        self.sizes = (ctypes.c_size_t * HOLD)()
        self.i = i

    def fill(self, k):
        for j in range(HOLD):
            m = (k * HOLD + j) % 7
            if j % 3 == 0:
                self.objs[j] = bytes(600 + 37 * j + k)                 # OBJ, > 512 bytes
            elif j % 3 == 1:
                self.objs[j] = set(range(10 + j))                      # OBJ + MEM table
            else:
                self.objs[j] = zlib.compress(DATA[: 4096 + 97 * j + k], 1)  # RAW churn w/o GIL
            api = NOGIL if m % 2 else WITHGIL
            size = 48 + 16 * j + k
            p = api.PyMem_RawMalloc(size // 2)
            p = api.PyMem_RawRealloc(p, size)
            self.ptrs[j], self.sizes[j] = p, size

    def empty(self):
        for j in range(HOLD):
            self.objs[j] = None
            NOGIL.PyMem_RawFree(self.ptrs[j])
            self.ptrs[j] = 0

    def held(self):
        """(bytes, blocks) this worker holds right now."""
        size = sum(sys.getsizeof(o) for o in self.objs) + sum(self.sizes)
        blocks = sum(2 if isinstance(o, set) else 1 for o in self.objs) + HOLD
        return size, blocks

def parked(barrier):
    # Barrier bookkeeping is not part of the workload: do not trace it.
    _core.suspend()
    try:
        barrier.wait()
    finally:
        _core.resume()

workers = [Worker(i) for i in range(NTHREADS)]
go, mid, resume, done = (threading.Barrier(NTHREADS + 1) for _ in range(4))

def body(w):
    # A warm-up round, untraced, fills free lists and per-thread caches
    # (ctypes keeps one error object per thread).
    w.fill(0)
    w.empty()
    rounds = iter(range(ROUNDS))
    parked(go)
    for k in rounds:
        w.fill(k)
        if k == ROUNDS // 2:
            parked(mid)       # main thread checks the live totals here
            parked(resume)
        w.empty()
    parked(done)

threads = [threading.Thread(target=body, args=(w,)) for w in workers]
for t in threads:
    t.start()
def measure():
    # The main thread's own bookkeeping (ints, tuples) is not traced.  A
    # full collection empties the interpreter's free lists: what the
    # workload's threads left on them depends on how they interleaved.
    _core.suspend()
    try:
        gc.collect()
        return _core.get_traced_memory()[0], len(_core.take_snapshot())
    finally:
        _core.resume()

while go.n_waiting < NTHREADS:       # workers warmed up and parked
    time.sleep(0.01)
_core.start(NFRAME)
base, base_n = measure()
parked(go)
parked(mid)
live, live_n = measure()
_core.suspend()
held = [w.held() for w in workers]
traced = all(_core._get_object_traceback(o) is not None for w in workers for o in w.objs)
_core.resume()
parked(resume)
parked(done)
for t in threads:
    t.join()
gc.collect()
after, after_n = measure()
_core.stop()
want = sum(h[0] for h in held)
want_n = sum(h[1] for h in held)
print(base, live - base, want, live_n - base_n, want_n, traced, after - base, after_n - base_n)
assert traced, "a live object has no trace"
assert live - base == want, ("live traced memory", live - base, want)
assert live_n - base_n == want_n, ("live traces", live_n - base_n, want_n)
assert after == base, ("traced memory after everything was freed", after, base)
assert after_n == base_n, ("traces after everything was freed", after_n, base_n)
'''


@pytest.mark.parametrize("nframe", [1, 25])
def test_exact_totals_with_8_threads(nframe):
    # While the 8 threads are parked holding known blocks, traced memory is the
    # baseline plus exactly their sizes and the trace count grows by exactly
    # their number (nothing lost, nothing counted twice); once they freed
    # everything, both return to the baseline exactly.
    run_child("NFRAME = %d\n" % nframe + EXACT, prelude=PRELUDE)


def test_snapshot_is_not_taken_under_the_raw_lock():
    # Regression: take_snapshot() exported the RAW table while holding the RAW
    # lock, and exporting allocates; a RAW realloc/free from the same thread
    # (or a GIL hand-off to a thread waiting for the lock) deadlocked.
    run_child(r'''
        stop = threading.Event()
        def churn():
            while not stop.is_set():
                keep = [zlib.compress(DATA, 1) for _ in range(4)]
        threads = [threading.Thread(target=churn) for _ in range(4)]
        for t in threads:
            t.start()
        _core.start(5)
        kept = [WITHGIL.PyMem_RawMalloc(100 + i) for i in range(2000)]   # many RAW traces
        for _ in range(30):
            assert len(_core.take_snapshot()) >= 2000
        for p in kept:
            WITHGIL.PyMem_RawFree(p)
        _core.stop()
        stop.set()
        for t in threads:
            t.join()
    ''', prelude=PRELUDE, timeout=60)
