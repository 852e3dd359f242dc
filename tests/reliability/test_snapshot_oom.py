"""Out of memory in every snapshot operation: MemoryError, never a crash,
and everything works again once memory is back."""
import pytest

import memhound
from memhound import _core

RAW = [(d % 3, 8 * d, tuple(("f%d.py" % ((d + k) % 9), k + d % 5) for k in range(1 + d % 4)), d % 4)
       for d in range(300)]
EXTRAS = sorted({*range(1, 256, 16), *(2 ** k for k in range(8, 20)),
                 *(3 * 2 ** k for k in range(8, 19))})


def sweep(op):
    """Run op() under growing caps on memhound's own memory (a cap of 0
    means none, so every cap is >= 1 byte); return how
    many attempts failed with MemoryError before one succeeded."""
    failures = 0
    for extra in EXTRAS:
        _core._set_memory_limit(_core.SnapshotData._mem_used() + extra)
        try:
            result = op()
        except MemoryError:
            failures += 1
            continue
        finally:
            _core._set_memory_limit(0)
        return failures, result
    pytest.fail("never succeeded")


@pytest.fixture(autouse=True)
def not_tracing():
    if memhound.is_tracing():
        memhound.stop()
    yield
    _core._set_memory_limit(0)


def test_build_under_memory_pressure():
    failures, snap = sweep(lambda: memhound.Snapshot(RAW, 3))
    assert failures > 0
    assert snap.traces._traces == RAW


@pytest.mark.parametrize("key, cumulative", [("lineno", False), ("filename", False),
                                             ("traceback", False), ("lineno", True)])
def test_statistics_and_compare_under_memory_pressure(key, cumulative):
    snap, old = memhound.Snapshot(RAW, 3), memhound.Snapshot(RAW[:100], 3)
    expected = snap.statistics(key, cumulative)
    failures, got = sweep(lambda: snap.statistics(key, cumulative))
    assert failures > 0 and got == expected
    expected = snap.compare_to(old, key, cumulative)
    failures, got = sweep(lambda: snap.compare_to(old, key, cumulative))
    assert failures > 0 and got == expected


def test_filter_export_dump_load_under_memory_pressure(tmp_path):
    snap = memhound.Snapshot(RAW, 3)
    filters = [memhound.Filter(False, "f1*"), memhound.Filter(True, "*", domain=1)]
    expected = snap.filter_traces(filters).traces._traces
    failures, got = sweep(lambda: snap.filter_traces(filters))
    assert failures > 0 and got.traces._traces == expected
    fresh = memhound.Snapshot(RAW, 3)
    failures, raw = sweep(lambda: fresh.traces._traces)
    assert failures > 0 and raw == RAW
    path = tmp_path / "oom.mhsnap"
    failures, _ = sweep(lambda: snap.dump(path))
    assert failures > 0
    failures, loaded = sweep(lambda: memhound.Snapshot.load(path))
    assert failures > 0 and loaded.traces == snap.traces
