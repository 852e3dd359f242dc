"""A small "application" that leaks into 10 different holders (section 4).

`build_heap(n)` creates a background heap of about `n` live objects
(n/2 `Filler` instances, each holding a one-element list).  Every call of
`step(per_call)` then leaks `per_call` new objects into each of the 10 groups
below, each kept alive by a different kind of holder.  The benchmark knows the
ground truth (`GROUPS`, `representatives()`), so it can check that every tool
found a path for every group.

| group | survivor type   | holder (path from a named root)                          | cause              |
|-------|-----------------|----------------------------------------------------------|--------------------|
| 0     | LeakGlobalList  | module global `_GLOBAL_LIST` (list)                      | global-collection  |
| 1     | LeakGlobalDict  | module global `_GLOBAL_DICT` (dict value)                | global-collection  |
| 2     | LeakClassAttr   | class attribute `Registry.entries` (list)                | class-collection   |
| 3     | LeakInstance    | `_APP.session.handlers` (list on a long-lived instance)  | instance-collection|
| 4     | LeakClosure     | list captured by the closure `_HOOK`                      | closure            |
| 5     | LeakLru         | `functools.lru_cache` of `make_record`                   | lru-cache          |
| 6     | LeakGen         | local `held` of suspended generators in `_GENS`          | generator          |
| 7     | LeakTb          | local `obj` of a frame pinned by exceptions in `_ERRORS` | exception-traceback|
| 8     | str             | module global deque `_LOG` (untracked str objects)       | global-collection  |
| 9     | bytes           | module global set `_SEEN` (untracked bytes objects)      | global-collection  |
"""
import collections
import functools
import weakref


class Filler:
    def __init__(self, i):
        self.items = [None]


_HEAP = []


def build_heap(n_objects):
    """Create about `n_objects` live GC objects (Filler + its list)."""
    _HEAP[:] = [Filler(i) for i in range(n_objects // 2)]


def drop_heap():
    _HEAP.clear()


class LeakGlobalList:
    pass


class LeakGlobalDict:
    pass


class LeakClassAttr:
    pass


class LeakInstance:
    pass


class LeakClosure:
    pass


class LeakLru:
    def __init__(self, key):
        self.key = key


class LeakGen:
    pass


class LeakTb:
    pass


class Registry:
    entries = []


class _Session:
    def __init__(self):
        self.handlers = []


class _App:
    def __init__(self):
        self.session = _Session()


_GLOBAL_LIST = []
_GLOBAL_DICT = {}
_APP = _App()
_GENS = []
_ERRORS = []
_LOG = collections.deque()
_SEEN = set()
_counter = [0]


def _make_hook():
    captured = []

    def hook(obj):
        captured.append(obj)
    return hook


_HOOK = _make_hook()


@functools.lru_cache(maxsize=None)
def make_record(key):
    return LeakLru(key)


_LAST = {}  # weak references to the newest LeakGen / LeakTb (no extra holder)


def _generator():
    held = LeakGen()
    _LAST["gen"] = weakref.ref(held)
    yield held is not None
    yield False


def _fail():
    obj = LeakTb()
    _LAST["tb"] = weakref.ref(obj)
    raise ValueError("failed with %r" % (type(obj).__name__,))


def step(per_call=20):
    """Leak `per_call` objects into each of the 10 groups."""
    for _ in range(per_call):
        n = _counter[0] = _counter[0] + 1
        _GLOBAL_LIST.append(LeakGlobalList())
        _GLOBAL_DICT["k%d" % n] = LeakGlobalDict()
        Registry.entries.append(LeakClassAttr())
        _APP.session.handlers.append(LeakInstance())
        _HOOK(LeakClosure())
        make_record(n)
        g = _generator()
        next(g)
        _GENS.append(g)
        try:
            _fail()
        except ValueError as exc:
            _ERRORS.append(exc)
        _LOG.append("log line %d: something happened" % n)
        _SEEN.add(b"seen-%d" % n)


def reset():
    """Forget every survivor (between benchmark repetitions)."""
    for c in (_GLOBAL_LIST, _GLOBAL_DICT, Registry.entries,
              _APP.session.handlers, _GENS, _ERRORS, _LOG, _SEEN):
        c.clear()
    _HOOK.__closure__[0].cell_contents.clear()
    make_record.cache_clear()


GROUPS = [
    ("LeakGlobalList", "_GLOBAL_LIST", "global-collection"),
    ("LeakGlobalDict", "_GLOBAL_DICT", "global-collection"),
    ("LeakClassAttr", "Registry", "class-collection"),
    ("LeakInstance", "_APP", "instance-collection"),
    ("LeakClosure", "_HOOK", "closure"),
    ("LeakLru", "make_record", "lru-cache"),
    ("LeakGen", "_GENS", "generator"),
    ("LeakTb", "_ERRORS", "exception-traceback"),
    ("str", "_LOG", "global-collection"),
    ("bytes", "_SEEN", "global-collection"),
]


def representative(group):
    """The newest survivor of group `group` (index into GROUPS).

    Fetched without creating any new holder (no frame.f_locals, no list), so
    the tools under test see only the application's own references.
    """
    n = _counter[0]
    if group == 0:
        return _GLOBAL_LIST[-1]
    if group == 1:
        return _GLOBAL_DICT["k%d" % n]
    if group == 2:
        return Registry.entries[-1]
    if group == 3:
        return _APP.session.handlers[-1]
    if group == 4:
        return _HOOK.__closure__[0].cell_contents[-1]
    if group == 5:
        return make_record(n)  # a cache hit returns the cached object
    if group == 6:
        return _LAST["gen"]()
    if group == 7:
        return _LAST["tb"]()
    if group == 8:
        return _LOG[-1]
    if group == 9:
        key = b"seen-%d" % n
        for b in _SEEN:
            if b == key:
                return b
    raise IndexError(group)
