"""Coexistence: stdlib tracemalloc, memhound and a third allocator hook,
started and stopped in every order.

The third hook is CPython's own test hook (`_testcapi.set_nomemory` with a
start index that is never reached: a pass-through; `remove_mem_hooks()`
restores what it saved unconditionally, like tracemalloc.stop()).  Each
scenario runs in a child interpreter with a timeout: a crash or a deadlock
fails the test instead of killing or hanging the suite.
"""
import itertools

import pytest

from conftest import run_child

PRELUDE = r'''
import ctypes, gc, itertools, os, sys, threading, time, tracemalloc
from memhound import _core
try:
    import _testcapi
except ImportError:
    _testcapi = None

class Tools:
    """Start/stop each tool and check that each running tool sees new blocks."""
    def __init__(self):
        self.on = {"tm": False, "mh": False, "hook": False}
        self.n = 0

    def fresh(self):
        self.n += 1
        return bytes(1000 + self.n)       # no free list: always a new block

    def start(self, tool):
        if tool == "tm":
            tracemalloc.start(5)
        elif tool == "mh":
            _core.start(5)
        else:
            _testcapi.set_nomemory(2**31 - 1)
        self.on[tool] = True

    def stop(self, tool):
        if tool == "tm":
            tracemalloc.stop()
        elif tool == "mh":
            _core.stop()
        else:
            _testcapi.remove_mem_hooks()
        self.on[tool] = False

    def check(self, where, chain):
        obj = self.fresh()
        tm_tb = tracemalloc.get_object_traceback(obj)
        mh_tb = _core._get_object_traceback(obj)
        assert tracemalloc.is_tracing() == self.on["tm"], where
        assert _core.is_tracing() == self.on["mh"], where
        if self.on["tm"] and "tm" in chain:
            assert tm_tb is not None, ("tracemalloc lost its hook", where)
        if not self.on["tm"]:
            assert tm_tb is None and tracemalloc.get_traced_memory() == (0, 0), where
        if self.on["mh"] and "mh" in chain:
            assert mh_tb is not None, ("memhound lost its hook", where, chain)
            cur, peak = _core.get_traced_memory()
            assert 0 < cur <= peak, where
            assert len(_core.take_snapshot()) > 0
        elif self.on["mh"]:
            # Unhooked by a tool below it that restored its allocators on
            # stop: memhound cannot see that, but must not crash.
            assert len(_core.take_snapshot()) >= 0
        if not self.on["mh"]:
            assert mh_tb is None and _core.get_traced_memory() == (0, 0), where

    def run(self, seq):
        """seq: e.g. ["+tm", "+hook", "-tm", "-hook"].  `chain` models the
        allocator hook stack (bottom first): tracemalloc and the hook restore,
        when stopped, the allocators they saved when started (unhooking
        whatever was started after them); memhound restores only while on
        top, re-chains after tracemalloc.stop() (it wraps it when started while
        tracemalloc runs), and re-chains
        on start() when it was dropped from the chain."""
        chain, saved, wrapped = [], {}, False
        for step in seq:
            tool = step[1:]
            if step[0] == "+":
                if tool == "mh":
                    wrapped = self.on["tm"]     # memhound wraps tracemalloc.stop()
                self.start(tool)
                if tool != "mh" or "mh" not in chain:
                    saved[tool] = list(chain)
                    chain.append(tool)
            else:
                self.stop(tool)
                if tool != "mh":
                    chain = list(saved[tool])
                    if tool == "tm" and wrapped and self.on["mh"] and "mh" not in chain:
                        saved["mh"] = list(chain)
                        chain.append("mh")
                else:
                    wrapped = False
                    if chain and chain[-1] == "mh":
                        chain = list(saved["mh"])
            self.check(" ".join(seq) + " @ " + step, chain)
        # Whatever happened, both tracers work again when restarted.
        self.start("tm")
        self.start("mh")
        self.check("restart after " + " ".join(seq), ["tm", "mh"])
        self.stop("mh")
        self.stop("tm")
        self.check("stopped after " + " ".join(seq), [])
'''


def cpython_crashes(seq):
    """CPython segfaults on its own (no memhound involved) when tracemalloc is
    stopped while another hook sits above it and that hook is removed later
    (tracemalloc's hooks then run after its tables are gone).  Such orders
    cannot be tested."""
    pos = {s: i for i, s in enumerate(seq)}
    return ("+hook" in pos and "+tm" in pos
            and pos["+tm"] < pos["+hook"] < pos["-tm"] < pos["-hook"])


def interleavings(tools):
    """Every order of starting and stopping `tools`, each started before stopped."""
    steps = [s + t for t in tools for s in "+-"]
    for perm in itertools.permutations(steps):
        if all(perm.index("+" + t) < perm.index("-" + t) for t in tools):
            yield list(perm)


def test_tracemalloc_and_memhound_in_every_order():
    seqs = list(interleavings(["tm", "mh"]))
    assert len(seqs) == 6
    out = run_child("tools = Tools()\nfor seq in %r:\n    tools.run(seq)\nprint(len(%r))" % (seqs, seqs),
                    prelude=PRELUDE).stdout
    assert out.strip() == "6"


def test_memhound_and_a_third_hook_in_every_order():
    pytest.importorskip("_testcapi")
    seqs = list(interleavings(["hook", "mh"]))
    out = run_child("tools = Tools()\nfor seq in %r:\n    tools.run(seq)\nprint(len(%r))" % (seqs, seqs),
                    prelude=PRELUDE).stdout
    assert out.strip() == "6"


def test_three_tools_in_every_order():
    # 90 interleavings of starting and stopping tracemalloc, memhound and the hook.
    pytest.importorskip("_testcapi")
    seqs = list(interleavings(["tm", "mh", "hook"]))
    assert len(seqs) == 90
    seqs = [seq for seq in seqs if not cpython_crashes(seq)]
    assert len(seqs) == 75
    for seq in seqs:    # one process each: a crash names its order
        run_child("Tools().run(%r)" % (seq,), prelude=PRELUDE, timeout=30)


def test_restart_after_a_hook_below_memhound_was_removed():
    # Regression: a tool installed before memhound that restores its saved
    # allocators when it stops drops memhound from the chain; memhound's
    # start() then believed it was still chained and never traced again.
    pytest.importorskip("_testcapi")
    run_child(r'''
        _testcapi.set_nomemory(2**31 - 1)
        _core.start(1)
        x = bytes(1000)
        assert _core._get_object_traceback(x) is not None
        _testcapi.remove_mem_hooks()    # memhound is unhooked with it
        _core.stop()
        _core.start(1)
        y = bytes(1001)
        assert _core._get_object_traceback(y) is not None, "memhound never traces again"
        _core.stop()
    ''', prelude=PRELUDE)


def test_raw_realloc_without_gil_above_tracemalloc():
    # Regression: memhound called the next RAW realloc while holding its RAW
    # lock; below it, tracemalloc's RAW hook waits for the GIL, whose holder
    # waited for that lock: deadlock within milliseconds.
    run_child(r'''
        def rawapi(lib):
            lib.PyMem_RawMalloc.restype = ctypes.c_void_p
            lib.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
            lib.PyMem_RawRealloc.restype = ctypes.c_void_p
            lib.PyMem_RawRealloc.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
            lib.PyMem_RawFree.restype = None
            lib.PyMem_RawFree.argtypes = [ctypes.c_void_p]
            return lib
        nogil, withgil = rawapi(ctypes.CDLL(None)), rawapi(ctypes.PyDLL(None))
        for order in (("tm", "mh"), ("mh", "tm")):
            for tool in order:
                tracemalloc.start(1) if tool == "tm" else _core.start(1)
            stop = threading.Event()
            def work(lib):
                while not stop.is_set():
                    p = lib.PyMem_RawMalloc(64)
                    p = lib.PyMem_RawRealloc(p, 4096)
                    lib.PyMem_RawFree(p)
            threads = [threading.Thread(target=work, args=(nogil if i % 2 else withgil,))
                       for i in range(4)]
            for t in threads:
                t.start()
            time.sleep(1.0)
            stop.set()
            for t in threads:
                t.join()
            for tool in reversed(order):
                tracemalloc.stop() if tool == "tm" else _core.stop()
    ''', prelude=PRELUDE, timeout=60)
