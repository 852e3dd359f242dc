"""The C heap graph (_core.heap_census / heap_graph): errors, memory limits,
deep structures."""
import gc
import warnings

import pytest

import memhound
from memhound import _core

MOD = __name__


class Node:
    __slots__ = ("next",)

    def __init__(self, nxt):
        self.next = nxt


def test_census_and_graph_basics():
    gc.collect()
    census = _core.heap_census()
    assert len(census) > 1000 and census.nbytes >= 8 * len(census)
    keep = [Node(None) for _ in range(3)]
    gc.disable()
    try:
        graph = _core.heap_graph(census)
        assert census.nbytes == 0          # consumed by the graph
        found = [s for s in graph.survivors() if s[0] in keep]
        assert len(found) == 3
        obj, node, anchor, extra = found[0]
        assert extra == 0 and graph.found(node) >= 1 and graph.extra(node) >= 0
        path = graph.path(node)
        assert path[-1][2] == MOD + ".Node" and path[-1][3] is True
        stats = graph.stats()
        assert stats["nodes"] >= stats["survivors"] >= 3 and stats["edges"] > 0
        graph.close()
        graph.close()                      # idempotent
        with pytest.raises(ValueError, match="the heap graph is closed"):
            graph.survivors()
        with pytest.raises(ValueError, match="the heap graph is closed"):
            graph.path(0)
    finally:
        gc.enable()


def test_graph_argument_errors():
    census = _core.heap_census()
    with pytest.raises(TypeError, match="argument 1 must be HeapCensus, not int"):
        _core.heap_graph(1)
    with pytest.raises(TypeError, match="argument 2 must be str or None"):
        _core.heap_graph(census, 5)
    with pytest.raises(TypeError, match="takes a census"):
        _core.heap_graph()
    graph = _core.heap_graph(census)
    with pytest.raises(IndexError, match="node index -1 out of range"):
        graph.path(-1)
    with pytest.raises(IndexError, match="out of range"):
        graph.extra(10 ** 9)
    graph.close()
    with pytest.raises(ValueError, match="the heap census is closed"):
        _core.heap_graph(census)


def test_memory_errors_are_clean():
    gc.collect()
    try:
        _core._set_memory_limit(_core.get_tracemalloc_memory() + 1024)
        with pytest.raises(MemoryError, match="not enough memory for the heap census"):
            _core.heap_census()
    finally:
        _core._set_memory_limit(0)
    census = _core.heap_census()
    try:
        _core._set_memory_limit(_core.get_tracemalloc_memory() + 4096)
        with pytest.raises(MemoryError, match="not enough memory for the heap graph"):
            _core.heap_graph(census)
    finally:
        _core._set_memory_limit(0)
        census.close()
    # still usable afterwards
    with memhound.survivors() as s:
        pass
    assert s.report().groups == []


_chain = []


def _tail():
    tail = _chain[0]
    while tail.next is not None:
        tail = tail.next
    return tail


def _append_at_tail():
    _tail().next = Node(None)


def test_million_long_linked_list_path():
    head = None
    for _ in range(1_000_000):
        head = Node(head)
    _chain.append(head)
    del head
    try:
        with memhound.survivors() as s:
            _append_at_tail()
        r = s.report()
        g = r.groups[0]
        assert g.type == MOD + ".Node" and g.count == 1
        assert g.path_text.startswith("module %s -> global _chain (list) -> [0]" % MOD)
        elided = [p for p in g.path if p[0] == "elided"]
        assert len(elided) == 1 and elided[0][1].endswith("more steps")
        assert int(elided[0][1].split()[0]) > 999_000
        assert g.path[-1] == ("attr", "next", MOD + ".Node")
        assert len(g.path) < 80
    finally:
        _chain.clear()


def test_many_survivors_one_group():
    keep = []
    with memhound.survivors() as s:
        h = None
        for _ in range(20_000):
            h = Node(h)
        keep.append(h)
        del h
    g = s.report().groups[0]
    assert g.count == 20_000 and g.type == MOD + ".Node"
    assert g.path_text.endswith("-> %s.Node" % MOD)
    keep.clear()


def test_never_reports_own_objects():
    census = _core.heap_census()
    gc.disable()
    try:
        graph = _core.heap_graph(census, memhound.leaks._OWN_DIR)
        kinds = [type(o).__name__ for o, *_ in graph.survivors()]
        graph.close()
    finally:
        gc.enable()
    assert "HeapCensus" not in kinds and "HeapGraph" not in kinds


_grow = []


def _grow_leak():
    _grow.append(Node(None))


def test_analysis_failure_degrades_to_warning():
    gc.collect()
    _core.start(1)       # the tracer's tables exist before the squeeze, which targets the analysis
    base = _core.get_tracemalloc_memory()
    try:
        _core._set_memory_limit(base + 256 * 1024)
        # The squeeze may also stop the tracer, with a warning of its own.
        with pytest.warns(RuntimeWarning) as caught:
            r = memhound.find_leaks(_grow_leak, runs=3)
    finally:
        _core._set_memory_limit(0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")      # the squeeze may also stop the tracer
            _core.stop()
    assert any("only the verdict is reported" in str(w.message) for w in caught), \
        [str(w.message) for w in caught]
    assert r.groups == []
    assert r.deltas["blocks"] and len(r.deltas["blocks"]) == 3


_frozen_holder = []


def test_frozen_objects_are_in_the_graph():
    gc.collect()
    gc.freeze()                      # everything now in the permanent generation
    try:
        with memhound.survivors() as s:
            _frozen_holder.append(Node(None))
    finally:
        gc.unfreeze()
    g = s.report().groups[0]
    assert g.type == MOD + ".Node"
    assert g.path_text.startswith("module %s -> global _frozen_holder (list) -> [" % MOD)


def test_every_path_kind_is_in_the_shared_vocabulary():
    """The kinds C emits come from heap_kinds.h, exported once; leaks.py's
    texts and cause tables use only that vocabulary."""
    import functools
    from memhound import leaks

    # Issue 17: the interpreter's registries are root kinds of their own.
    assert set(_core.ROOT_KINDS) == {"module", "class", "thread", "external", "at_fork",
                                     "atexit", "signal", "sys_modules", "codecs", "warnings",
                                     "threading", "audit_hooks", "interned"}
    assert set(leaks._REGISTRY_CAUSES) <= set(_core.ROOT_KINDS)
    assert set(leaks._REGISTRY_CAUSES.values()) <= set(leaks.HINTS)
    assert all("{}" in text or kind == "dict_key" for kind, text in _core.EDGE_KINDS.items())
    with pytest.raises(TypeError):
        _core.EDGE_KINDS["new"] = "{}"                  # read-only
    assert set(leaks._HOLDER_CAUSES) | set(leaks._OWNER_CAUSES) <= set(_core.EDGE_KINDS)
    assert set(leaks._HOLDER_CAUSES.values()) | set(leaks._OWNER_CAUSES.values()) <= set(leaks.HINTS)

    class Holder:
        items = []

    holder = Holder()
    holder.seen = set()
    store = {"by_key": {}, "list": [], "set": set()}

    @functools.lru_cache(maxsize=None)
    def cached(n):
        return [n]

    def closure_factory():
        kept = []

        def inner():
            kept.append(object.__new__(Node))
        return inner

    grow = closure_factory()

    def generator():
        local = [Node(None)]
        yield local

    gen = generator()
    next(gen)

    def step():
        _KEPT.append(Node(None))
        Holder.items.append(Node(None))
        holder.seen.add(Node(None))
        store["by_key"][len(store["by_key"])] = Node(None)
        store["list"].append(Node(None))
        cached(len(store["list"]))
        grow()
    step()
    with memhound.survivors() as s:
        step()
        step()
    kinds = set()
    for group in s.report().groups:
        assert group.cause in leaks.HINTS
        assert "{}" not in group.path_text
        root, *steps = group.path
        assert root[0] in _core.ROOT_KINDS
        kinds |= {step[0] for step in steps}
    assert kinds <= set(_core.EDGE_KINDS)
    assert {"global", "class_attr", "attr", "lru_cache", "closure", "key", "index"} <= kinds
    del gen
    _KEPT.clear()


_KEPT = []
