"""Leak finder: does a function leak, what survives, who holds it, where it
was created and why.

``find_leaks(func)`` runs ``func`` a few times to warm it up, then measures
``runs`` more calls with CPython's own refleak rule (regrtest ``-R``): it is
a leak only when *every* measured run leaves more memory blocks (or more
objects) alive than before it.  Between runs the collector runs and the
interpreter's known caches are cleared, so bounded caches, interning, free
lists and collectable cycles do not count.

The survivors -- objects created during the measured runs and still alive,
including str, bytes, int and float -- come from the C heap graph
(``_core.heap_census`` / ``_core.heap_graph``): one ``tp_traverse`` pass,
shortest path from a named root to each survivor, edges named only on the
reported paths.  Survivors are grouped by type, creation site (memhound's
tracing engine) and holder, and each group gets a cause code and a fix
hint.

Example::

    >>> import memhound
    >>> _seen = []
    >>> def handle():
    ...     _seen.append(object.__new__(type("Rec", (), {})))
    >>> report = memhound.find_leaks(handle)
    >>> report.leaked
    True
"""
import _thread
import array
import collections
import contextlib
import functools
import gc
import os
import sys
import time
import types
import warnings
import weakref

from . import _core
from .targets import Target
from .tracing import LEAK_FRAMES, check_frames, pause_tracing

__all__ = ["find_leaks", "survivors", "LeakReport", "LeakGroup"]

_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep

# The causes: code -> fix hint.  _cause() picks the code from the kinds of
# the path's steps (the vocabulary of _core.ROOT_KINDS / EDGE_KINDS).
HINTS = {
    "global-collection": "a module-level container grows on every call: remove entries when "
                         "done, bound it (deque(maxlen=...), lru_cache(maxsize=...)) or hold "
                         "weak references (weakref.WeakValueDictionary)",
    "class-collection": "a class attribute accumulates objects: clear it, bound it, or hold "
                        "weak references (weakref.WeakSet)",
    "instance-collection": "a container on a long-lived object grows on every call: remove "
                           "entries when done or bound its size",
    "lru-cache": "an lru_cache keeps every distinct argument and result: set maxsize=..., key "
                 "it on stable values, or call cache_clear()",
    "generator": "a suspended generator or coroutine keeps its frame's locals alive: exhaust "
                 "it, close() it, or do not store it",
    "exception-traceback": "a stored exception keeps its traceback's frames and their locals: "
                           "store the message, or drop the traceback "
                           "(e.with_traceback(None), traceback.clear_frames())",
    "closure": "a long-lived function's closure variable accumulates objects: do not grow "
               "captured containers, or bound them",
    "external-reference": "the reference count exceeds the references from Python objects: "
                          "native code holds it (a missing Py_DECREF in a C extension?)",
    "native-memory": "native code allocated this memory during the calls and never freed it "
                     "(a missing PyMem_Free / PyObject_Free in a C extension?)",
    "interned-string": "the interpreter's table of interned strings keeps one string per distinct "
                       "value for its whole life: do not intern per-call values (sys.intern, "
                       "PyUnicode_InternFromString, attribute names made at run time)",
    "at-fork-callback": "a callback registered per call with os.register_at_fork is never "
                        "removed (there is no unregister) and keeps its object alive: register "
                        "one function once (at import) that finds the live objects through a "
                        "weakref.WeakSet",
    "atexit-callback": "a callback registered per call with atexit.register is kept, with its "
                       "arguments, until the interpreter exits: register once, or call "
                       "atexit.unregister(func) when the object is closed",
    "signal-handler": "a signal handler installed per call keeps what it captures, and one that "
                      "chains to the previous handler keeps every earlier one: install it once, "
                      "or restore the previous handler (signal.signal(signum, old)) when done",
    "sys-modules": "an entry is added to sys.modules per call under a new name: reuse one name, "
                   "or remove it (del sys.modules[name]) when done",
    "codec-registry": "a codec search function registered per call with codecs.register is never "
                      "dropped, and codecs.lookup() caches every encoding name it resolves: "
                      "register once (codecs.unregister(func) removes it) and do not look up "
                      "per-call encoding names",
    "warnings-registry": "a warnings filter added per call (warnings.filterwarnings / "
                         "simplefilter outside warnings.catch_warnings()) is never removed, and "
                         "each distinct warning text is remembered in the module's "
                         "__warningregistry__: add the filter once or inside catch_warnings(), "
                         "and keep per-call values out of warning messages",
    "thread-bookkeeping": "threading keeps an entry (_active, _limbo, _dangling, "
                          "_shutdown_locks) for every thread that has not ended or been joined: "
                          "a thread started per call is still running or never joined; end "
                          "and join it (what keeps the thread running is the leak)",
    "audit-hook": "a hook added per call with sys.addaudithook is kept for the interpreter's "
                  "life and cannot be removed: add one hook at startup that consults a "
                  "registry you control",
    "uncollectable": "the objects end in gc.garbage (gc.DEBUG_SAVEALL, or a cycle with legacy "
                     "finalizers): break the cycle and clear gc.garbage",
    "unknown": "no well-known holder was recognised: follow the path to see who keeps it",
    "bounded": "the holder has a bound or keeps its own size in check (see bound): it stops "
               "growing there, so this is not a leak by itself",
}

# Edges that are the cause wherever they are on the path (nearest to the
# survivor first), and edges whose owner holds a growing collection.
_HOLDER_CAUSES = {"lru_cache": "lru-cache", "traceback": "exception-traceback",
                  "closure": "closure"}
_OWNER_CAUSES = {"global": "global-collection", "class_attr": "class-collection",
                 "attr": "instance-collection"}

# The interpreter's registries (root kinds, heap_roots.c): the cause when
# the entry in the registry was added during the runs.
_REGISTRY_CAUSES = {"at_fork": "at-fork-callback", "atexit": "atexit-callback",
                    "signal": "signal-handler", "sys_modules": "sys-modules",
                    "codecs": "codec-registry", "warnings": "warnings-registry",
                    "threading": "thread-bookkeeping", "audit_hooks": "audit-hook",
                    "interned": "interned-string"}

_GEN_TYPES = ("generator", "coroutine", "async_generator")
_CENSUS_CPU = array.array("d", [0.0])   # no float object: it would be a survivor

# Threads a run starts are joined before the reading that follows it, for at
# most THREAD_WAIT seconds per run; one still running then is reported (the
# report's threads_left) and not waited for again.
THREAD_WAIT = 1.0
# Growth inside a structure with a bound (lru_cache(maxsize=M), deque(maxlen=M))
# that is not full is "bounded, still filling (N of M)", not a leak.  When
# every other leaking group sits in a plain container (dict, list, set,
# deque), the function is called up to EXTRA_RUNS more times, for at most
# max(EXTRA_TIME, the time of the warm-up and measured runs) seconds, and the
# containers' sizes are watched: one that shrinks (a cache pruning itself) or
# stops growing for STALL_RUNS calls in a row is bounded.  The extra calls
# stop at the first container that outgrows EXTRA_GROWTH entries; there are
# none when a measured run left threads running.
EXTRA_RUNS = 200
EXTRA_TIME = 1.0
STALL_RUNS = 10
EXTRA_GROWTH = 100000


class LeakGroup:
    """One leak: the survivors one holder keeps, named by the objects that
    matter most in it.

    The survivors an old container holds (a list, a dict, a cache, a
    registry, a thread stack), with everything they keep, are one group;
    so are the survivors that exist only because another survivor does (a
    running thread and its bookkeeping, a weakref to a survivor).  The group
    is named by its **representative**: the objects nearest to the holder
    that are not mere reference carriers (tuples, dicts, frames, exceptions,
    bound methods, ...), those that keep the most bytes.

    Attributes: ``type`` (the representative's qualified name), ``count``,
    ``count_per_run``, ``bytes`` (shallow, of the representatives),
    ``retained_bytes`` (of every object in the group), ``contents`` (list
    of {"type", "count", "bytes"}, most bytes first), ``created_at`` (list
    of (filename, lineno, function), most recent first), ``path`` (list of
    (kind, label, type) from the root to a representative), ``path_text``,
    ``cause``, ``hint`` (what this case shows -- the container, the line
    that grows it -- then the cause's usual fix), ``held_by_survivor``
    (another group's survivor also holds the group's first objects).

    Example::

        >>> import memhound
        >>> class Registry:
        ...     entries = []
        >>> report = memhound.find_leaks(lambda: Registry.entries.append(bytearray(8)))
        >>> g = report.groups[0]
        >>> g.type, g.cause, g.count_per_run
        ('bytearray', 'class-collection', 1)
        >>> g.path_text                                      # doctest: +ELLIPSIS
        'class ...Registry -> class attribute entries (list) -> [...] -> bytearray'
    """

    __slots__ = ("type", "count", "count_per_run", "bytes", "created_at", "path",
                 "path_text", "cause", "hint", "held_by_survivor", "external_refs",
                 "retained_bytes", "contents", "bound", "_holder")

    def to_dict(self):
        """The group as the JSON contract's dict.

        Example::

            >>> import memhound
            >>> class Registry:
            ...     entries = []
            >>> report = memhound.find_leaks(lambda: Registry.entries.append(bytearray(8)))
            >>> sorted(report.groups[0].to_dict())            # doctest: +NORMALIZE_WHITESPACE
            ['bound', 'bytes', 'cause', 'contents', 'count', 'count_per_run', 'created_at',
             'external_refs', 'held_by_survivor', 'hint', 'path', 'path_text',
             'retained_bytes', 'type']
        """
        return {
            "type": self.type, "count": self.count, "count_per_run": self.count_per_run,
            "bytes": self.bytes,
            "created_at": [{"filename": f, "lineno": n, "function": fn}
                           for f, n, fn in self.created_at],
            "path": [{"kind": k, "label": lab, "type": t} for k, lab, t in self.path],
            "path_text": self.path_text, "cause": self.cause, "hint": self.hint,
            "held_by_survivor": self.held_by_survivor,
            "external_refs": self.external_refs,
            "retained_bytes": self.retained_bytes,
            "contents": [dict(c) for c in self.contents],
            "bound": dict(getattr(self, "bound", None) or {}) or None,
        }

    def __repr__(self):
        return "<LeakGroup %s x%d %s>" % (self.type, self.count, self.cause)


class LeakReport:
    """What find_leaks() or survivors() found.

    ``leaked`` (bool), ``warmup``, ``runs``, ``deltas`` ({"blocks": [...],
    "objects": [...], "bytes": [...]} per measured run), ``groups`` (list of
    LeakGroup, most important first).  ``str(report)`` is a readable report,
    ``to_dict()`` the JSON contract.

    Example::

        >>> import memhound
        >>> class Registry:
        ...     entries = []
        >>> report = memhound.find_leaks(lambda: Registry.entries.append(bytearray(8)), runs=3)
        >>> bool(report), report.runs, len(report.deltas["blocks"])
        (True, 3, 3)
        >>> print(report)                                   # doctest: +ELLIPSIS
        LEAK: every measured run left memory behind (3 warm-up, 3 measured runs)
        ...
        #1 bytearray: 3 object(s), 1 per run, ... bytes  [class-collection]
        ...
    """

    def __init__(self, leaked, warmup, runs, deltas, groups, stats=None, bounded=None,
                 extra_runs=0, threads_left=None):
        self.leaked = leaked
        self.warmup = warmup
        self.runs = runs
        self.deltas = deltas
        self.groups = groups
        self.stats = stats or {}
        # Groups whose growth is bounded (LeakGroup.bound says how), the
        # calls made after the measured runs to tell, and per measured run
        # the threads it started that were still running after THREAD_WAIT.
        self.bounded = bounded or []
        self.extra_runs = extra_runs
        self.threads_left = threads_left or []

    def to_dict(self):
        """The report as the JSON contract (extra keys allowed).

        Example::

            >>> import json
            >>> report = find_leaks(lambda: None)
            >>> json.loads(json.dumps(report.to_dict()))["leaked"]
            False
        """
        return {"leaked": self.leaked, "warmup": self.warmup, "runs": self.runs,
                "deltas": {k: list(v) for k, v in self.deltas.items()},
                "groups": [g.to_dict() for g in self.groups],
                "bounded": [g.to_dict() for g in self.bounded],
                "extra_runs": self.extra_runs, "threads_left": list(self.threads_left)}

    def __bool__(self):
        return self.leaked

    def __repr__(self):
        return "<LeakReport leaked=%s groups=%d>" % (self.leaked, len(self.groups))

    def __str__(self):
        d = self.deltas
        lines = []
        if self.leaked:
            lines.append("LEAK: every measured run left memory behind (%d warm-up, %d measured runs)"
                         % (self.warmup, self.runs))
        elif self.bounded:
            lines.append("no leak: the growth is bounded (%d warm-up, %d measured runs, %d extra runs)"
                         % (self.warmup, self.runs, self.extra_runs))
        else:
            lines.append("no leak (%d warm-up, %d measured runs)" % (self.warmup, self.runs))
        for key in ("blocks", "objects", "bytes"):
            if d.get(key):
                lines.append("  %-8s %s" % (key, list(d[key])))
        lines += _run_notes(self)
        for n, g in enumerate(self.groups, 1):
            lines.append("")
            per = g.count_per_run
            lines.append("#%d %s: %d object(s), %s per run, %d bytes  [%s]"
                         % (n, g.type, g.count, per, g.retained_bytes, g.cause))
            lines.append("   held by: " + (g.path_text or "(no path from a root found)"))
            if len(g.contents) > 1:
                lines.append("   keeps:   " + _contents_text(g.contents))
            if g.created_at:
                lines.append("   created at:")
                for f, ln, fn in g.created_at[:5]:
                    lines.append("     %s:%s in %s" % (f, ln, fn))
            lines.append("   fix: " + g.hint)
        return "\n".join(lines)


def _contents_text(contents, limit=6):
    """"bytearray 5 (250,285 B), dict 10 (1,840 B), ... 3 more types"."""
    parts = ["%s %d (%s B)" % (c["type"], c["count"], format(c["bytes"], ","))
             for c in contents[:limit]]
    if len(contents) > limit:
        parts.append("%d more types" % (len(contents) - limit))
    return ", ".join(parts)


def _bound_text(bound):
    """What the size of a group's holder did, e.g. "bounded, still filling (8 of 128)"."""
    state, size, limit = bound["state"], bound["size"], bound["maxsize"]
    if state == "filling":
        return "bounded, still filling (%d of %d)" % (size, limit)
    if state == "full":
        return "bounded, full (%d of %d)" % (size, limit)
    if state == "pruned":
        return "bounded: pruned itself from %d to %d entries after %d extra runs" % (
            bound["peak"], bound["pruned_to"], bound["runs"])
    if state == "stopped":
        return "growth stopped after %d extra runs (%d entries)" % (bound["runs"], size)
    if state == "growing":
        return "kept growing in all %d extra runs (%d entries)" % (bound["runs"], size)
    return "%s of %d entries" % (bound["structure"], size)


def _run_notes(report):
    """The report's lines about threads left running, extra runs and bounded growth."""
    lines = []
    if any(report.threads_left):
        lines.append("  threads  %s still running %.1f s after their run (started by the runs)"
                     % (list(report.threads_left), THREAD_WAIT))
    for g in report.bounded:
        lines.append("  bounded  %s: %s -- %s" % (g.type, _bound_text(g.bound),
                                                 g.path_text or "(no path)"))
    if report.leaked and report.extra_runs:
        lines.append("  extra    %d more calls: the holders kept growing (limits: %d calls, "
                     "%.1f s or the time of the first runs)"
                     % (report.extra_runs, EXTRA_RUNS, EXTRA_TIME))
    return lines


MAX_RUNS = 1_000_000     # warm-up or measured runs: beyond, a typo rather than a plan


def _check_int(name, value, low, high=MAX_RUNS):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if value < low:
        raise ValueError("%s must be >= %d, got %d" % (name, low, value))
    if value > high:
        raise ValueError("%s must be <= %d, got %d" % (name, high, value))


def _clear_caches():
    """Clear the interpreter's known caches (as regrtest -R does)."""
    mods = sys.modules
    for name, attr in (("re", "purge"), ("linecache", "clearcache"),
                       ("struct", "_clearcache"), ("urllib.parse", "clear_cache")):
        mod = mods.get(name)
        fn = getattr(mod, attr, None) if mod is not None else None
        if fn is not None:
            fn()
    typing = mods.get("typing")
    for fn in getattr(typing, "_cleanups", ()):
        fn()
    strptime = mods.get("_strptime")
    if strptime is not None and hasattr(strptime, "_regex_cache"):
        strptime._regex_cache.clear()
    fnmatch = mods.get("fnmatch")
    if fnmatch is not None and hasattr(fnmatch, "_compile_pattern"):
        fnmatch._compile_pattern.cache_clear()
    abc = mods.get("collections.abc")
    if abc is not None:
        for name in abc.__all__:
            cls = getattr(abc, name, None)
            clear = getattr(cls, "_abc_caches_clear", None)
            if clear is None:
                continue
            clear()
            for sub in type.__subclasses__(cls):
                sub_clear = getattr(sub, "_abc_caches_clear", None)
                if sub_clear is not None:
                    sub_clear()
    if hasattr(sys, "_clear_internal_caches"):
        sys._clear_internal_caches()
    else:
        sys._clear_type_cache()
    gc.collect()
    gc.collect()


class _Tracing:
    """Start memhound's tracing for the analysis; restore the prior state."""

    def __init__(self, frames):
        self.started = False
        self.frames = frames

    def __enter__(self):
        if not _core.is_tracing():
            _core.start(self.frames)
            self.started = True
        return self

    def __exit__(self, *exc):
        if self.started:
            _core.stop()
        return False


def _traced_bytes():
    if _core.is_tracing():
        return _core.get_traced_memory()[0]
    return 0


def _creation(obj, frames):
    tb = _core._object_creation(obj)
    if not tb:
        return ()
    # Most recent first: keep the frames above memhound's own (the caller's
    # frames below find_leaks() say nothing about the leak).
    return _own_frames_cut(tb)[:frames]


def _own_frames_cut(tb):
    """The frames of `tb` (most recent first) above memhound's own."""
    out = []
    for fr in tb:
        if str(fr[0]).startswith(_OWN_DIR):
            break
        out.append(fr)
    return tuple(out)


def _type_name(tp):
    mod = type.__dict__["__module__"].__get__(tp)
    qual = type.__dict__["__qualname__"].__get__(tp)
    if mod in (None, "builtins"):
        return qual
    return "%s.%s" % (mod, qual)


def _thread_name(tid):
    threading = sys.modules.get("threading")
    active = getattr(threading, "_active", None)
    thread = active.get(tid) if isinstance(active, dict) else None
    name = getattr(thread, "_name", None)
    return name if isinstance(name, str) else str(tid)


def _shallow_size(obj):
    try:
        return sys.getsizeof(obj)
    except Exception:
        return object.__sizeof__(obj)


def _cause(path):
    """Cause code from the labelled path (see HINTS)."""
    if not path:
        return "unknown"
    root_kind, root_label = path[0][0], path[0][1]
    steps = path[1:]
    if root_kind == "module" and root_label == "gc" and steps and steps[0][:2] == ("global", "garbage"):
        return "uncollectable"
    registry = _REGISTRY_CAUSES.get(root_kind)
    # The registry itself, or its entry, was added during the runs: it was
    # registered per call, whatever the entry holds.
    if registry and (path[0][3] or (steps and steps[0][3])):
        return registry
    has_tb = any(s[0] == "traceback" for s in steps)
    # The special holders, nearest to the survivor first.
    for i in range(len(steps) - 1, -1, -1):
        kind = steps[i][0]
        holder_type = steps[i - 1][2] if i > 0 else path[0][2]
        if kind in _HOLDER_CAUSES:
            return _HOLDER_CAUSES[kind]
        if kind == "local" and (i > 0 or root_kind != "thread"):
            if holder_type in _GEN_TYPES:
                return "generator"
            if holder_type == "frame" and has_tb:
                return "exception-traceback"
    if root_kind == "external":
        return "external-reference"
    # The owner of the first survivor's holder.
    first = next((i for i, s in enumerate(steps) if s[3]), len(steps))
    for i in range(min(first, len(steps) - 1), -1, -1):
        kind = steps[i][0]
        if kind == "attr":
            holder_type = steps[i - 1][2] if i > 0 else path[0][2]
            if holder_type not in ("function", "method", "cell", "type", "module"):
                return _OWNER_CAUSES[kind]
        elif kind in _OWNER_CAUSES:
            return _OWNER_CAUSES[kind]
    if root_kind == "class" and steps:
        return "class-collection"
    return "unknown"


def _path_text(path, survivor_type):
    if not path:
        return ""
    parts = []
    kind, label, tname = path[0][:3]
    if kind == "thread":
        parts.append("thread " + _thread_name(label))
    else:
        parts.append(_core.ROOT_KINDS[kind].format(label))
    for i, (kind, label, tname, _surv) in enumerate(path[1:], 1):
        text = _core.EDGE_KINDS[kind].format(label)
        if i < len(path) - 1 and tname:
            text += " (%s)" % tname
        parts.append(text)
    if len(path) == 1 and (path[0][0] == "external" or path[0][0] in _REGISTRY_CAUSES):
        return "%s: %s" % (survivor_type, parts[0])
    return " -> ".join(parts) + " -> " + survivor_type


# Blocks the runs left that no object of the graph explains, by the kind
# heap_orphans.c gives them: (cause, holder named in the path, path text).
_ORPHAN_KINDS = {
    "object": ("external-reference", "native code",
               "%s: nothing in Python refers to it (a reference leaked by native code)"),
    "interned": ("interned-string", "the interpreter's interned strings",
                 "%s: held by the interpreter's interned strings"),
    "raw": ("native-memory", "native code",
            "%s: memory no Python object owns (allocated by native code)"),
}
RAW_MEMORY = "(native memory)"


def _orphan_groups(graph, runs, frames):
    """Groups for the blocks the runs left that no object of the graph
    explains: (object groups, native-memory groups)."""
    groups, raw = [], []
    for tp, created, count, nbytes, kind in graph.orphans():
        cause, holder, text = _ORPHAN_KINDS[kind]
        g = LeakGroup()
        g.type = RAW_MEMORY if tp is None else _type_name(tp)
        g.count = count
        per = count / runs
        g.count_per_run = int(per) if per == int(per) else round(per, 2)
        g.bytes = nbytes
        g.created_at = list(_own_frames_cut(created))[:frames]
        g.path = [("external", holder, g.type)]
        g.path_text = text % g.type
        if g.created_at:
            g.path_text += ", called from %s:%s in %s" % g.created_at[0]
        g.cause = cause
        g.external_refs = count if kind == "object" else 0
        g.hint = HINTS[cause]
        g.held_by_survivor = False
        g.bound = g._holder = None
        (raw if tp is None else groups).append(g)
    return groups, raw


_LRU_WRAPPER = getattr(functools, "_lru_cache_wrapper", None)
_SIZED = (dict, list, set, collections.deque)
_FIXED_SIZE = (tuple, frozenset)


def _in_new_container(graph, idx, anchor):
    """Whether survivor `idx` is held, below its anchor, by anything but a
    tuple or frozenset created during the runs (a list, a dict, a linked
    node): its holder's size then says nothing about how many of them
    there are."""
    try:
        j = graph.parent(idx)
        while 0 <= j != anchor:
            if not issubclass(type(graph.node(j)), _FIXED_SIZE):
                return True
            j = graph.parent(j)
    except (ValueError, IndexError, OverflowError):
        return True
    return False


def _group_bound(graph, surv, starts, members):
    """_holder_bound() for a group: its first survivors must share one
    holder, and survivors below them in anything but tuples and frozensets
    (a bucket list, a linked node) make the holder's size meaningless."""
    anchors = {surv.anchor[h] for h in starts}
    if len(anchors) != 1:
        return None, None
    heads = set(starts)
    nested = any(m not in heads and not isinstance(surv.obj[m], _FIXED_SIZE) for m in members)
    return _holder_bound(graph, anchors.pop(), nested)


def _holder_bound(graph, anchor, nested):
    """(bound, container) for survivors held by the graph node `anchor`.

    bound: None, or a dict {"structure", "size", "maxsize", "state"}: an
    lru_cache (the holder or the holder's holder) or a deque with maxsize
    set is "filling" or "full"; a plain dict, list, set or deque is
    "unknown" and comes back as the container whose size the extra runs
    watch.  Survivors `nested` in containers the runs created are bounded
    only by an lru_cache (whose entries are the calls' results).  Sizes are
    read through the builtin types' own slots: no method of a user
    subclass runs."""
    try:
        holder = graph.node(anchor)
        parent = graph.parent(anchor)
        above = graph.node(parent) if parent >= 0 else None
    except (ValueError, IndexError, OverflowError):
        return None, None            # a root outside Python, or not held
    for o in (holder, above):
        if isinstance(_LRU_WRAPPER, type) and type(o) is _LRU_WRAPPER:
            info = _LRU_WRAPPER.cache_info(o)
            if info.maxsize is None:
                return {"structure": "lru_cache", "size": info.currsize, "maxsize": None,
                        "state": "unbounded"}, None
            state = "filling" if info.currsize < info.maxsize else "full"
            return {"structure": "lru_cache", "size": info.currsize,
                    "maxsize": info.maxsize, "state": state}, None
    if holder is gc.garbage or nested:   # gc.garbage grows at collections only
        return None, None
    tp = type(holder)
    for base in _SIZED:
        if not issubclass(tp, base):
            continue
        size = base.__len__(holder)
        if base is collections.deque:
            maxlen = collections.deque.maxlen.__get__(holder)
            if maxlen is not None:
                state = "filling" if size < maxlen else "full"
                return {"structure": "deque", "size": size, "maxsize": maxlen,
                        "state": state}, None
        return {"structure": base.__name__, "size": size, "maxsize": None,
                "state": "unknown"}, holder
    return None, None


class _ThreadWatch:
    """Joins the threads a run started before the next reading (at most
    THREAD_WAIT seconds per run) and counts those still running."""

    def __init__(self, wait=None):
        self.wait = wait                    # None: THREAD_WAIT when joining
        self.known = array.array("Q")       # idents not waited for (again)
        self.count = array.array("q", [0])  # _thread._count() after the last wait

    def mark(self):
        """Every thread running now is known: only later ones are waited for."""
        threading = sys.modules.get("threading")
        if threading is not None:
            self.known = array.array("Q", [t.ident for t in threading.enumerate()
                                           if t.ident is not None])
        self.count[0] = _thread._count()

    def join(self):
        """Wait for the threads started since the last call; the number of
        those still running when the wait ended."""
        deadline = time.monotonic() + (THREAD_WAIT if self.wait is None else self.wait)
        left = 0
        threading = sys.modules.get("threading")
        if threading is not None:
            current = threading.get_ident()
            dummy = getattr(threading, "_DummyThread", ())
            for t in threading.enumerate():
                ident = t.ident
                if ident is None or ident == current or ident in self.known or isinstance(t, dummy):
                    continue
                try:
                    t.join(max(0.0, deadline - time.monotonic()))
                except RuntimeError:        # not started yet: counted below
                    continue
                if t.is_alive():
                    self.known.append(ident)
                    left += 1
        # Threads not started through threading (_thread.start_new_thread).
        while _thread._count() > self.count[0] + left and time.monotonic() < deadline:
            time.sleep(0.001)
        left = max(left, _thread._count() - self.count[0])
        self.count[0] = _thread._count()
        return left


def _settle_bounds(groups, call, threads, seconds):
    """Split the leaking groups into (leaking, bounded) and count the extra
    calls made to tell (see EXTRA_RUNS)."""
    def has_bound(g):
        bound = getattr(g, "bound", None)
        return bool(bound) and bound["state"] in ("filling", "full")

    bounded = [g for g in groups if has_bound(g)]
    rest = [g for g in groups if not has_bound(g)]
    if not rest or any(getattr(g, "_holder", None) is None for g in rest):
        return rest, bounded, 0
    watched = {}                 # id -> [container, len, start, peak, last growth, pruned to]
    for g in rest:
        h = g._holder
        if id(h) not in watched:
            size = g.bound["size"]
            length = next(base.__len__ for base in _SIZED if issubclass(type(h), base))
            watched[id(h)] = [h, length, size, size, 0, None]
    runs = 0
    deadline = time.monotonic() + seconds

    def settled():
        done = True
        for w in watched.values():
            n = w[1](w[0])
            if n < w[3] and w[5] is None:
                w[5] = n
            if n > w[3]:
                w[3], w[4] = n, runs
            if w[5] is None and runs - w[4] < STALL_RUNS:
                done = False
        return done

    try:
        while runs < EXTRA_RUNS and time.monotonic() < deadline:
            call()
            threads.join()
            runs += 1
            # A stall is confirmed after a full collection: what finalizers,
            # weakref callbacks or the collector add shows up only then.
            if settled() and (_clear_caches() or settled()):
                break
            if any(w[3] - w[2] > EXTRA_GROWTH for w in watched.values()):
                break
    except Exception as exc:     # the verdict stands; the extra runs are not the user's test
        warnings.warn("memhound: extra runs stopped: %s: %s" % (type(exc).__name__, exc),
                      RuntimeWarning, stacklevel=3)
        return rest, bounded, runs
    leaking = []
    for g in rest:
        w = watched[id(g._holder)]
        n = w[1](w[0])
        if w[5] is not None:
            g.bound.update(state="pruned", size=n, peak=w[3], pruned_to=w[5], runs=runs)
        elif runs - w[4] >= STALL_RUNS:
            g.bound.update(state="stopped", size=n, runs=w[4])
        else:
            g.bound.update(state="growing", size=n, runs=runs)
        (leaking if g.bound["state"] == "growing" else bounded).append(g)
    return leaking, bounded, runs


def _analyse(census, runs, frames):
    """Build the graph, group the survivors, label the paths."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    census_bytes = census.nbytes
    graph = _core.heap_graph(census, _OWN_DIR)
    census.close()
    # Untraced from here: the groups are memhound's own objects.  Not before
    # the graph: the with statement's objects would be survivors.
    with pause_tracing():
        try:
            return _groups(graph, runs, frames, census_bytes, t0, c0)
        finally:
            graph.close()


# ---- one leak, one group -------------------------------------------------------
# The first survivor on a survivor's path (its "head") is what an old object
# holds directly; every survivor after it is kept by it.  Heads that another
# survivor keeps (a running thread's Thread object, held by threading's
# bookkeeping and its own stack; the weakref in a registry whose referent is
# a survivor; a bound method native code holds for its object) go under that
# survivor.  The survivors an old container holds are one group: one leak.

# Types that only carry references: they never name a group that holds
# something else (a cache key tuple, a frame, an exception, a bound method).
_CARRIERS = frozenset([tuple, list, dict, set, frozenset, str, bytes, int, float, complex,
                       bool, types.CodeType, types.FrameType, types.GeneratorType,
                       types.CellType, types.MethodType, types.TracebackType,
                       types.CoroutineType, types.AsyncGeneratorType,
                       types.BuiltinMethodType, types.MappingProxyType,
                       weakref.ref, weakref.ProxyType, weakref.CallableProxyType,
                       collections.deque, collections.OrderedDict, collections.defaultdict])

# threading's module-level bookkeeping of running threads: holding a Thread
# (or its lock) there is a consequence of the thread running, not a leak.
_THREAD_BOOKKEEPING = ("_active", "_limbo", "_shutdown_locks", "_dangling")

# Root kinds of _core.HeapGraph.group_links(); a registry's kind comes in
# the thread id's place, numbered as _core.ROOT_KINDS is ordered.
_ROOT_THREAD, _ROOT_EXTERNAL, _ROOT_REGISTRY = 3, 4, 5
_THREADING_REGISTRY = list(_core.ROOT_KINDS).index("threading") if "threading" in _core.ROOT_KINDS else -1
_ANCHOR_SPECIAL = 0xC0000000

_METHOD_SELF = types.MethodType.__dict__["__self__"].__get__
_REF_CALL = weakref.ref.__call__


def _is_carrier(tp):
    return tp in _CARRIERS or issubclass(tp, BaseException)


def _bookkeeping_ids():
    """ids of threading's bookkeeping containers (see _THREAD_BOOKKEEPING)."""
    threading = sys.modules.get("threading")
    out = set()
    for name in _THREAD_BOOKKEEPING:
        obj = getattr(threading, name, None) if threading is not None else None
        if type(obj).__name__ == "WeakSet":
            obj = getattr(obj, "data", None)
        if isinstance(obj, (dict, set, list)):
            out.add(id(obj))
    return out


class _Survivors:
    """The survivors of a graph and the links between them, by node index."""

    def __init__(self, graph, found):
        self.obj, self.anchor, self.extra, self.pos = {}, {}, {}, {}
        self.order = []
        for obj, idx, anchor, extra in found:
            self.obj[idx] = obj
            self.anchor[idx] = anchor
            self.extra[idx] = extra
            self.pos[idx] = len(self.order)
            self.order.append(idx)
        tree, cross = graph.group_links()
        self.parent, self.root, self.tid = {}, {}, {}
        for node, parent, root, tid in tree:
            self.parent[node] = parent
            self.root[node] = root
            self.tid[node] = tid
        # The first survivor (in path order) holding each head, parent aside.
        self.holder = {}
        for src, dst in cross:
            cur = self.holder.get(dst)
            if src in self.pos and (cur is None or self.pos[src] < self.pos[cur]):
                self.holder[dst] = src
        self.by_id = {id(o): i for i, o in self.obj.items()}
        self.anchor_ids = {}        # anchor node -> id() of its object

    def is_head(self, i):
        return self.parent.get(i, -1) < 0

    def owner(self, h, bookkeeping, plain_types):
        """The survivor that keeps head `h` alive, or None when an old
        object (or a root) does.  `plain_types` caches the types that are
        neither weakrefs nor threads."""
        obj = self.obj[h]
        tp = type(obj)
        root = self.root.get(h)
        if (tp in plain_types and root not in (_ROOT_THREAD, _ROOT_EXTERNAL, _ROOT_REGISTRY)
                and self.anchor_ids.get(self.anchor[h]) not in bookkeeping):
            return None
        threading = sys.modules.get("threading")
        if not (issubclass(tp, weakref.ref)
                or (threading is not None and issubclass(tp, threading.Thread))):
            plain_types.add(tp)
        if issubclass(tp, weakref.ref):
            ref = self.by_id.get(id(_REF_CALL(obj)))
            if ref is not None and ref != h:
                return ref
        if self.root.get(h) == _ROOT_THREAD and threading is not None:
            thread = getattr(threading, "_active", {}).get(self.tid.get(h))
            node = self.by_id.get(id(thread)) if thread is not None else None
            if node is not None and node != h:
                return node
        if tp is types.MethodType and self.root.get(h) == _ROOT_EXTERNAL:
            node = self.by_id.get(id(_METHOD_SELF(obj)))
            if node is not None and node != h:
                return node
        consequence = (root in (_ROOT_THREAD, _ROOT_EXTERNAL)
                       or (root == _ROOT_REGISTRY and self.tid.get(h) == _THREADING_REGISTRY)
                       or (threading is not None and issubclass(tp, threading.Thread))
                       or self.anchor_ids.get(self.anchor[h]) in bookkeeping)
        return self.holder.get(h) if consequence else None


def _group_key(surv, h, creation):
    """Heads held by one old container are one group; heads held straight
    from a root (no container) group by root, type and creation site."""
    anchor = surv.anchor[h]
    if 0 <= anchor < _ANCHOR_SPECIAL:
        return ("container", anchor)
    tb = creation(surv.obj[h])
    return ("root", surv.root.get(h), type(surv.obj[h]), tb[0] if tb else None)


def _partition(graph, surv):
    """[(start heads, members in visit order, group parent of each), ...]."""
    bookkeeping = _bookkeeping_ids()
    for h in surv.order:
        a = surv.anchor[h]
        if surv.is_head(h) and 0 <= a < _ANCHOR_SPECIAL and a not in surv.anchor_ids:
            surv.anchor_ids[a] = id(graph.node(a))
    head = {}

    def head_of(n):
        chain = []
        while n not in head and surv.parent.get(n, -1) >= 0:
            chain.append(n)
            n = surv.parent[n]
        h = head.get(n, n)
        for c in chain:
            head[c] = h
        return h
    children = {}
    plain_types = set()
    owned = {}                      # head -> the head of the survivor that keeps it
    for i in surv.order:
        p = surv.parent.get(i, -1)
        if p >= 0:
            children.setdefault(p, []).append(i)
            continue
        o = surv.owner(i, bookkeeping, plain_types)
        # An owner inside the head's own tree (the client its at-fork
        # callback holds) does not keep it: the head's holder does.
        if o is not None and head_of(o) != i:
            owned[i] = head_of(o)
            children.setdefault(o, []).append(i)
    creation = _core._object_creation
    groups, by_key, seen = [], {}, set()

    def grow(group, start):
        members, gparent = group[1], group[2]
        queue = [start]
        seen.add(start)
        gparent[start] = None
        while queue:
            n = queue.pop()
            members.append(n)
            for c in children.get(n, ()):
                if c not in seen:
                    seen.add(c)
                    gparent[c] = n
                    queue.append(c)

    def start(h):
        key = _group_key(surv, h, creation)
        group = by_key.get(key)
        if group is None:
            group = by_key[key] = ([], [], {})
            groups.append(group)
        group[0].append(h)
        grow(group, h)

    heads = [h for h in surv.order if surv.is_head(h)]
    for h in heads:
        if h not in owned:
            start(h)
    # What is left is kept in a circle of survivors (a client and the thread
    # it started): the objects that are not carriers or threads lead.
    threading = sys.modules.get("threading")
    thread_tp = threading.Thread if threading is not None else ()

    def rank(h):
        tp = type(surv.obj[h])
        return (_is_carrier(tp) or (thread_tp and issubclass(tp, thread_tp)), surv.pos[h])
    for h in heads:
        if h in seen:
            continue
        cycle = [h]             # follow the owners to the circle they end in
        while owned.get(cycle[-1]) is not None and owned[cycle[-1]] not in cycle:
            cycle.append(owned[cycle[-1]])
        last = owned.get(cycle[-1])
        circle = cycle[cycle.index(last):] if last in cycle else cycle[-1:]
        start(min(circle, key=rank))
    for i in surv.order:            # unreachable from any head: cannot happen, but
        if i not in seen:           # never drop a survivor
            start(i)
    return groups


def _summarise(surv, members, gparent, sizes):
    """(representative nodes, contents) of one group.  Lists indexed by the
    members' visit order (parents first) keep this linear and cheap: a leak
    may leave hundreds of thousands of objects."""
    index = {n: k for k, n in enumerate(members)}
    up = [index[gparent[n]] if gparent[n] is not None else -1 for n in members]
    kinds = [type(surv.obj[n]) for n in members]
    carrier_of = {tp: _is_carrier(tp) for tp in set(kinds)}
    under = [False] * len(members)
    depth = [0] * len(members)
    tops = []
    for k, p in enumerate(up):
        carrier = carrier_of[kinds[k]]
        inherited = under[p] if p >= 0 else False
        depth[k] = depth[p] + 1 if p >= 0 else 0
        if not carrier and not inherited:
            tops.append(k)
        under[k] = inherited or not carrier
    retained = [sizes[n] for n in members]
    for k in range(len(members) - 1, 0, -1):
        if up[k] >= 0:
            retained[up[k]] += retained[k]
    by_type = {}
    for k in tops:
        kept, near = by_type.get(kinds[k], (0, -len(members)))
        by_type[kinds[k]] = (kept + retained[k], max(near, -depth[k]))
    if by_type:
        # Most bytes kept; on a tie, the objects nearest to the holder.
        best = max(by_type.items(), key=lambda kv: kv[1])[0]
        reps = [members[k] for k in tops if kinds[k] is best]
    else:
        best = kinds[0]
        reps = [members[k] for k in range(len(members)) if up[k] < 0 and kinds[k] is best]
    reps.sort(key=surv.pos.__getitem__)
    contents = {}
    for k, tp in enumerate(kinds):
        entry = contents.get(tp)
        if entry is None:
            entry = contents[tp] = [0, 0]
        entry[0] += 1
        entry[1] += sizes[members[k]]
    table = sorted(([_type_name(tp), c, b] for tp, (c, b) in contents.items()),
                   key=lambda e: (-e[2], -e[1], e[0]))
    return reps, [{"type": t, "count": c, "bytes": b} for t, c, b in table]


def _per_run(count, runs):
    per = count / runs
    return int(per) if per == int(per) else round(per, 2)


def _groups(graph, runs, frames, census_bytes, t0, c0):
    """The survivor groups of a heap graph, most important first, and stats."""
    orphans, native = _orphan_groups(graph, runs, frames)
    found = graph.survivors()
    stats = graph.stats()
    surv = _Survivors(graph, found)
    del found
    sizes = {i: _shallow_size(o) for i, o in surv.obj.items()}
    result = []
    for starts, members, gparent in _partition(graph, surv):
        reps, contents = _summarise(surv, members, gparent, sizes)
        rep = reps[0]
        raw = graph.path(rep)
        path = [(k, _thread_name(lab) if k == "thread" else lab, t, s) for k, lab, t, s in raw]
        g = LeakGroup()
        g.type = _type_name(type(surv.obj[rep]))
        of_type = next(c for c in contents if c["type"] == g.type)
        g.count = of_type["count"]
        g.count_per_run = _per_run(g.count, runs)
        g.bytes = of_type["bytes"]
        g.retained_bytes = sum(c["bytes"] for c in contents)
        g.contents = contents
        g.created_at = list(_creation(surv.obj[rep], frames))
        g.path = [(k, lab, t) for k, lab, t, _s in path]
        g.path_text = _path_text(raw, g.type)
        g.cause = _thread_cause(surv, rep) or _cause(path)
        g.external_refs = max(surv.extra[rep], 0)
        g.held_by_survivor = any(surv.holder.get(h) is not None and surv.holder[h] not in gparent
                                 for h in starts)
        g.hint = _hint(graph, surv, g, path, starts, runs, rep)
        g.bound, g._holder = _group_bound(graph, surv, starts, members)
        result.append(g)
    # Memory that no Python object owns is mostly the buffers of the
    # objects above: it is reported only when nothing else explains a leak.
    for g in orphans or ([] if result else native):
        g.retained_bytes = g.bytes
        g.contents = [{"type": g.type, "count": g.count, "bytes": g.bytes}]
        result.append(g)
    result.sort(key=lambda g: (g.held_by_survivor, -g.retained_bytes, -g.count))
    stats["census_bytes"] = census_bytes
    stats["t_census_cpu"] = _CENSUS_CPU[0]
    stats["t_analysis"] = time.perf_counter() - t0
    stats["t_analysis_cpu"] = time.process_time() - c0
    return result, stats


def _thread_cause(surv, rep):
    """"thread-bookkeeping" for a group led by a thread started during the
    runs and still running (its stack and threading's bookkeeping hold it,
    with its weakref in threading._dangling), else None."""
    threading = sys.modules.get("threading")
    if (threading is None or "thread-bookkeeping" not in HINTS
            or not issubclass(type(surv.obj[rep]), threading.Thread)):
        return None
    while surv.parent.get(rep, -1) >= 0:
        rep = surv.parent[rep]
    root = surv.root.get(rep)
    if root == _ROOT_THREAD or (root == _ROOT_REGISTRY and surv.tid.get(rep) == _THREADING_REGISTRY):
        return "thread-bookkeeping"
    return None


def _grows(group, runs):
    """Did the group's representative, or any type it holds, grow by at
    least one object per run?"""
    return group.count >= runs or any(c["count"] >= runs for c in group.contents)


# ---- hints specific to the case -----------------------------------------------
# The weak containers of the weakref module: a hint never tells to hold
# weak references when the container already does.
_WEAK_CONTAINERS = ("weakref.WeakValueDictionary", "weakref.WeakKeyDictionary",
                    "_weakrefset.WeakSet", "weakref.WeakSet")
_HINT_ALREADY_WEAK = ("%s already holds weak references: something it holds strongly (a value, "
                      "a callback) refers back to its entry and keeps it alive: remove entries "
                      "when done, or do not refer back to the key")


def _stdlib_dirs():
    import sysconfig
    paths = sysconfig.get_paths()
    return tuple(os.path.join(paths[k], "") for k in ("stdlib", "platstdlib") if paths.get(k))


def _user_frame(frames):
    """The newest frame outside the standard library (the line that called
    into it), or the newest frame when all are in it."""
    stdlib = _stdlib_dirs()
    for fr in frames:
        if not str(fr[0]).startswith(stdlib):
            return fr
    return frames[0]


def _adds_text(surv, group, entries, runs, rep_head):
    """"one ValueError per call, which keeps one bytearray": what the
    holder gains per call (its direct entries) and the group's name."""
    counts = {}
    for h in entries:
        tp = type(surv.obj[h])
        counts[tp] = counts.get(tp, 0) + 1
    # On a tie, the entry that keeps the representative (a cache's key
    # rather than its result) is named.
    tp, n = max(counts.items(), key=lambda kv: (kv[1], kv[0] is type(surv.obj[rep_head])))
    name = _type_name(tp)
    text = _count_text(_per_run(n, runs), name) + " per call"
    if name != group.type:
        text += ", which keeps %s" % _count_text(group.count_per_run, group.type)
    return text


def _source_line(filename, lineno):
    """The code of one source line without its comment, or None."""
    import linecache
    import tokenize
    line = linecache.getline(filename, lineno).strip()
    if not line:
        return None
    try:
        for tok in tokenize.generate_tokens(iter([line + "\n"]).__next__):
            if tok.type == tokenize.COMMENT:
                line = line[:tok.start[1]].rstrip()
                break
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return line or None


def _container_text(path):
    """"global _history (list)" / "attribute handlers (dict) of app.Session":
    the step that holds the first survivor, or None."""
    first = next((i for i, s in enumerate(path) if i > 0 and s[3]), None)
    if first is None:
        return None
    if first == 1:
        kind, label, tname = path[0][:3]
        if kind == "external":
            return "a %s held by native code" % tname
        return _core.ROOT_KINDS[kind].format(label)
    kind, label, tname = path[first - 1][:3]
    if kind in ("elided", "index", "key", "member", "ref", "dict_key", "local"):
        return None
    text = "%s (%s)" % (_core.EDGE_KINDS[kind].format(label), tname)
    if kind == "attr" and first >= 3:
        owner = path[first - 2]
        if owner[2] in _WEAK_CONTAINERS:
            # The weak container's own storage is an implementation detail.
            return "%s (%s)" % (_core.EDGE_KINDS[owner[0]].format(owner[1]), owner[2])
        text += " of " + owner[2]
    return text


def _count_text(n, type_name):
    if n == 1:
        return "one " + type_name
    return "%s %s" % (n, type_name)


def _hint(graph, surv, group, path, starts, runs, rep):
    """The cause's hint, opened by what this case shows: the container, the
    line that grows it and what it adds per call."""
    generic = HINTS[group.cause]
    weak = next((step[2] for step in path if step[2] in _WEAK_CONTAINERS), None)
    if weak is not None and group.cause in _OWNER_CAUSES.values():
        generic = _HINT_ALREADY_WEAK % weak
    container = _container_text(path)
    # The container is the holder of the representative's first survivor;
    # its entries are the group's heads that it holds.
    rep_head = rep
    while surv.parent.get(rep_head, -1) >= 0:
        rep_head = surv.parent[rep_head]
    anchor = surv.anchor[rep_head]
    entries = [h for h in starts if surv.anchor[h] == anchor] or [rep_head]
    adds = _adds_text(surv, group, entries, runs, rep_head)
    site = None
    if container is not None and 0 <= anchor < _ANCHOR_SPECIAL:
        grown = graph.storage_creation(graph.node(anchor))
        frames = _own_frames_cut(grown) if grown else ()
        # Only a line in the calls that created the group is named: the
        # container may also grow elsewhere.
        made = {(f, fn) for f, _n, fn in group.created_at}
        if any((f, fn) in made for f, _n, fn in frames):
            site = _user_frame(frames)
    if site is not None:
        code = _source_line(site[0], site[1])
        where = "%s:%s" % (os.path.basename(site[0]), site[1])
        opening = ("`%s` at %s" % (code, where)) if code else where
        text = "%s adds %s" % (opening, adds.replace(" per call", " per call to %s" % container, 1))
    elif group.created_at and container is not None:
        f, n, _fn = group.created_at[0]
        code = _source_line(f, n)
        where = "%s:%s" % (os.path.basename(f), n)
        text = "%s created at %s%s, %s, is kept by %s" % (
            group.type, ("`%s` at " % code) if code else "", where,
            "one per call" if group.count_per_run == 1 else "%s per call" % group.count_per_run,
            container)
    else:
        return generic
    return text + "; " + generic


def _take_census():
    try:
        t0 = time.process_time()
        census = _core.heap_census()
        _CENSUS_CPU[0] = time.process_time() - t0
        return census
    except MemoryError as exc:
        warnings.warn("memhound: no heap census (%s); only the verdict is reported" % exc,
                      RuntimeWarning, stacklevel=3)
        return None


def _analyse_or_warn(census, runs, frames):
    """_analyse(), degrading an internal failure to a warning."""
    if census is None:
        return [], {}
    try:
        return _analyse(census, runs, frames)
    except MemoryError as exc:
        warnings.warn("memhound: heap analysis skipped (%s); only the verdict is reported" % exc,
                      RuntimeWarning, stacklevel=3)
        return [], {}


def find_leaks(func, *args, warmup=3, runs=5, frames=LEAK_FRAMES, **kwargs):
    """Run ``func(*args, **kwargs)`` repeatedly and report what leaks.

    ``warmup`` calls are ignored, then ``runs`` calls are measured; the
    verdict ``leaked`` is True only when every measured run left more
    memory blocks (``sys.getallocatedblocks()``) or more GC objects behind.
    The groups list the surviving objects with the path from a root that
    keeps them alive, their creation traceback (up to ``frames`` frames)
    and a cause.  An exception from ``func`` propagates unchanged.  A call
    that returns a coroutine (``async def``) runs to completion in an event
    loop kept for all the calls; a generator is exhausted
    (``memhound.targets``).

    Example::

        >>> class Cache:
        ...     seen = []
        >>> report = find_leaks(lambda: Cache.seen.append(bytearray(10)))
        >>> report.leaked, report.groups[0].type, report.groups[0].cause
        (True, 'bytearray', 'class-collection')
    """
    if not callable(func):
        raise TypeError("func must be callable, not %s" % type(func).__name__)
    _check_int("warmup", warmup, 0)
    _check_int("runs", runs, 1)
    check_frames(frames)
    # Coroutine and generator functions run to completion, in one event
    # loop made before the census (memhound.targets); `memhound run`'s
    # recorder thread, memhound's own, is parked meanwhile.
    with Target(func) as call, _recording_paused():
        return _find_leaks(call, args, kwargs, warmup, runs, frames)


def _recording_paused():
    runner = sys.modules.get(__package__ + ".runner")     # not imported: nothing records
    return runner.recording_paused() if runner is not None else contextlib.nullcontext()


def _find_leaks(func, args, kwargs, warmup, runs, frames):
    blocks = array.array("q", bytes(8 * (runs + 1)))
    objects = array.array("q", bytes(8 * (runs + 1)))
    nbytes = array.array("q", bytes(8 * (runs + 1)))
    threads_left = array.array("q", bytes(8 * runs))
    threads = _ThreadWatch()
    threads.mark()
    started = time.monotonic()
    gc_was_enabled = gc.isenabled()
    census = None
    with _Tracing(frames):
        try:
            for _ in range(warmup):
                func(*args, **kwargs)
                threads.join()
                _clear_caches()
            census = _take_census()
            steps = iter(range(1, runs + 1))
            # Each reading is taken right after the full collection (which
            # also empties the free lists) and goes straight into an array,
            # so memhound's own bookkeeping never shows up as a delta.
            _clear_caches()
            blocks[0] = sys.getallocatedblocks()
            objects[0] = len(gc.get_objects())
            nbytes[0] = _traced_bytes()
            for i in steps:
                func(*args, **kwargs)
                threads_left[i - 1] = threads.join()
                _clear_caches()
                blocks[i] = sys.getallocatedblocks()
                objects[i] = len(gc.get_objects())
                nbytes[i] = _traced_bytes()
            gc.disable()
            groups, stats = _analyse_or_warn(census, runs, frames)
        finally:
            if census is not None:
                census.close()
            if gc_was_enabled:
                gc.enable()
    deltas = {name: [arr[i + 1] - arr[i] for i in range(runs)]
              for name, arr in (("blocks", blocks), ("objects", objects), ("bytes", nbytes))}
    leaked = (all(d >= 1 for d in deltas["blocks"]) or all(d >= 1 for d in deltas["objects"]))
    groups = [g for g in groups if _grows(g, runs)] if leaked else []
    bounded, extra = [], 0
    # Runs that leave threads running are not a bounded pattern, and every
    # extra call would wait THREAD_WAIT for them: no extra runs then.
    if groups and not any(threads_left):
        t_extra = time.monotonic()
        seconds = max(EXTRA_TIME, t_extra - started)
        groups, bounded, extra = _settle_bounds(groups, lambda: func(*args, **kwargs),
                                                threads, seconds)
        leaked = bool(groups)
        stats["t_extra"] = time.monotonic() - t_extra
    for g in groups + bounded:
        g._holder = None
    for g in bounded:
        g.hint = HINTS["bounded"]
    return LeakReport(leaked, warmup, runs, deltas, groups, stats, bounded=bounded,
                      extra_runs=extra, threads_left=list(threads_left))


class survivors:
    """Context manager: what was created inside the block and is still alive.

    For code that cannot be repeated: one pass, no verdict.  ``report()``
    returns a LeakReport whose groups are the survivors (``leaked`` is True
    when there are any), with paths, creation tracebacks and causes.

    Example::

        >>> class Cache:
        ...     by_key = {}
        >>> with survivors() as s:
        ...     Cache.by_key["k"] = bytearray(8)
        >>> s.report().groups[0].path_text                   # doctest: +ELLIPSIS
        "class ...Cache -> class attribute by_key (dict) -> ['k'] -> bytearray"
    """

    def __init__(self, frames=LEAK_FRAMES):
        check_frames(frames)
        self.frames = frames
        self._report = None
        self._census = None
        self._tracing = None
        self._blocks = array.array("q", [0, 0])

    def __enter__(self):
        self._tracing = _Tracing(self.frames).__enter__()
        _clear_caches()
        self._census = _take_census()
        self._blocks[0] = sys.getallocatedblocks()
        return self

    def __exit__(self, exc_type, exc, tb):
        census, self._census = self._census, None
        gc_was_enabled = gc.isenabled()
        try:
            if exc_type is not None:
                return False
            gc.collect()
            self._blocks[1] = sys.getallocatedblocks()
            gc.disable()
            groups, stats = _analyse_or_warn(census, 1, self.frames)
            for g in groups:
                g._holder = None
            deltas = {"blocks": [self._blocks[1] - self._blocks[0]], "objects": [], "bytes": []}
            self._report = LeakReport(bool(groups), 0, 1, deltas, groups, stats)
        finally:
            if census is not None:
                census.close()
            if gc_was_enabled:
                gc.enable()
            self._tracing.__exit__(None, None, None)
        return False

    def report(self):
        """The LeakReport of the block (after it exited).

        Example::

            >>> with survivors() as s:
            ...     pass
            >>> s.report().leaked
            False
        """
        if self._report is None:
            raise RuntimeError("survivors().report() is only available after the with block")
        return self._report
