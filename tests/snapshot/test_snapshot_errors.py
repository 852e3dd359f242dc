"""Bad input to the snapshot API: tracemalloc's exception types and messages
where it has them, otherwise a clear message."""
import tracemalloc as std

import pytest

import memhound

RAW = [(0, 10, (("a.py", 2), ("b.py", 4)), 3), (1, 3, (("c.py", 1),), 1)]


def both_raise(func):
    """Run func(module) for stdlib and memhound; both must raise the same."""
    errors = []
    for module in (std, memhound):
        with pytest.raises(Exception) as info:
            func(module)
        errors.append((type(info.value), str(info.value)))
    assert errors[0] == errors[1]
    return errors[1]


@pytest.mark.parametrize("key", ["foo", "", None, ["lineno"], 1])
def test_unknown_key_type(key):
    exc, msg = both_raise(lambda m: m.Snapshot(RAW, 2).statistics(key))
    assert exc is ValueError and msg == "unknown key_type: %r" % (key,)
    both_raise(lambda m: m.Snapshot(RAW, 2).compare_to(m.Snapshot(RAW, 2), key))


def test_cumulative_traceback():
    exc, msg = both_raise(lambda m: m.Snapshot(RAW, 2).statistics("traceback", True))
    assert msg == "cumulative mode cannot by used with key type 'traceback'"


@pytest.mark.parametrize("filters", [5, None, 3.5])
def test_filters_not_iterable(filters):
    exc, msg = both_raise(lambda m: m.Snapshot(RAW, 2).filter_traces(filters))
    assert exc is TypeError and msg.startswith("filters must be a list of filters, not ")


def test_filter_is_not_a_filter():
    exc, msg = both_raise(lambda m: m.Snapshot(RAW, 2).filter_traces(["a.py"]))
    assert exc is AttributeError and "'inclusive'" in msg
    exc, msg = both_raise(lambda m: m.Snapshot(RAW, 2).filter_traces(m.Filter(True, "a")))
    assert msg == "filters must be a list of filters, not Filter"


@pytest.mark.parametrize("pattern", [123, b"a.py", None])
def test_filter_pattern_type(pattern):
    exc, msg = both_raise(lambda m: m.Filter(True, pattern))
    assert exc is TypeError


def test_filter_pattern_attribute_is_read_only():
    f = memhound.Filter(True, "a.py")
    with pytest.raises(AttributeError):
        f.filename_pattern = "b.py"


def test_unusual_lineno_and_domain_types_behave_like_stdlib():
    # Not ints: memhound falls back to tracemalloc's Python matching.
    for lineno in (2.0, "2", True):
        for module in (std, memhound):
            kept = module.Snapshot(RAW, 2).filter_traces(
                [module.Filter(True, "a.py", lineno=lineno)])
            if module is std:
                expected = kept.traces._traces
        assert kept.traces._traces == expected
    for domain in ("0", 0.0, None):
        got = memhound.Snapshot(RAW, 2).filter_traces([memhound.DomainFilter(True, domain)])
        ref = std.Snapshot(RAW, 2).filter_traces([std.DomainFilter(True, domain)])
        assert got.traces._traces == ref.traces._traces


def test_empty_traceback_errors_like_stdlib():
    raw = [(0, 1, (), 0)]
    exc, msg = both_raise(lambda m: m.Snapshot(raw, 1).statistics("filename"))
    assert exc is IndexError
    exc, msg = both_raise(lambda m: m.Snapshot(raw, 1).filter_traces([m.Filter(True, "*")]))
    assert exc is IndexError
    assert memhound.Snapshot(raw, 1).statistics("lineno")[0].traceback._frames == ()


def test_compare_to_wrong_type():
    with pytest.raises(TypeError, match="expected a Snapshot, not int"):
        memhound.Snapshot(RAW, 2).compare_to(5, "lineno")


@pytest.mark.parametrize("raw, exc, message", [
    (5, TypeError, "traces must be a sequence of raw trace tuples"),
    ([5], TypeError, "raw trace 0: trace must be a (domain, size, frames, total_nframe) "
                     "tuple, not int"),
    ([(0, 1)], ValueError, "raw trace 0: expected 4 items (domain, size, frames, "
                           "total_nframe), got 2"),
    ([RAW[0], ("0", 1, (), 1)], TypeError, "raw trace 1: domain must be int, not str"),
    ([(0, 1.5, (), 1)], TypeError, "raw trace 0: size must be int, not float"),
    ([(0, -1, (), 1)], OverflowError, "raw trace 0: size out of range"),
    ([(2**32, 1, (), 1)], OverflowError, "raw trace 0: domain out of range"),
    ([(0, 1, "a.py", 1)], TypeError, "raw trace 0: frames must be a tuple, not str"),
    ([(0, 1, ("a.py",), 1)], TypeError, "raw trace 0: frame must be a (filename, lineno) "
                                        "tuple, not str"),
    ([(0, 1, ((1, 2),), 1)], TypeError, "raw trace 0: frame filename must be str, not int"),
    ([(0, 1, (("a", "2"),), 1)], TypeError, "raw trace 0: frame lineno must be int, not str"),
    ([(0, 1, (("a", 2**40),), 1)], OverflowError, "raw trace 0: frame lineno out of range"),
    ([(0, 1, (("a", 2, 3),), 1)], TypeError, "raw trace 0: frame function must be str or "
                                             "None, not int"),
    ([(0, 1, (), -1)], OverflowError, "raw trace 0: total_nframe out of range"),
    ([(0, 1, (), "1")], TypeError, "raw trace 0: total_nframe must be int or None, not str"),
])
def test_bad_raw_traces(raw, exc, message):
    with pytest.raises(exc) as info:
        memhound.Snapshot(raw, 1)
    assert str(info.value) == message


def test_take_snapshot_not_tracing():
    if memhound.is_tracing():
        memhound.stop()
    with pytest.raises(RuntimeError) as info:
        memhound.take_snapshot()
    assert str(info.value) == ("the tracemalloc module must be tracing memory allocations "
                               "to take a snapshot")


def test_trace_index_errors():
    traces = memhound.Snapshot(RAW, 2).traces
    with pytest.raises(IndexError, match="trace index out of range"):
        traces[2]
    with pytest.raises(IndexError, match="trace index out of range"):
        traces[-3]
    with pytest.raises(TypeError):
        traces["0"]


def test_dump_bad_metadata_type(tmp_path):
    data = memhound.Snapshot(RAW, 2).traces._data
    with pytest.raises(TypeError, match="metadata must be a JSON str or None, not int"):
        data.dump(tmp_path / "x", 5)
