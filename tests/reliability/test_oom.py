"""Out of memory inside the tracer: memhound's own tables cannot grow.

`_core._set_memory_limit(n)` caps memhound's own memory (test hook).  When a
table cannot grow, memhound stops recording at once, never fails the
program's allocation, and warns with a RuntimeWarning at the next safe
point; the program goes on and memhound can be started again.
"""
import threading
import warnings
import zlib

import pytest

from memhound import _core

MESSAGE = "memhound stopped tracing: out of memory for its own tables"


@pytest.fixture(autouse=True)
def _reset():
    yield
    _core._set_memory_limit(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        _core.stop()


def squeeze():
    """Cap memhound's memory just above what it uses now."""
    _core._set_memory_limit(_core.get_tracemalloc_memory() + 4096)


def test_block_table_full_stops_tracing_with_a_warning():
    _core.start(5)
    with pytest.warns(RuntimeWarning, match=MESSAGE):
        squeeze()
        keep = [bytes(100 + i % 50) for i in range(100_000)]   # the program's allocations succeed
        for _ in range(1000):       # the pending warning runs at the next safe point
            pass
    assert len(keep) == 100_000 and keep[-1] == bytes(149)
    assert not _core.is_tracing()
    assert _core.get_traced_memory() == (0, 0)


def test_traceback_table_full_stops_tracing_with_a_warning():
    # Many distinct call sites: the traceback table has to grow.
    funcs = [eval("lambda: bytes(%d)" % (200 + i)) for i in range(3000)]
    _core.start(25)
    with pytest.warns(RuntimeWarning, match=MESSAGE):
        squeeze()
        keep = [f() for f in funcs]
        for _ in range(1000):
            pass
    assert len(keep) == 3000
    assert not _core.is_tracing()


def test_stop_reports_a_pending_failure():
    _core.start(1)
    # Fill the table from a thread without the GIL (zlib) and from Python,
    # then stop before any safe point ran the pending warning: stop() warns.
    with pytest.warns(RuntimeWarning, match=MESSAGE):
        squeeze()
        keep = [bytes(64 + i % 7) for i in range(50_000)]
        _core.stop()
    assert not _core.is_tracing()
    del keep


def test_failure_in_a_thread_without_the_gil():
    _core.start(1)
    data = bytes(range(256)) * 4096
    results = []

    def work():
        for _ in range(50):
            results.append(zlib.compress(data, 1))     # RAW allocations without the GIL

    with pytest.warns(RuntimeWarning, match=MESSAGE):
        squeeze()
        threads = [threading.Thread(target=work) for _ in range(4)]
        for t in threads:
            t.start()
        keep = [bytes(80) for _ in range(50_000)]
        for t in threads:
            t.join()
        for _ in range(1000):
            pass
    assert len(results) == 200 and len(keep) == 50_000
    assert not _core.is_tracing()


def test_start_again_after_the_limit_is_lifted():
    _core.start(5)
    with pytest.warns(RuntimeWarning, match=MESSAGE):
        squeeze()
        keep = [bytes(100) for _ in range(100_000)]
        for _ in range(1000):
            pass
    assert not _core.is_tracing()
    _core._set_memory_limit(0)
    _core.start(5)
    obj = bytes(5000)
    tb = _core._get_object_traceback(obj)
    assert tb is not None and tb[0][0] == __file__
    cur, peak = _core.get_traced_memory()
    assert cur >= 5000 and peak >= cur
    del keep


def test_start_without_memory_for_the_frame_buffer():
    _core._set_memory_limit(1)
    with pytest.raises(MemoryError):
        _core.start(1000)
    assert not _core.is_tracing()
    _core._set_memory_limit(0)
    _core.start(1000)
    assert _core.is_tracing() and _core.get_traceback_limit() == 1000


def test_snapshot_without_memory_raises_memoryerror_and_tracing_goes_on():
    _core.start(5)
    keep = [bytes(100 + i % 50) for i in range(10_000)]
    _core._set_memory_limit(_core.get_tracemalloc_memory() + 64)
    with pytest.raises(MemoryError):
        _core.take_snapshot()
    _core._set_memory_limit(0)
    assert _core.is_tracing()
    assert len(_core.take_snapshot()) >= 10_000
    del keep
