"""Leaks that only native code holds: the heap walk cannot reach them, the
tracer's blocks still show them (leaks.py's orphan groups)."""
import ctypes
import sys

import pytest

import memhound

_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_mem_malloc = ctypes.pythonapi.PyMem_Malloc
_mem_malloc.restype = ctypes.c_void_p
_mem_malloc.argtypes = [ctypes.c_size_t]
_intern = ctypes.pythonapi.PyUnicode_InternFromString
_intern.restype = ctypes.py_object
_intern.argtypes = [ctypes.c_char_p]
_count = [0]
# Objects leaked per call: more than the few blocks another thread of the
# test process (pytest-xdist's I/O) may allocate or free during a run.
PER_CALL = 4


def _line_of(func, text):
    import inspect
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, line in enumerate(lines) if text in line)


def leak_str():
    for _ in range(PER_CALL):
        _count[0] += 1
        s = "payload-%d" % _count[0] * 3
        _incref(s)                               # native code forgets its Py_DECREF


def leak_tuple():
    for _ in range(PER_CALL):
        _count[0] += 1
        t = (_count[0] * 7919, "x")
        _incref(t)


def leak_native_memory():
    for _ in range(PER_CALL):
        _mem_malloc(1000)


def leak_interned():
    for _ in range(PER_CALL):
        _count[0] += 1
        _intern(b"interned-key-%d" % _count[0])


def balanced():
    _count[0] += 1
    s = "payload-%d" % _count[0] * 3
    _incref(s)
    ctypes.pythonapi.Py_DecRef(ctypes.py_object(s))


def _only_group(report):
    assert report.leaked, str(report)
    assert len(report.groups) == 1, str(report)
    return report.groups[0]


def test_orphan_str_is_grouped_at_its_creation_line():
    g = _only_group(memhound.find_leaks(leak_str, runs=5))
    assert (g.type, g.cause, g.count, g.count_per_run) == ("str", "external-reference",
                                                            5 * PER_CALL, PER_CALL)
    assert g.created_at[0] == (__file__, _line_of(leak_str, '"payload-%d"'), "leak_str")
    assert "nothing in Python refers to it" in g.path_text
    assert "%s:%d in leak_str" % (__file__, g.created_at[0][1]) in g.path_text
    assert g.to_dict()["cause"] == "external-reference"


def test_orphan_container_is_one_group_with_its_contents():
    g = _only_group(memhound.find_leaks(leak_tuple, runs=4))
    assert (g.type, g.count) == ("tuple", 4 * PER_CALL)
    # the tuple's fresh int is inside the group, not a group of its own
    assert g.bytes >= 4 * PER_CALL * (sys.getsizeof((1, "x")) + sys.getsizeof(7919 * 7919))


def test_native_memory_is_reported_by_allocation_site():
    g = _only_group(memhound.find_leaks(leak_native_memory, runs=5))
    assert (g.type, g.cause, g.count) == (memhound.leaks.RAW_MEMORY, "native-memory", 5 * PER_CALL)
    assert g.bytes == 5 * PER_CALL * 1000
    assert g.created_at[0][1] == _line_of(leak_native_memory, "_mem_malloc(1000)")


@pytest.mark.skipif(sys.version_info[:2] != (3, 12),
                    reason="PyUnicode_InternFromString makes immortal strings on 3.12 only")
def test_immortal_interned_strings_are_named():
    g = _only_group(memhound.find_leaks(leak_interned, runs=5))
    assert (g.type, g.cause, g.count) == ("str", "interned-string", 5 * PER_CALL)
    assert "interned strings" in g.path_text


def test_balanced_native_references_are_no_leak():
    report = memhound.find_leaks(balanced, runs=5)
    assert not report.leaked and report.groups == [], str(report)
