"""The leak report and its vocabulary: LeakGroup and LeakReport, the cause
codes and their fix hints (HINTS), how a path's steps name a cause
(_cause) and the text helpers that name types, threads, paths and counts.
"""
import os
import sys

from .. import _core
from . import _bounds

# memhound's own directory (src/memhound/): its frames are cut from the
# creation tracebacks, and the heap graph skips what its code holds.
_OWN_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__))) + os.sep

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

# Root kinds of _core.HeapGraph.group_links(); a registry's kind comes in
# the thread id's place, numbered as _core.ROOT_KINDS is ordered.  Anchors
# from _ANCHOR_SPECIAL up are not graph nodes.  Here because both the
# grouping and the hints read them.
_ROOT_THREAD, _ROOT_EXTERNAL, _ROOT_REGISTRY = 3, 4, 5
_THREADING_REGISTRY = list(_core.ROOT_KINDS).index("threading") if "threading" in _core.ROOT_KINDS else -1
_ANCHOR_SPECIAL = 0xC0000000


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
        >>> report = memhound.find_leaks(lambda: Registry.entries.extend(bytearray(8) for _ in range(50)))
        >>> g = report.groups[0]
        >>> g.type, g.cause, g.count_per_run
        ('bytearray', 'class-collection', 50)
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
            >>> report = memhound.find_leaks(lambda: Registry.entries.extend(bytearray(8) for _ in range(50)))
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
        >>> report = memhound.find_leaks(lambda: Registry.entries.extend(bytearray(8) for _ in range(50)), runs=3)
        >>> bool(report), report.runs, len(report.deltas["blocks"])
        (True, 3, 3)
        >>> print(report)                                   # doctest: +ELLIPSIS
        LEAK: every measured run left memory behind (3 warm-up, 3 measured runs)
        ...
        #1 bytearray: 150 object(s), 50 per run, ... bytes  [class-collection]
        ...
    """

    def __init__(self, leaked, warmup, runs, deltas, groups, stats=None, bounded=None,
                 extra_runs=0, threads_left=None, disturbed=None):
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
        # The deltas of a first measurement in which one run did not grow
        # (another thread's doing, typically): `deltas` are then those of a
        # second measurement of as many runs.
        self.disturbed = disturbed

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
                "extra_runs": self.extra_runs, "threads_left": list(self.threads_left),
                "disturbed": self.disturbed}

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
                     % (list(report.threads_left), _bounds.THREAD_WAIT))
    if report.disturbed:
        lines.append("  measured again: one run of the first %d did not grow (blocks %s); "
                     "the deltas above are a second measurement"
                     % (report.runs, list(report.disturbed["blocks"])))
    for g in report.bounded:
        lines.append("  bounded  %s: %s -- %s" % (g.type, _bound_text(g.bound),
                                                 g.path_text or "(no path)"))
    if report.leaked and report.extra_runs:
        lines.append("  extra    %d more calls: the holders kept growing (limits: %d calls, "
                     "%.1f s or the time of the first runs)"
                     % (report.extra_runs, _bounds.EXTRA_RUNS, _bounds.EXTRA_TIME))
    return lines



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

def _per_run(count, runs):
    per = count / runs
    return int(per) if per == int(per) else round(per, 2)



def _count_text(n, type_name):
    if n == 1:
        return "one " + type_name
    return "%s %s" % (n, type_name)

