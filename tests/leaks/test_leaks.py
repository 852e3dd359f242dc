"""Leak finder scenarios: every cause code is detected, with type, creation
line, holder names and cause; non-leaks are not reported."""
import collections
import ctypes
import functools
import gc
import re
import sys
import weakref

import pytest

import memhound
from memhound import _core
from memhound.leaks import HINTS, LeakReport

from conftest import marker_line

MOD = __name__


def line_of(marker):
    """Line number of the source line carrying `marker` in this file."""
    return marker_line(__file__, marker)


def group_of(report, type_suffix):
    for g in report.groups:
        if g.type == type_suffix or g.type.endswith("." + type_suffix):
            return g
    raise AssertionError("no group %s in %r" % (type_suffix, [(g.type, g.cause) for g in report.groups]))


def check(report, type_name, cause, marker, *holders, runs=5):
    assert report.leaked, report
    g = group_of(report, type_name)
    assert g.cause == cause, (g.cause, g.path_text)
    assert g.count == runs and g.count_per_run == 1, (g.count, g.count_per_run)
    for h in holders:
        assert h in g.path_text, (h, g.path_text)
    assert g.created_at, "no creation traceback"
    assert g.created_at[0][0] == __file__
    assert g.created_at[0][1] == line_of(marker), (g.created_at, line_of(marker))
    # The cause's fix closes the hint, after what this case shows (issue 17,
    # item 6: the container, the line that grows it).
    assert g.hint == HINTS[cause] or g.hint.endswith("; " + HINTS[cause]), g.hint
    return g


class Item:
    def __init__(self, n=0):
        self.n = n


# ---- global-collection -----------------------------------------------------
_seen = []


def global_leak():
    _seen.append(Item(len(_seen)))  # LEAK:global


def test_global_collection():
    r = memhound.find_leaks(global_leak)
    g = check(r, "Item", "global-collection", "LEAK:global", "module " + MOD, "global _seen (list)")
    assert g.type == MOD + ".Item"
    assert g.path[0] == ("module", MOD, "module")
    assert g.path[1][:2] == ("global", "_seen")
    assert g.path[2][0] == "index" and re.fullmatch(r"\[\d+\]", g.path[2][1])
    assert g.path_text.endswith("-> " + MOD + ".Item")
    assert all(d >= 1 for d in r.deltas["blocks"])
    assert g.bytes >= 5 * object.__sizeof__(Item())


# ---- class-collection ------------------------------------------------------
class Registry:
    instances = []


def class_leak():
    Registry.instances.append(Item())  # LEAK:class


def test_class_collection():
    r = memhound.find_leaks(class_leak)
    check(r, "Item", "class-collection", "LEAK:class",
          "class %s.Registry" % MOD, "class attribute instances (list)")


# ---- instance-collection (inline attribute storage, no __dict__) -----------
class Session:
    def __init__(self):
        self.handlers = {}


_session = Session()
_hcount = [0]


def instance_leak():
    _hcount[0] += 1
    _session.handlers["h%d" % _hcount[0]] = Item()  # LEAK:instance


def test_instance_collection_inline_attributes():
    r = memhound.find_leaks(instance_leak)
    g = check(r, "Item", "instance-collection", "LEAK:instance",
              "global _session (%s.Session)" % MOD, "attribute handlers (dict)")
    assert g.path[-1][0] == "key" and g.path[-1][1].startswith("['h")


class Slotted:
    __slots__ = ("held",)


_slotted = Slotted()
_slotted.held = []


def slots_leak():
    _slotted.held.append(Item())  # LEAK:slots


def test_instance_collection_slots():
    r = memhound.find_leaks(slots_leak)
    check(r, "Item", "instance-collection", "LEAK:slots", "global _slotted", "attribute held (list)")


class Plain:
    pass


_plain = Plain()
_plain.__dict__  # materialised on purpose: the path must still name the attribute
_plain.bag = []


def dict_attr_leak():
    _plain.bag.append(Item())  # LEAK:dictattr


def test_instance_collection_materialised_dict():
    r = memhound.find_leaks(dict_attr_leak)
    check(r, "Item", "instance-collection", "LEAK:dictattr", "global _plain", "attribute bag (list)")


# ---- lru-cache -------------------------------------------------------------
@functools.lru_cache(maxsize=None)
def compute(x):
    return Item(x)  # LEAK:lru


_lru_n = [0]


def lru_leak():
    _lru_n[0] += 1
    compute(_lru_n[0] + 10 ** 6)


def test_lru_cache():
    r = memhound.find_leaks(lru_leak)
    check(r, "Item", "lru-cache", "LEAK:lru", "lru_cache of %s.compute" % MOD)


# ---- generator -------------------------------------------------------------
def worker():
    buf = Item()  # LEAK:gen
    yield 1
    yield buf


_gens = []


def generator_leak():
    gen = worker()
    next(gen)
    _gens.append(gen)


def test_generator():
    r = memhound.find_leaks(generator_leak)
    check(r, "Item", "generator", "LEAK:gen", "global _gens", "worker() local buf")


# ---- exception-traceback ---------------------------------------------------
_errors = []


def failing():
    payload = Item()  # LEAK:exc
    raise ValueError("boom %r" % (payload is None))


def exception_leak():
    try:
        failing()
    except ValueError as exc:
        _errors.append(exc)


def test_exception_traceback():
    r = memhound.find_leaks(exception_leak)
    g = check(r, "Item", "exception-traceback", "LEAK:exc",
              "global _errors", "__traceback__", "tb_frame", "failing() local payload")
    assert [s[0] for s in g.path].count("traceback") >= 2


# ---- closure ---------------------------------------------------------------
def make_adder():
    items = []

    def add(x):
        items.append(x)
    return add


_add = make_adder()


def closure_leak():
    _add(Item())  # LEAK:closure


def test_closure():
    r = memhound.find_leaks(closure_leak)
    check(r, "Item", "closure", "LEAK:closure", "global _add (function)", "closure variable items (list)")


# ---- external-reference ----------------------------------------------------
_incref = ctypes.pythonapi.Py_IncRef
_incref.argtypes = [ctypes.py_object]
_external = []


def external_leak():
    obj = Item()  # LEAK:external
    _incref(obj)          # a missing Py_DECREF in native code
    _external.append(id(obj))


def test_external_reference():
    r = memhound.find_leaks(external_leak)
    g = check(r, "Item", "external-reference", "LEAK:external", "held outside Python")
    assert g.path[0][0] == "external"
    assert g.external_refs >= 1
    assert g.to_dict()["external_refs"] >= 1


# ---- uncollectable ---------------------------------------------------------
def uncollectable_leak():
    a = Item()  # LEAK:uncollectable
    a.me = a


def test_uncollectable():
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        r = memhound.find_leaks(uncollectable_leak)
    finally:
        gc.set_debug(0)
        del gc.garbage[:]
    check(r, "Item", "uncollectable", "LEAK:uncollectable", "module gc", "global garbage (list)")


# ---- untracked survivors: str, int, bytes ----------------------------------
_strs = []
_ints = []
_blobs = {}


def str_leak():
    _strs.append("request-%d" % len(_strs) * 2)  # LEAK:str


def int_leak():
    _ints.append(10 ** 15 + len(_ints))  # LEAK:int


def bytes_leak():
    _blobs[len(_blobs)] = b"x%d" % len(_blobs)  # LEAK:bytes


@pytest.mark.parametrize("func,type_name,marker,holder", [
    (str_leak, "str", "LEAK:str", "global _strs (list)"),
    (int_leak, "int", "LEAK:int", "global _ints (list)"),
    (bytes_leak, "bytes", "LEAK:bytes", "global _blobs (dict)"),
])
def test_untracked_survivors(func, type_name, marker, holder):
    r = memhound.find_leaks(func)
    g = check(r, type_name, "global-collection", marker, holder)
    assert g.type == type_name      # builtins by plain name


# ---- not leaks -------------------------------------------------------------
@functools.lru_cache(maxsize=2)
def bounded(x):
    return Item(x)


_counter = [0]


def bounded_lru_use():
    _counter[0] += 1
    bounded(_counter[0])


_wvd = weakref.WeakValueDictionary()


def weak_cache_use():
    it = Item()
    _wvd[id(it)] = it


class Finalized:
    def __del__(self):
        pass


def cycles_with_del():
    a = Finalized()
    b = Finalized()
    a.other, b.other = b, a


def re_cache_use():
    _counter[0] += 1
    re.compile("x%d+" % (_counter[0] % 7)).match("x1")


_memo = {}


def memo_fixed_keys():
    _counter[0] += 1
    key = _counter[0] % 3
    if key not in _memo:
        _memo[key] = Item(key)


def temporary_work():
    data = [Item(i) for i in range(200)]
    index = {str(i): it for i, it in enumerate(data)}
    return len(index) + sum(len(s) for s in map(str, range(100)))


@pytest.mark.parametrize("func", [bounded_lru_use, weak_cache_use, cycles_with_del, re_cache_use,
                                  memo_fixed_keys, temporary_work])
def test_not_reported(func):
    r = memhound.find_leaks(func, warmup=3, runs=5)
    assert not r.leaked, (r.deltas, [(g.type, g.path_text) for g in r.groups])
    assert r.groups == []
    assert "no leak" in str(r)


# ---- report shape ------------------------------------------------------------
def test_json_contract_shape():
    r = memhound.find_leaks(global_leak, warmup=2, runs=4)
    d = r.to_dict()
    assert set(d) >= {"leaked", "warmup", "runs", "deltas", "groups"}
    assert d["leaked"] is True and d["warmup"] == 2 and d["runs"] == 4
    assert set(d["deltas"]) == {"blocks", "objects", "bytes"}
    assert all(len(v) == 4 for v in d["deltas"].values())
    g = next(g for g in d["groups"] if g["type"] == MOD + ".Item")
    assert set(g) >= {"type", "count", "count_per_run", "bytes", "created_at", "path",
                      "path_text", "cause", "hint"}
    assert g["count"] == 4 and g["count_per_run"] == 1
    assert set(g["created_at"][0]) == {"filename", "lineno", "function"}
    assert g["created_at"][0]["function"] == "global_leak"
    assert g["path"][0] == {"kind": "module", "label": MOD, "type": "module"}
    assert g["path"][1]["kind"] == "global" and g["path"][1]["label"] == "_seen"
    assert g["path_text"].startswith("module %s -> global _seen (list) -> [" % MOD)
    import json
    assert json.loads(json.dumps(d)) == d


def test_str_report_has_hint_per_group():
    r = memhound.find_leaks(class_leak)
    text = str(r)
    assert text.startswith("LEAK")
    for g in r.groups:
        assert g.path_text in text and "fix: " + g.hint in text
    assert isinstance(r, LeakReport) and bool(r) is True


# ---- objects whose __repr__/__eq__/__hash__/__sizeof__ raise ----------------
class Hostile:
    def __repr__(self):
        raise RuntimeError("repr called")

    def __eq__(self, other):
        raise RuntimeError("eq called")

    def __hash__(self):
        return id(self) >> 4

    def __sizeof__(self):
        raise RuntimeError("sizeof called")


_hostile_map = {}
_hostile_set = set()


def hostile_leak():
    key = Hostile()  # LEAK:hostile
    _hostile_map[key] = Hostile()
    _hostile_set.add(Hostile())


def test_hostile_objects_are_never_called():
    r = memhound.find_leaks(hostile_leak)
    assert r.leaked
    groups = [g for g in r.groups if g.type == MOD + ".Hostile"]
    assert groups and all(g.cause == "global-collection" for g in groups)
    text = " ".join(g.path_text for g in groups)
    assert "global _hostile_map (dict)" in text
    assert "dict key" in text or "<%s.Hostile object>" % MOD in text
    str(r)


# ---- arguments, exceptions, state --------------------------------------------
class Boom(Exception):
    pass


def raising():
    raise Boom("from func")


@pytest.mark.parametrize("kwargs,exc,msg", [
    ({"warmup": -1}, ValueError, "warmup must be >= 0, got -1"),
    ({"runs": 0}, ValueError, "runs must be >= 1, got 0"),
    ({"frames": 0}, ValueError, "frames must be >= 1, got 0"),
    ({"frames": 65536}, ValueError, "frames must be <= 65535, got 65536"),
    ({"runs": 2.5}, TypeError, "runs must be an int, not float"),
])
def test_bad_arguments(kwargs, exc, msg):
    with pytest.raises(exc) as info:
        memhound.find_leaks(global_leak, **kwargs)
    assert msg in str(info.value)


def test_not_callable():
    with pytest.raises(TypeError, match="func must be callable, not int"):
        memhound.find_leaks(3)


@pytest.mark.parametrize("tracing", [False, True])
def test_func_raises_propagates_and_restores_state(tracing):
    if tracing:
        _core.start(5)
    try:
        gc_enabled = gc.isenabled()
        with pytest.raises(Boom) as info:
            memhound.find_leaks(raising)
        assert str(info.value) == "from func"
        assert info.traceback[-1].name == "raising"
        assert _core.is_tracing() is tracing
        assert gc.isenabled() == gc_enabled
        if tracing:
            assert _core.get_traceback_limit() == 5
    finally:
        if tracing:
            _core.stop()


def test_raise_in_measured_run_restores_state():
    calls = [0]

    def fails_later():
        calls[0] += 1
        if calls[0] == 5:
            raise KeyError("late")
    with pytest.raises(KeyError):
        memhound.find_leaks(fails_later, warmup=2, runs=5)
    assert not _core.is_tracing()
    assert gc.isenabled()


def test_args_and_kwargs_are_passed():
    got = []
    r = memhound.find_leaks(lambda a, b=0: got.append(0) if (a, b) != (1, 2) else None,
                            1, b=2, warmup=1, runs=2)
    assert got == [] and not r.leaked


# ---- survivors() -------------------------------------------------------------
_kept = {}


def test_survivors_context_manager():
    with memhound.survivors(frames=4) as s:
        _kept["k"] = Item()  # LEAK:survivors
        junk = [Item() for _ in range(10)]
        del junk
    r = s.report()
    assert r.leaked
    g = group_of(r, "Item")
    assert g.count == 1
    assert g.path_text == "module %s -> global _kept (dict) -> ['k'] -> %s.Item" % (MOD, MOD)
    assert g.created_at[0][1] == line_of("LEAK:survivors")
    assert len(g.created_at) <= 4


def test_survivors_empty_block_reports_nothing_of_memhound():
    with memhound.survivors() as s:
        pass
    assert s.report().groups == []
    assert not s.report().leaked


class Reused:
    __slots__ = ("n", "value")

    def __init__(self, n):
        self.n = n
        self.value = float(n) + 0.5


_reused = []


def test_survivors_at_addresses_freed_during_the_block():
    # Objects created where objects alive at the census were freed: the
    # census knows addresses only, the tracer knows the blocks are new.
    # Tracing starts first: a float taken from the free list is known new
    # only when its block was traced (README: free lists).
    memhound.start()
    try:
        old = [Reused(n) for n in range(300)]
        old_ids = {id(o) for o in old}
        with memhound.survivors() as s:
            old.clear()
            _reused.extend(Reused(n) for n in range(300))
    finally:
        memhound.stop()
    reused = sum(id(o) in old_ids for o in _reused)
    report = s.report()
    _reused.clear()
    assert reused > 0, "the allocator gave no freed address back: nothing tested"
    g = group_of(report, "Reused")
    assert g.count == 300, str(report)
    assert g.path_text.startswith("module %s -> global _reused (list) -> [" % MOD)
    floats = [c for c in g.contents if c["type"] == "float"]
    assert floats and floats[0]["count"] == 300, g.contents
    assert not [x for x in report.groups if x.cause in ("external-reference", "native-memory")], str(report)


def test_survivors_exception_propagates():
    with pytest.raises(Boom):
        with memhound.survivors() as s:
            raise Boom("inside")
    with pytest.raises(RuntimeError, match="only available after the with block"):
        s.report()
    assert not _core.is_tracing()


def test_survivors_bad_frames():
    with pytest.raises(ValueError, match="frames must be >= 1"):
        memhound.survivors(frames=0)


# ---- thread stacks -----------------------------------------------------------
def test_thread_stack_root():
    holder = collections.deque()
    with memhound.survivors() as s:
        holder.append(Item())  # LEAK:stack
    r = s.report()
    g = group_of(r, "Item")
    assert g.path[0][0] == "thread"
    assert "test_thread_stack_root() local holder" in g.path_text
    assert g.path[-1][:2] == ("member", "deque member")


# ---- coroutine frames --------------------------------------------------------
class _Suspend:
    def __await__(self):
        yield


async def handler():
    conn = Item()  # LEAK:coro
    await _Suspend()
    return conn


_pending = []


def coroutine_leak():
    coro = handler()
    coro.send(None)
    _pending.append(coro)


def test_suspended_coroutine():
    r = memhound.find_leaks(coroutine_leak)
    check(r, "Item", "generator", "LEAK:coro", "global _pending (list)", "handler() local conn")
