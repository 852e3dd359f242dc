"""Bounded growth and the extra runs: whether a leaking group's holder has
a bound (lru_cache(maxsize=...), deque(maxlen=...)) or stops growing when
the function is called more, and what happens between two runs (the
threads a run started are joined, the interpreter's caches cleared).
"""
import _thread
import array
import collections
import functools
import gc
import sys
import time
import warnings

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

