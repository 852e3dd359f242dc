"""Hostile objects and finalizers while memhound traces and snapshots.

memhound works on addresses, never on the objects' Python methods, so
objects whose __repr__/__eq__/__hash__ raise cannot disturb it; finalizers
(__del__) run by the GC in the middle of take_snapshot() may allocate, free
traced blocks or even call memhound itself.  Scenarios that could crash run
in a child interpreter.
"""
import gc
import os
import sys

import pytest

from memhound import _core

from conftest import ROOT, run_child


@pytest.fixture
def tracing():
    _core.start(10)
    yield
    _core.stop()


class Nasty:
    def __init__(self, n):
        self.payload = bytes(100 + n)

    def __repr__(self):
        raise RuntimeError("repr")

    def __eq__(self, other):
        raise RuntimeError("eq")

    def __hash__(self):
        raise RuntimeError("hash")

    def __getattr__(self, name):
        raise RuntimeError("getattr " + name)


def test_objects_whose_methods_raise(tracing):
    objs = [Nasty(i) for i in range(1000)]
    with pytest.raises(RuntimeError):
        {objs[0]}
    for o in objs[:50]:
        assert _core._get_object_traceback(o) is not None or sys.version_info < (3, 12)
        assert _core._get_object_traceback(o.payload) is not None
    snap = _core.take_snapshot()
    assert len(snap) >= 1000
    cur, peak = _core.get_traced_memory()
    assert cur >= sum(len(o.payload) for o in objs)
    del objs


def test_del_that_allocates_during_snapshots():
    # Regression (3.11, where the GC runs inside allocations): the GC ran
    # while take_snapshot() iterated the live-block table; finalizers freed
    # traced blocks, the table shrank under the iteration: segfault.
    run_child(r'''
        import gc
        from memhound import _core
        class Evil:
            def __init__(self):
                self.me = self                      # a cycle: freed by the GC
                self.pad = [bytes(200) for _ in range(20)]
            def __del__(self):
                junk = [bytes(300) for _ in range(50)]   # allocates and frees
        gc.set_threshold(50)
        _core.start(5)
        for r in range(10):
            objs = [Evil() for _ in range(300)]
            del objs
            for _ in range(3):
                _core.take_snapshot()
        _core.stop()
    ''')


@pytest.mark.parametrize("call", ["stop", "clear_traces"])
def test_del_that_calls_memhound_during_a_snapshot(call):
    # A finalizer that stops tracing (or clears the traces) while a snapshot
    # is being taken gets a clear RuntimeError (reported as unraisable) instead
    # of freeing the tables under the snapshot.
    proc = run_child(r'''
        import gc, sys
        from memhound import _core
        errors = []
        sys.unraisablehook = lambda u: errors.append(str(u.exc_value))
        class Evil:
            def __init__(self):
                self.me = self
                self.pad = [bytes(200) for _ in range(20)]
            def __del__(self):
                [bytes(300) for _ in range(10)]
                getattr(_core, %r)()
        gc.set_threshold(50)
        for r in range(10):
            if not _core.is_tracing():
                _core.start(5)
            objs = [Evil() for _ in range(300)]
            del objs
            for _ in range(3):
                if _core.is_tracing():
                    _core.take_snapshot()
        print(sorted(set(errors)))
    ''' % call)
    # Whether a finalizer happens to run inside a snapshot depends on the GC
    # (on 3.12+ it runs at safe points, outside C code): any error raised
    # must be the clear one.
    for line in proc.stdout.splitlines():
        for msg in eval(line):
            assert "while a snapshot is being taken" in msg, msg


def test_deep_recursion_and_a_long_chain(tracing):
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        def down(n):
            return down(n - 1) if n else bytes(4321)
        obj = down(5000)
        tb = _core._get_object_traceback(obj)
        assert tb is not None and len(tb) == 10
    finally:
        sys.setrecursionlimit(limit)
    # A 1,000,000-long linked list, built and freed while traced.
    before = _core.get_traced_memory()[0]
    head = None
    for i in range(1_000_000):
        head = (i, head)
    assert _core.get_traced_memory()[0] > before
    del head
    gc.collect()
    assert _core.get_traced_memory()[0] < before + 1_000_000


# ---------------------------------------------------------------- snapshot files

FUZZ = os.path.join(ROOT, "fuzz")


def test_fuzz_snapshot_reader_briefly():
    # A short run of the CI fuzzer (fuzz/fuzz_snapshot_load.py): every mutated
    # file is rejected with ValueError/OSError or loads into a usable snapshot.
    if not os.path.isdir(FUZZ):
        pytest.skip("fuzz/ is not next to the sources")
    proc = run_child(f'''
        import sys
        sys.argv = ["fuzz", "--seconds", "5", "--seed", "7"]
        sys.path.insert(0, {FUZZ!r})
        import fuzz_snapshot_load
        sys.exit(fuzz_snapshot_load.main())
    ''')
    assert " 0 findings" in proc.stdout, proc.stdout


@pytest.mark.parametrize("name", ["attr_class", "attr_traces"])
def test_file_attributes_cannot_break_the_snapshot(name, tmp_path):
    path = os.path.join(FUZZ, "known_findings", name + ".mhsnap")
    if not os.path.exists(path):
        pytest.skip("fuzz/ is not next to the sources")
    sys.path.insert(0, FUZZ)
    try:
        import fuzz_snapshot_load
    finally:
        sys.path.remove(FUZZ)
    with open(path, "rb") as f:
        data = f.read()
    fuzz_snapshot_load.check(data, str(tmp_path / "input"))
