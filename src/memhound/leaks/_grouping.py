"""One leak, one group: the survivors of the heap graph split by the holder
that keeps them (_partition), each group summarised by its representative
and contents (_summarise), with its cause, hint and bound (_groups); and
the groups of blocks no object of the graph explains (_orphan_groups).
"""
import array
import collections
import sys
import time
import types
import weakref

from .. import _core
from ._bounds import _group_bound
from ._hints import _hint
from ._report import (HINTS, LeakGroup, _ANCHOR_SPECIAL, _ROOT_EXTERNAL, _ROOT_REGISTRY,
                      _ROOT_THREAD, _THREADING_REGISTRY, _cause, _own_frames_cut, _path_text,
                      _per_run, _thread_name, _type_name)

# The census's CPU time: written by the run loop (_take_census), read into
# the stats here.
_CENSUS_CPU = array.array("d", [0.0])   # no float object: it would be a survivor


def _creation(obj, frames):
    tb = _core._object_creation(obj)
    if not tb:
        return ()
    # Most recent first: keep the frames above memhound's own (the caller's
    # frames below find_leaks() say nothing about the leak).
    return _own_frames_cut(tb)[:frames]



def _shallow_size(obj):
    try:
        return sys.getsizeof(obj)
    except Exception:
        return object.__sizeof__(obj)



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
