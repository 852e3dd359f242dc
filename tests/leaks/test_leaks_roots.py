"""The interpreter's registries are named roots (issue 17, item 5).

Per registry, a function registers one new object per call; the leak's
group path starts at the named registry, and the cause and hint name it.
Registrations that cannot be undone (os.register_at_fork, sys.addaudithook)
run in a child interpreter, as do atexit (whose callbacks would run when the
test process exits) and threads left running (their end would be noise in
the next test's runs).
"""
import codecs
import gc
import json
import signal
import sys
import types
import warnings

import pytest

import memhound
from memhound import _core
from memhound.leaks import HINTS
from conftest import run_child

MOD = __name__


class Session:
    """What each registration keeps alive: one per call."""

    def __init__(self):
        self.buffer = bytearray(64)

    def reset(self, *args):
        pass


def group_of(report, type_name):
    for g in report.groups:
        if g.type == type_name:
            return g
    raise AssertionError("no group %s in %r\n%s" % (type_name, [(g.type, g.path_text) for g in report.groups],
                                                 report))


def check_root(g, root_kind, cause, text_start, hint_words):
    """The group's path starts at the named registry, with its cause and a
    hint that names the registry."""
    assert g.path[0][0] == root_kind, g.path
    assert g.cause == cause, (g.cause, g.path_text)
    assert g.path_text.startswith(text_start), g.path_text
    assert g.hint == HINTS[cause]
    assert hint_words in g.hint
    assert "Py_DECREF" not in g.hint and g.count == 5, (g.count, g.path_text)


# A child reports its groups as JSON: [(type, cause, hint, path_text, root kind, count)].
CHILD_PRELUDE = '''
import json, memhound

class Session:
    def __init__(self):
        self.buffer = bytearray(64)
    def reset(self, *args):
        pass

def report_groups(func):
    report = memhound.find_leaks(func)
    assert report.leaked, report
    print(json.dumps([(g.type, g.cause, g.hint, g.path_text, g.path[0][0], g.count)
                      for g in report.groups]))
'''


def child_groups(code):
    """{type: [group, ...]} of the report the child printed, in report order."""
    out = run_child(code, prelude=CHILD_PRELUDE)
    groups = {}
    for t, c, h, p, r, n in json.loads(out.stdout.strip().splitlines()[-1]):
        groups.setdefault(t, []).append(dict(cause=c, hint=h, path_text=p, root=r, count=n))
    return groups


def first_group(groups, type_name, root=None):
    for g in groups.get(type_name, ()):
        if root is None or g["root"] == root:
            return g
    raise AssertionError("no %s group (root %s) in %r" % (type_name, root, groups))


def test_at_fork_callback_per_call():
    groups = child_groups('''
        import os
        def connect():
            os.register_at_fork(after_in_child=Session().reset)
        report_groups(connect)
    ''')
    for type_name in ("method", "__main__.Session", "bytearray"):
        g = first_group(groups, type_name)
        assert g["root"] == "at_fork" and g["cause"] == "at-fork-callback", g
        assert g["path_text"].startswith("os.register_at_fork(after_in_child=...) callbacks -> ["), g
        assert "os.register_at_fork is never removed" in g["hint"] and g["count"] == 5, g
    assert first_group(groups, "__main__.Session")["path_text"].endswith("(method) -> attribute __self__ -> __main__.Session")


def test_atexit_callback_per_call():
    groups = child_groups('''
        import atexit
        def connect():
            atexit.register(Session().reset)
        report_groups(connect)
    ''')
    for type_name in ("method", "__main__.Session", "bytearray"):
        g = first_group(groups, type_name)
        assert g["root"] == "atexit" and g["cause"] == "atexit-callback", g
        assert g["path_text"].startswith(("atexit.register() callback", "method: atexit.register()")), g
        assert "atexit.register" in g["hint"] and g["count"] == 5, g
    assert first_group(groups, "__main__.Session")["path_text"].endswith("attribute __self__ -> __main__.Session")


def test_audit_hook_per_call():
    groups = child_groups('''
        import sys
        def connect():
            session = Session()
            sys.addaudithook(lambda event, args: session.reset())
        report_groups(connect)
    ''')
    g = first_group(groups, "function")
    assert g["root"] == "audit_hooks" and g["cause"] == "audit-hook", g
    assert g["path_text"].startswith("sys.addaudithook() hooks -> ["), g
    assert "sys.addaudithook" in g["hint"] and g["count"] == 5, g
    g = first_group(groups, "__main__.Session")
    assert g["cause"] == "audit-hook" and "closure variable session" in g["path_text"], g


def test_signal_handler_chained_per_call():
    original = signal.getsignal(signal.SIGUSR1)

    def install():
        previous = signal.getsignal(signal.SIGUSR1)
        session = Session()

        def handler(signum, frame):
            session.reset()
            if callable(previous):
                previous(signum, frame)
        signal.signal(signal.SIGUSR1, handler)

    try:
        report = memhound.find_leaks(install)
    finally:
        signal.signal(signal.SIGUSR1, original)
    check_root(group_of(report, "function"), "signal", "signal-handler",
               "function: signal handler of SIGUSR1", "signal handler installed per call")
    check_root(group_of(report, MOD + ".Session"), "signal", "signal-handler",
               "signal handler of SIGUSR1 -> closure variable session", "restore the previous handler")


def test_codec_search_function_per_call():
    registered = []

    def connect():
        session = Session()

        def search(name):
            return session.reset(name)
        codecs.register(search)
        registered.append(search)

    try:
        report = memhound.find_leaks(connect)
    finally:
        for search in registered:
            codecs.unregister(search)
    # `registered` holds them too, but only through this test's frame: thread
    # stacks are searched after the registries.
    check_root(group_of(report, "function"), "codecs", "codec-registry",
               "codecs.register() search functions -> [", "codecs.register")


def test_warnings_filter_per_call():
    calls = [0]

    def configure():
        calls[0] += 1
        warnings.filterwarnings("ignore", message="request %d took too long" % calls[0])

    with warnings.catch_warnings():
        report = memhound.find_leaks(configure)
    g = group_of(report, "tuple")
    check_root(g, "warnings", "warnings-registry", "warnings.filters -> [", "warnings filter added per call")


def test_warning_texts_per_call_fill_the_module_registry():
    calls = [0]

    def handle():
        calls[0] += 1
        warnings.warn("request %d took too long" % calls[0], UserWarning)

    with warnings.catch_warnings(record=True):
        warnings.simplefilter("default")
        report = memhound.find_leaks(handle)
    g = group_of(report, "tuple")
    check_root(g, "warnings", "warnings-registry", "__warningregistry__ of module %s -> " % MOD,
               "__warningregistry__")


def test_sys_modules_entry_per_call():
    added = []

    def load_plugin():
        module = types.ModuleType("memhound_test_plugin_%d" % len(added))
        module.session = Session()
        sys.modules[module.__name__] = module
        added.append(module.__name__)

    try:
        report = memhound.find_leaks(load_plugin)
    finally:
        for name in added:
            del sys.modules[name]
    check_root(group_of(report, "module"), "sys_modules", "sys-modules",
               "sys.modules -> ['memhound_test_plugin_", "sys.modules")
    check_root(group_of(report, MOD + ".Session"), "sys_modules", "sys-modules",
               "sys.modules -> ['memhound_test_plugin_", "del sys.modules[name]")


def test_thread_left_running_per_call_is_threading_bookkeeping():
    # In a child: the threads' end (after the test) would be noise in the
    # measured runs of the next test.
    groups = child_groups('''
        import threading
        stop = threading.Event()
        def serve():
            threading.Thread(target=stop.wait, args=(60,), daemon=True).start()
        try:
            report_groups(serve)
        finally:
            stop.set()
    ''')
    # The thread's weak reference in threading._dangling (a WeakSet): named
    # for what it is, not "a container on a long-lived object grows".
    # (3.11 and 3.12 have a second weakref per thread, held from C.)
    g = first_group(groups, "weakref.ReferenceType", root="threading")
    assert g["root"] == "threading" and g["cause"] == "thread-bookkeeping", g
    assert g["path_text"].startswith("threading._dangling -> set member -> "), g
    assert "thread started per call" in g["hint"] and g["count"] == 5, g


def test_registry_entries_that_are_old_keep_the_usual_cause():
    """An old callback whose own container grows is a collection leak, not
    a registration per call: the registry only names the root."""
    class Handler:
        def __init__(self):
            self.seen = []

        def __call__(self, signum, frame):
            pass

    original = signal.getsignal(signal.SIGUSR2)
    signal.signal(signal.SIGUSR2, Handler())

    def handle():
        signal.getsignal(signal.SIGUSR2).seen.append(Session())

    try:
        report = memhound.find_leaks(handle)
    finally:
        signal.signal(signal.SIGUSR2, original)
    g = group_of(report, MOD + ".Session")
    assert g.path_text.startswith("signal handler of SIGUSR2 -> attribute seen (list) -> ["), g.path_text
    assert g.cause == "instance-collection", (g.cause, g.path_text)


@pytest.mark.skipif(sys.version_info < (3, 12),
                    reason="3.11's interned strings are mortal: the table's references are "
                           "not counted, nothing looks held outside Python")
def test_interned_string_held_only_by_the_table_is_named():
    """A string the graph reaches whose extra references are the interned
    table's (names compiled into code are interned for good on 3.12+)."""
    gc.collect()
    gc.disable()
    try:
        census = _core.heap_census()
        code = compile("memhound_roots_interned_%d = 1" % id(census), "<roots>", "exec")
        garbage = [code.co_names[0]]
        del code
        garbage.append(garbage)          # unreachable cycle, kept while gc is off
        address = id(garbage[0])
        del garbage
        graph = _core.heap_graph(census)
        try:
            found = [graph.path(idx) for obj, idx, _a, _e in graph.survivors() if id(obj) == address]
        finally:
            graph.close()
    finally:
        gc.enable()
        gc.collect()
    assert found and found[0][0][0] == "interned", found
    assert _core.ROOT_KINDS["interned"] == "the interpreter's interned strings"
