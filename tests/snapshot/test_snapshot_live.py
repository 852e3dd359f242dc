"""Live memhound snapshots (engine + snapshot code together)."""
import os
import sys

import pytest

import memhound
from memhound import tracing


@pytest.fixture
def tracing_on():
    memhound.start(5)
    try:
        yield
    finally:
        memhound.stop()


def allocate(n):
    return [bytearray(1000) for _ in range(n)]  # ALLOC_LINE


ALLOC_LINE = next(i for i, line in enumerate(open(__file__), 1) if line.rstrip().endswith("# ALLOC_LINE"))


def test_allocation_at_known_line_shows_in_statistics(tracing_on):
    keep = allocate(200)
    snap = memhound.take_snapshot()
    assert snap.traceback_limit == 5
    stats = {(s.traceback[-1].filename, s.traceback[-1].lineno): s
             for s in snap.statistics("lineno")}
    stat = stats[(__file__, ALLOC_LINE)]
    assert stat.count >= 200 and stat.size >= 200 * 1000
    assert stat.traceback[0].function == "<listcomp>" or stat.traceback[0].function in (
        "allocate", "<listcomp>")
    # the same numbers through a traceback key: the caller is this test
    tb_stats = [s for s in snap.statistics("traceback")
                if s.traceback[-1].lineno == ALLOC_LINE and s.traceback[-1].filename == __file__]
    assert sum(s.count for s in tb_stats) == stat.count
    assert any(f.function == "test_allocation_at_known_line_shows_in_statistics"
               for s in tb_stats for f in s.traceback)
    del keep


def test_compare_filter_dump_on_live_snapshots(tracing_on, tmp_path):
    before = memhound.take_snapshot()
    keep = allocate(150)
    after = memhound.take_snapshot()
    diff = {(d.traceback[0].filename, d.traceback[0].lineno): d
            for d in after.compare_to(before, "lineno")}
    grown = diff[(__file__, ALLOC_LINE)]
    assert grown.count_diff >= 150 and grown.size_diff >= 150 * 1000
    mine = after.filter_traces([memhound.Filter(True, __file__)])
    assert len(mine.traces) >= 150
    assert all(t.traceback[-1].filename == __file__ or
               any(f.filename == __file__ for f in t.traceback) for t in mine.traces)
    path = tmp_path / "live.mhsnap"
    after.dump(path)
    loaded = memhound.Snapshot.load(path)
    assert loaded.traces == after.traces
    assert loaded.statistics("traceback") == after.statistics("traceback")
    del keep


def test_get_traces_raw_format(tracing_on):
    keep = allocate(10)
    raw = memhound._get_traces()
    assert raw and all(len(t) == 4 for t in raw)
    domain, size, frames, total = raw[0]
    assert isinstance(frames, tuple) and isinstance(frames[0], tuple) and len(frames[0]) == 2
    ours = [t for t in raw if t[2][0] == (__file__, ALLOC_LINE)]
    assert len(ours) >= 10
    # identical tracebacks share one tuple, like tracemalloc._get_traces()
    assert len({id(t[2]) for t in ours}) < len(ours)
    del keep


def test_memhound_never_traces_its_own_snapshot_work(tracing_on, tmp_path):
    first = memhound.take_snapshot()
    first.statistics("lineno")
    first.statistics("filename", cumulative=True)
    first.compare_to(first, "traceback")
    first.filter_traces([memhound.Filter(False, "<unknown>")])
    list(first.traces)
    first.traces[:5]
    first.dump(tmp_path / "a.mhsnap")
    loaded = memhound.Snapshot.load(tmp_path / "a.mhsnap")
    second = memhound.take_snapshot()
    package = os.path.dirname(tracing.__file__)
    own = second.filter_traces([memhound.Filter(True, os.path.join(package, "*"),
                                                all_frames=True)])
    assert [t.traceback.format() for t in own.traces][:3] == []
    del loaded
