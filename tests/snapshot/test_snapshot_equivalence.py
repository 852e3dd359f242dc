"""memhound's C snapshot analysis gives exactly stdlib tracemalloc's answers.

Both modules get the same randomly generated raw traces; every key type,
cumulative both ways, compare_to both directions and filter_traces with
random Filter/DomainFilter combinations must agree on groups, sizes, counts
and order (including ties between equal sizes).
"""
import fnmatch
import random
import re
import tracemalloc as std

import pytest

import memhound

SEEDS = range(12)

FILENAMES = ["a.py", "a.pyc", "b.py", "<unknown>", "dir/x.py", "dir/y.pyc", "\xe9t\xe9.py",
             "\u4e2d.py", "\udcff.py", "", "A.py", "z", "a.pyo", "[x].py", "a-b.py"]
PATTERNS = ["a.py", "a.pyc", "*", "", "*.py", "a*", "?.py", "[ab].py", "[!a]*", "dir/*",
            "*/?.py", "[a-c]*", "[c-a]*", "*[!.]py", "\u4e2d*", "[x].py", "[[]x].py",
            "a-b.py", "[!-]*", "*y*c", "<*>"]


def random_raw(rng, n, allow_empty=True):
    pool = []
    for _ in range(rng.randint(1, 25)):
        depth = rng.randint(0 if allow_empty else 1, 4)
        frames = tuple((rng.choice(FILENAMES), rng.choice([0, 1, 2, 3, 7, 100, 2**31 - 1]))
                       for _ in range(depth))
        if depth >= 2 and rng.random() < 0.2:
            frames = frames + (frames[0],)          # recursion: a frame twice
        pool.append(frames)
    raw = []
    for _ in range(n):
        frames = rng.choice(pool)
        if rng.random() < 0.3:
            frames = tuple(tuple(f) for f in frames)   # equal but not identical
        total = rng.choice([len(frames), len(frames) + 3, None])
        size = rng.choice([0, 1, 8, 8, 32, 1000, rng.randint(0, 2**40)])
        raw.append((rng.randint(0, 3), size, frames, total))
    return raw


def rows(stats):
    return [(s.traceback._frames, s.size, s.count) for s in stats]


def diff_rows(stats):
    return [(s.traceback._frames, s.size, s.size_diff, s.count, s.count_diff) for s in stats]


def outcome(func, *args):
    try:
        return ("ok", func(*args))
    except Exception as exc:   # compared by type and message
        return ("error", type(exc), str(exc))


def both(raw, limit=3):
    return std.Snapshot(raw, limit), memhound.Snapshot(raw, limit)


KEYS = [("lineno", False), ("filename", False), ("traceback", False),
        ("lineno", True), ("filename", True)]


@pytest.mark.parametrize("seed", SEEDS)
def test_statistics_equal_stdlib(seed):
    rng = random.Random(seed)
    raw = random_raw(rng, rng.randint(0, 400), allow_empty=seed % 2 == 0)
    s_std, s_mh = both(raw)
    for key, cumulative in KEYS:
        expected = outcome(lambda: rows(s_std.statistics(key, cumulative)))
        got = outcome(lambda: rows(s_mh.statistics(key, cumulative)))
        assert got == expected, (key, cumulative)


@pytest.mark.parametrize("seed", SEEDS)
def test_compare_to_equal_stdlib(seed):
    rng = random.Random(1000 + seed)
    raw_old = random_raw(rng, rng.randint(0, 300), allow_empty=seed % 3 == 0)
    raw_new = raw_old[: len(raw_old) // 2] + random_raw(rng, rng.randint(0, 300), seed % 3 == 0)
    old_std, old_mh = both(raw_old)
    new_std, new_mh = both(raw_new)
    for key, cumulative in KEYS:
        for a_std, b_std, a_mh, b_mh in ((new_std, old_std, new_mh, old_mh),
                                         (old_std, new_std, old_mh, new_mh)):
            expected = outcome(lambda: diff_rows(a_std.compare_to(b_std, key, cumulative)))
            got = outcome(lambda: diff_rows(a_mh.compare_to(b_mh, key, cumulative)))
            assert got == expected, (key, cumulative)
    # A stdlib snapshot is accepted as the old one.
    assert (diff_rows(new_mh.compare_to(old_std, "traceback"))
            == diff_rows(new_std.compare_to(old_std, "traceback")))


def random_filters(rng, module):
    filters = []
    for _ in range(rng.randint(1, 4)):
        inclusive = rng.random() < 0.5
        if rng.random() < 0.2:
            filters.append(module.DomainFilter(inclusive, rng.randint(0, 4)))
            continue
        filters.append(module.Filter(inclusive, rng.choice(PATTERNS + FILENAMES),
                                     lineno=rng.choice([None, None, 0, 2, 7]),
                                     all_frames=rng.random() < 0.5,
                                     domain=rng.choice([None, None, 0, 1])))
    return filters


def same_filters(filters, module):
    out = []
    for f in filters:
        if isinstance(f, (std.DomainFilter, memhound.DomainFilter)):
            out.append(module.DomainFilter(f.inclusive, f.domain))
        else:
            out.append(module.Filter(f.inclusive, f.filename_pattern, f.lineno, f.all_frames,
                                     f.domain))
    return out


@pytest.mark.parametrize("seed", SEEDS)
def test_filter_traces_equal_stdlib(seed):
    rng = random.Random(2000 + seed)
    raw = random_raw(rng, rng.randint(0, 300), allow_empty=seed % 4 == 0)
    s_std, s_mh = both(raw)
    for _ in range(25):
        f_std = random_filters(rng, std)
        f_mh = same_filters(f_std, memhound)
        expected = outcome(lambda: s_std.filter_traces(f_std).traces._traces)
        got = outcome(lambda: s_mh.filter_traces(f_mh).traces._traces)
        assert got == expected, [vars(f) for f in f_mh]
        # stdlib's own Filter objects work on a memhound snapshot too.
        assert outcome(lambda: s_mh.filter_traces(f_std).traces._traces) == expected


def test_filter_subclass_runs_python_match():
    class EvenSize(memhound.BaseFilter):
        def _match(self, trace):
            return trace[1] % 2 == 0

    raw = [(0, 2, (("a.py", 1),), 1), (0, 3, (("a.py", 1),), 1), (0, 4, (("b.py", 2),), 1)]
    snap = memhound.Snapshot(raw, 1)
    kept = snap.filter_traces([EvenSize(True), memhound.Filter(False, "b.py")])
    assert [t.size for t in kept.traces] == [2]


def test_fnmatch_subset_equals_fnmatch():
    rng = random.Random(7)
    alphabet = "ab-!^[]\\*?c"
    checked = 0
    for _ in range(20000):
        pattern = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 7)))
        name = "".join(rng.choice("ab-!^[]\\c") for _ in range(rng.randint(0, 5)))
        try:
            expected = fnmatch.fnmatch(name, pattern)
        except re.error:
            continue
        assert memhound._core.SnapshotData._fnmatch(name, pattern) == expected, (name, pattern)
        checked += 1
    assert checked > 15000


def test_fnmatch_normalizes_pyc_like_tracemalloc():
    fm = memhound._core.SnapshotData._fnmatch
    assert fm("a.pyc", "a.py")
    assert not fm("a.pyo", "a.py")
    assert fm("x\ny", "x?y")          # '?' and '*' match newlines (re.DOTALL)
    assert fm("x\n\ny", "x*y")


def test_traces_sequence_is_lazy_and_equal():
    raw = random_raw(random.Random(3), 200)
    s_std, s_mh = both(raw)
    assert len(s_mh.traces) == len(raw)
    assert [t._trace for t in s_mh.traces] == raw
    assert s_mh.traces[-1]._trace == raw[-1]
    assert [t._trace for t in s_mh.traces[5:9]] == raw[5:9]
    assert s_mh.traces[3] in s_mh.traces
    assert s_mh.traces == memhound.Snapshot(raw, 3).traces
    assert s_mh.traces != memhound.Snapshot(raw[:-1], 3).traces
    with pytest.raises(IndexError):
        s_mh.traces[len(raw)]


def test_raw_export_shares_identical_tracebacks():
    frames = (("a.py", 1), ("b.py", 2))
    raw = [(0, 1, frames, 2), (0, 2, tuple(list(frames)), 2), (1, 3, frames, 2)]
    exported = memhound.Snapshot(raw, 2).traces._traces
    assert exported == raw
    assert exported[0][2] is exported[1][2] is exported[2][2]


def test_from_tracemalloc_on_real_stdlib_snapshot():
    std.start(3)
    try:
        junk = [str(i) * 3 for i in range(2000)]   # noqa: F841
        std_snap = std.take_snapshot()
    finally:
        std.stop()
    snap = memhound.Snapshot.from_tracemalloc(std_snap)
    assert snap.traceback_limit == 3
    assert snap.traces._traces == std_snap.traces._traces
    for key, cumulative in KEYS:
        assert rows(snap.statistics(key, cumulative)) == rows(std_snap.statistics(key, cumulative))
    this_file = [s for s in snap.statistics("filename") if s.traceback[0].filename == __file__]
    assert this_file and this_file[0].count >= 2000
    with pytest.raises(TypeError, match="expected a tracemalloc.Snapshot, not int"):
        memhound.Snapshot.from_tracemalloc(5)


def test_function_names_are_kept_but_not_compared():
    raw = [(0, 8, (("a.py", 1, "f"), ("b.py", 2, None)), 2)]
    snap = memhound.Snapshot(raw, 2)
    tb = snap.traces[0].traceback
    assert [f.function for f in tb] == [None, "f"]      # oldest first
    assert tb == memhound.Traceback((("a.py", 1), ("b.py", 2)))
    stat = snap.statistics("lineno")[0]
    assert stat.traceback[0].function == "f"
    assert snap.traces._traces == [(0, 8, (("a.py", 1), ("b.py", 2)), 2)]


def test_snapshot_pickles_in_raw_format():
    import pickle
    snap = memhound.Snapshot([(0, 8, (("a.py", 1),), 1)], 1)
    snap.metadata["run"] = 3
    copy = pickle.loads(pickle.dumps(snap))
    assert copy.traces == snap.traces and copy.metadata == {"run": 3}
    assert copy.traceback_limit == 1


def test_str_subclass_hash_is_not_called():
    class Evil(str):
        def __hash__(self):
            raise AssertionError("user __hash__ called")

    raw = [(0, 8, ((Evil("a.py"), 1),), 1), (0, 8, (("a.py", 1),), 1)]
    stats = memhound.Snapshot(raw, 1).statistics("filename")
    assert [(s.traceback[0].filename, s.count) for s in stats] == [("a.py", 2)]


def test_module_has_tracemalloc_names():
    missing = {name for name in dir(std)
               if not name.startswith("__") and not hasattr(memhound, name)}
    # only stdlib's own imports are not re-exported
    assert missing <= {"Iterable", "Sequence", "fnmatch", "os", "pickle", "total_ordering"}
    old = {memhound.Traceback((("a.py", 1),)): memhound.Statistic(None, 5, 1)}
    new = {memhound.Traceback((("a.py", 1),)): memhound.Statistic(None, 7, 2)}
    assert [(d.size, d.size_diff) for d in memhound._compare_grouped_stats(old, new)] == [(7, 2)]
