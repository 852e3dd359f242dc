"""One leak, one group, root cause first (issue 17, items 3 and 6).

Scenarios of the shapes the issue reports (grouping_scenarios.py): a leaked
object that keeps a thread alive, a method lru_cache holding self, an event
bus holding the same dict at several indexes, a stored exception keeping a
large buffer.  Each must give one group led by what matters, with the
objects it keeps listed under it, and a hint that names the container and
the line that grows it."""
import json
import weakref

import pytest

import grouping_scenarios as sc
import memhound
from memhound.leaks import HINTS

SC = sc.__name__
FILE = "grouping_scenarios.py"


def qualname(tp):
    return tp.__qualname__ if tp.__module__ == "builtins" else "%s.%s" % (tp.__module__,
                                                                         tp.__qualname__)


def contents(group):
    return {c["type"]: c for c in group.contents}


def assert_consistent(report):
    """Every group's contents add up to what it keeps; groups come largest
    first; the JSON contract keeps its keys and gains the new ones."""
    for g in report.groups:
        assert g.retained_bytes == sum(c["bytes"] for c in g.contents), g
        assert g.type in contents(g)
        assert contents(g)[g.type]["count"] == g.count
    kept = [g.retained_bytes for g in report.groups if not g.held_by_survivor]
    assert kept == sorted(kept, reverse=True)
    d = json.loads(json.dumps(report.to_dict()))
    for g in d["groups"]:
        assert set(g) >= {"type", "count", "count_per_run", "bytes", "created_at", "path",
                          "path_text", "cause", "hint", "held_by_survivor", "external_refs",
                          "retained_bytes", "contents"}
        assert all(set(c) == {"type", "count", "bytes"} for c in g["contents"])


def only_group(func):
    """The one group of find_leaks(func), checked for consistency."""
    r = memhound.find_leaks(func)
    assert r.leaked, str(r)
    assert_consistent(r)
    assert len(r.groups) == 1, [(g.type, g.path_text) for g in r.groups]
    return r.groups[0]


def test_leaked_object_leads_the_thread_it_keeps_alive():
    try:
        r = memhound.find_leaks(sc.thread_leak)
    finally:
        sc.close_clients()
    assert r.leaked
    assert_consistent(r)
    first = r.groups[0]
    assert first.type == SC + ".Client", [(g.type, g.path_text) for g in r.groups]
    assert first.count == 5 and first.count_per_run == 1
    assert first.created_at[0][1] == sc.line_of("LEAK:client")
    held = contents(first)
    weakref_type = qualname(weakref.ref)
    # The thread, its bookkeeping weakref, its event and buffer: under the client.
    for name in ("threading.Thread", weakref_type, "threading.Event", "bytearray"):
        assert held[name]["count"] >= 5, (name, first.contents)
    assert first.retained_bytes >= 5 * 8192
    # ... and nowhere else: no group of their own any more.
    others = {g.type for g in r.groups[1:]}
    assert not others & {"threading.Thread", weakref_type, "threading.Event",
                         "threading.Condition", "bytearray"}, others
    assert first.hint.startswith("`os.register_at_fork(after_in_child=self._reset)` at %s:%d "
                                 "adds one method per call to " % (FILE, sc.line_of("GROW:atfork")))
    assert "which keeps one %s.Client" % SC in first.hint


def test_method_lru_cache_holding_self_is_one_group():
    g = only_group(sc.lru_self_leak)
    assert g.type == SC + ".Resolver" and g.count == 5 and g.cause == "lru-cache"
    assert g.created_at[0][1] == sc.line_of("LEAK:resolver")
    assert g.path_text.endswith("lru_cache of %s.Resolver.resolve (dict) -> dict key (tuple) "
                                "-> [0] -> %s.Resolver" % (SC, SC))
    held = contents(g)
    assert held["bytearray"]["count"] == 15 and held["_thread.lock"]["count"] == 5
    assert held["function"]["count"] == 10
    assert g.hint == ('`r.resolve("host")` at %s:%d adds one tuple per call to lru_cache of '
                      '%s.Resolver.resolve (dict), which keeps one %s.Resolver; %s'
                      % (FILE, sc.line_of("GROW:resolve"), SC, SC, HINTS["lru-cache"]))


def test_event_bus_same_dict_at_several_indexes_is_one_group():
    g = only_group(sc.event_bus_leak)
    assert g.type == SC + ".Widget" and g.count == 5
    assert g.cause == "instance-collection"
    assert "global _bus (%s.EventBus) -> attribute subscribers (list) -> [" % SC in g.path_text
    held = contents(g)
    assert held["dict"]["count"] >= 10 and held["list"]["count"] >= 25
    assert g.hint.startswith(
        "`self.subscribers.append(entry)` at %s:%d adds one dict per call to attribute "
        "subscribers (list) of %s.EventBus, which keeps one %s.Widget; "
        % (FILE, sc.line_of("GROW:bus"), SC, SC))


def test_stored_exception_group_is_its_buffer():
    g = only_group(sc.stored_exception_leak)
    assert g.type == "bytearray" and g.count == 5
    assert g.cause == "exception-traceback"
    assert g.contents[0]["type"] == "bytearray"
    assert g.contents[0]["bytes"] >= 0.9 * g.retained_bytes
    assert {"ValueError", "traceback", "frame"} <= set(contents(g))
    assert "global _failures (list) -> [" in g.path_text
    assert g.path_text.endswith("parse() local scratch -> bytearray")
    assert g.created_at[0][1] == sc.line_of("LEAK:scratch")
    assert g.hint.startswith("`_failures.append(exc)` at %s:" % FILE)
    assert ("adds one ValueError per call to global _failures (list), which keeps one "
            "bytearray; " + HINTS["exception-traceback"]) in g.hint


def test_groups_rank_by_the_bytes_they_keep():
    r = memhound.find_leaks(sc.two_leaks)
    assert r.leaked
    assert_consistent(r)
    assert [g.type for g in r.groups] == ["bytearray", SC + ".Order"]
    assert r.groups[0].count_per_run == 1 and r.groups[1].count_per_run == 3
    assert r.groups[0].created_at[0][1] == sc.line_of("LEAK:big")
    assert "adds 3 %s.Order per call to global _small (list)" % SC in r.groups[1].hint
    text = str(r)
    assert text.index("#1 bytearray") < text.index("#2 %s.Order" % SC)


@pytest.mark.parametrize("func,marker,container,cause", [
    (sc.place_order, "GROW:history", "global _history (list)", "global-collection"),
    (sc.register_handler, "GROW:handlers",
     "attribute handlers (dict) of %s.Session" % SC, "instance-collection"),
])
def test_hint_names_the_line_the_container_and_the_count(func, marker, container, cause):
    r = memhound.find_leaks(func)
    g = r.groups[0]
    assert g.cause == cause
    line = sc.line_of(marker)
    with open(sc.__file__, encoding="utf-8") as f:
        code = f.read().splitlines()[line - 1].split("  #")[0].strip()
    assert g.hint == "`%s` at %s:%d adds one %s.Order per call to %s; %s" % (
        code, FILE, line, SC, container, HINTS[cause])
    assert "fix: " + g.hint in str(r)


def test_hint_without_a_growth_line_names_the_creation_line():
    r = memhound.find_leaks(sc.deque_leak)
    assert r.leaked and r.groups, (r.deltas, r.groups)
    g = r.groups[0]
    assert g.hint.startswith(
        "%s.Order created at `_log.append(Order(1))` at %s:%d, 4 per call, is kept by "
        "global _log (collections.deque); " % (SC, FILE, sc.line_of("LEAK:deque")))


def test_weak_container_is_not_told_to_hold_weak_references():
    g = only_group(sc.weak_key_leak)
    assert g.type == SC + ".Meta"
    assert {SC + ".Key", qualname(weakref.ref)} <= set(contents(g))
    assert "hold weak references" not in g.hint
    assert g.hint.startswith("`_meta[k] = Meta(k)` at %s:%d adds one %s.Meta per call to "
                             "global _meta (weakref.WeakKeyDictionary); "
                             % (FILE, sc.line_of("GROW:meta"), SC))
    assert "weakref.WeakKeyDictionary already holds weak references" in g.hint


def test_growth_line_of_other_code_is_not_named():
    # The list's storage was last grown, while tracing, by other code: the
    # hint must not present that line as the one that adds the leaked objects.
    from memhound import _core
    _core.start(16)
    try:
        sc.grow_shared_elsewhere()
        r = memhound.find_leaks(sc.shared_leak)
    finally:
        _core.stop()
    g = r.groups[0]
    assert "GROW:elsewhere" not in g.hint and "_shared.extend" not in g.hint
    assert g.hint.startswith(
        "%s.Order created at `_shared.append(Order(2))` at %s:%d, one per call, is kept by "
        "global _shared (list); " % (SC, FILE, sc.line_of("LEAK:shared")))
