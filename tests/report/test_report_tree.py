"""The flame-graph call tree built in C (SnapshotData.flame_tree) against
the Python builder it replaces: same nodes, numbering, frames, folding and
sites; launcher stripping; deep tracebacks; bad arguments; out of memory."""
import random

import pytest

import memhound
from memhound import _core
from memhound.report import _aggregate, html

LAUNCHER = _aggregate.LAUNCHER_FRAMES


def snap(raw, limit=16, metadata=None):
    s = memhound.Snapshot(raw, limit)
    if metadata is not None:
        s.metadata = metadata
    return s


def both(s, strip=True):
    c = _aggregate._tree_c(s.traces._data, s, strip)
    py = _aggregate._tree_python(s, strip)
    return c, py


def random_raw(rng, n, files=6, lines=5, maxdepth=7, zero=False):
    names = ["f%d.py" % i for i in range(files)]
    raw = []
    for _ in range(n):
        depth = rng.randint(0 if zero else 1, maxdepth)
        tb = tuple((rng.choice(names), rng.randint(1, lines)) for _ in range(depth))
        size = 0 if zero and rng.random() < 0.1 else rng.choice([8, 8, 64, 1000, 4096, 100000])
        raw.append((rng.randint(0, 2), size, tb, depth))
    return raw


@pytest.mark.parametrize("seed", range(12))
def test_same_tree_as_python(seed):
    rng = random.Random(seed)
    raw = random_raw(rng, rng.choice([1, 30, 400, 3000]), zero=seed % 2 == 0)
    c, py = both(snap(raw))
    assert c == py
    assert c[3][0] == sum(t[1] for t in raw) and c[4][0] == len(raw)


def test_folding_small_groups():
    # one big traceback and many tiny ones: the tiny ones fold into the root
    raw = [(0, 10 ** 9, (("big.py", 1), ("main.py", 1)), 2)]
    raw += [(0, 1, (("tiny%d.py" % i, 1),), 1) for i in range(500)]
    c, py = both(snap(raw))
    assert c == py
    frames, parent, fid, size, count, folded, sites = c
    assert folded == 500
    assert [frames[f][0] for f in fid[1:]] == ["main.py", "big.py"]
    assert parent == [-1, 0, 1]
    assert len(sites) == 501          # sites are counted before folding


def test_launcher_frames_stripped():
    cli = LAUNCHER.files[0]
    runpy = LAUNCHER.then_files[0]
    launcher = ((runpy, 5), (cli, 10), ("boot.py", 1))          # most recent first
    raw = [(0, 100, (("app.py", 3), ("app.py", 1)) + launcher, 5),
           (0, 50, (("app.py", 4),) + launcher, 4),
           (0, 7, (("elsewhere.py", 2),), 1)]
    meta = {"memhound": {"argv": ["app.py"]}}
    c, py = both(snap(raw, metadata=meta))
    assert c == py
    frames = c[0]
    assert {f[0] for f in frames} == {"app.py", "elsewhere.py"}
    # without the `run` metadata nothing is stripped
    c, py = both(snap(raw))
    assert c == py and {f[0] for f in c[0]} >= {cli, runpy, "boot.py"}
    c, py = both(snap(raw, metadata=meta), strip=False)
    assert c == py and cli in {f[0] for f in c[0]}


def test_root_strip_is_general():
    # root first: top.py, boot.py, shim.py, shim.py, app.py
    tb = (("app.py", 1), ("shim.py", 2), ("shim.py", 3), ("boot.py", 4), ("top.py", 5))
    raw = [(0, 64, tb, 5)]
    data = snap(raw).traces._data

    def files(root_strip):
        return [f[0] for f in data.flame_tree(1e-5, root_strip)[0]]

    assert files(None) == ["top.py", "boot.py", "shim.py", "shim.py", "app.py"]
    assert files((("boot.py",), ("shim.py",), 2)) == ["app.py"]
    # the marker file must be among the first `depth` frames
    assert files((("boot.py",), ("shim.py",), 1)) == files(None)
    # then_files are skipped only right after the marker
    assert files((("boot.py",), (), 16)) == ["shim.py", "shim.py", "app.py"]
    assert files(((), ("top.py", "shim.py"), 16)) == files(None)


def test_empty_traceback_is_unknown():
    raw = [(0, 64, (), 0), (0, 32, (("a.py", 1),), 1)]
    c, py = both(snap(raw))
    assert c == py
    assert ("<unknown>", 0, None) in c[0]
    assert ("<unknown>", 0, None) in c[6]


def test_function_names_from_live_snapshot():
    def leaf():
        return [bytearray(2000) for _ in range(20)]

    def middle():
        return leaf()

    memhound.start(8)
    try:
        keep = middle()
        s = memhound.take_snapshot()
    finally:
        memhound.stop()
    c, py = both(s)
    assert c == py
    assert "leaf" in {f[2] for f in c[0]}
    del keep


def test_deep_traceback_no_recursion():
    depth = 20000
    raw = [(0, 8, tuple(("d.py", i) for i in range(depth)), depth),
           (0, 8, tuple(("d.py", i) for i in range(1, depth)), depth)]    # shares the root
    frames, parent, fid, size, count, folded, sites = _aggregate._tree_c(
        snap(raw, depth).traces._data, None, False)
    assert len(parent) == depth + 1
    assert parent[-1] == depth - 1 and size[-1] == 8 and size[1] == 16


def test_html_report_uses_c_tree_and_matches_python(monkeypatch):
    rng = random.Random(7)
    s = snap(random_raw(rng, 2000, files=30, lines=40, maxdepth=10))
    fast = html.report_from_snapshots([("a", s)])
    monkeypatch.setattr(_aggregate, "_tree_c", lambda data, snapshot, strip:
                        _aggregate._tree_python(snapshot, strip))
    slow = html.report_from_snapshots([("a", s)])
    fast.pop("generated")
    slow.pop("generated")
    assert fast == slow


def test_bad_arguments():
    data = snap([(0, 8, (("a.py", 1),), 1)]).traces._data
    with pytest.raises(TypeError, match="root_strip must be None or"):
        data.flame_tree(1e-5, 3)
    with pytest.raises(TypeError, match="root_strip files must be str"):
        data.flame_tree(1e-5, ((3,), (), 16))
    with pytest.raises(TypeError):
        data.flame_tree(1e-5, ((), ["x"], 16))


def test_out_of_memory_then_recovers():
    rng = random.Random(3)
    data = snap(random_raw(rng, 300)).traces._data
    expected = data.flame_tree(1e-5, None)
    failures = 0
    try:
        for extra in [1, 64, 512, 4096, 2 ** 14, 2 ** 16, 2 ** 18, 2 ** 20, 2 ** 22]:
            _core._set_memory_limit(_core.SnapshotData._mem_used() + extra)
            try:
                result = data.flame_tree(1e-5, None)
            except MemoryError:
                failures += 1
                continue
            finally:
                _core._set_memory_limit(0)
            break
        else:
            pytest.fail("never succeeded")
    finally:
        _core._set_memory_limit(0)
    assert failures > 0
    assert result == expected
    assert data.flame_tree(1e-5, None) == expected


def test_statistics_rows_are_not_gc_tracked():
    import gc

    class Name(str):
        pass

    rows = snap([(0, 8, (("a.py", 1), ("b.py", 2)), 2)]).traces._data.statistics(2, False)
    frames, functions, size, count = rows[0]
    assert not gc.is_tracked(rows[0]) and not gc.is_tracked(frames)
    assert not gc.is_tracked(frames[0])
    # a str subclass may carry a __dict__ (and a cycle): its tuples stay tracked
    rows = snap([(0, 8, ((Name("c.py"), 1),), 1)]).traces._data.statistics(2, False)
    if type(rows[0][0][0][0]) is Name:
        assert gc.is_tracked(rows[0][0][0])


@pytest.mark.parametrize("seed", range(4))
def test_statistics_order_with_long_shared_prefixes(seed):
    # many equal sizes and tracebacks sharing 4+ root frames: exercises the
    # packed-prefix sort records and the full comparison behind them
    import tracemalloc
    rng = random.Random(seed)
    base = tuple(("root%d.py" % i, i) for i in range(6))
    raw = []
    for _ in range(600):
        tail = tuple((rng.choice(["x.py", "y.py", "z.py"]), rng.randint(-2, 3))
                     for _ in range(rng.randint(0, 3)))
        tb = (tail + base[rng.randint(0, 6):])[-8:]
        raw.append((0, rng.choice([8, 16]), tb, len(tb)))
    raw = [t for t in raw if t[2]]

    def rows(s):
        return [(tuple((f.filename, f.lineno) for f in st.traceback), st.size, st.count)
                for st in s.statistics("traceback")]
    assert rows(memhound.Snapshot(raw, 8)) == rows(tracemalloc.Snapshot(tuple(raw), 8))
    old = raw[::2]
    ours = memhound.Snapshot(raw, 8).compare_to(memhound.Snapshot(old, 8), "traceback")
    theirs = tracemalloc.Snapshot(tuple(raw), 8).compare_to(tracemalloc.Snapshot(tuple(old), 8),
                                                            "traceback")
    def diffs(stats):
        return [(tuple((f.filename, f.lineno) for f in d.traceback), d.size_diff, d.count_diff)
                for d in stats]
    assert diffs(ours) == diffs(theirs)
