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
import array
import contextlib
import gc
import sys
import time
import warnings

from .. import _core
from ..targets import Target
from ..tracing import LEAK_FRAMES, check_frames, pause_tracing
from . import _bounds
from ._bounds import (EXTRA_GROWTH, EXTRA_RUNS, EXTRA_TIME, STALL_RUNS, THREAD_WAIT,  # noqa: F401
                      _ThreadWatch, _clear_caches, _settle_bounds)
from ._grouping import RAW_MEMORY, _CENSUS_CPU, _groups, _grows, _partition  # noqa: F401
from ._report import (HINTS, LeakGroup, LeakReport, _HOLDER_CAUSES,  # noqa: F401
                      _OWN_DIR, _OWNER_CAUSES, _REGISTRY_CAUSES)

__all__ = ["find_leaks", "survivors", "LeakReport", "LeakGroup"]

# The report's classes live in ._report: their examples (which call
# find_leaks) run with this module's globals, as memhound.leaks's.
__test__ = {"LeakGroup": LeakGroup, "LeakGroup.to_dict": LeakGroup.to_dict,
            "LeakReport": LeakReport, "LeakReport.to_dict": LeakReport.to_dict}

MAX_RUNS = 1_000_000     # warm-up or measured runs: beyond, a typo rather than a plan


def _check_int(name, value, low, high=MAX_RUNS):
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if value < low:
        raise ValueError("%s must be >= %d, got %d" % (name, low, value))
    if value > high:
        raise ValueError("%s must be <= %d, got %d" % (name, high, value))


class _Tracing:
    """Start memhound's tracing for the analysis; restore the prior state."""

    def __init__(self, frames):
        self.started = False
        self.frames = frames

    def __enter__(self):
        rate = _core.get_sample_every()
        if rate:
            # Survivors need their creation tracebacks and the verdict every
            # block: a sample would leave most survivors unexplained.
            raise RuntimeError(
                "memhound: the leak finder needs exact tracing, but tracing is sampled "
                "(sample_every=%d); call memhound.stop() first, or leave out --sample" % rate)
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
    Those counters are the process's, so another thread can disturb a run:
    when all runs but one grew, ``runs`` more calls are measured and the
    verdict is theirs (``report.disturbed`` keeps the first deltas).
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
    runner = sys.modules.get(__package__.rpartition(".")[0] + ".runner")     # not imported: nothing records
    return runner.recording_paused() if runner is not None else contextlib.nullcontext()


def _readings(runs):
    """Arrays for the blocks, objects and traced bytes before and after each run."""
    return tuple(array.array("q", bytes(8 * (runs + 1))) for _ in range(3))


def _deltas(readings):
    """{"blocks": [...], "objects": [...], "bytes": [...]}: the growth per run."""
    return {name: [arr[i + 1] - arr[i] for i in range(len(arr) - 1)]
            for name, arr in zip(("blocks", "objects", "bytes"), readings)}


def _grew_every_run(deltas):
    """CPython's refleak rule: every run left more blocks, or more objects."""
    return all(d >= 1 for d in deltas["blocks"]) or all(d >= 1 for d in deltas["objects"])


def _disturbed_once(deltas):
    """Not every run grew, but every run but one did: the pattern of a leak
    whose one run another thread disturbed (e.g. it freed its own objects
    meanwhile)."""
    if len(deltas["blocks"]) < 3:   # fewer than 3 runs: no pattern to speak of
        return False
    return min(sum(d < 1 for d in deltas[key]) for key in ("blocks", "objects")) == 1


def _measure(func, args, kwargs, readings, threads, threads_left):
    """Call func once per reading interval, filling `readings` (made before
    the census: neither they nor the loop's objects are survivors)."""
    blocks, objects, nbytes = readings
    steps = iter(range(1, len(blocks)))
    # Each reading is taken right after the full collection (which also
    # empties the free lists) and goes straight into an array, so memhound's
    # own bookkeeping never shows up as a delta.
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


def _find_leaks(func, args, kwargs, warmup, runs, frames):
    first, second = _readings(runs), _readings(runs)
    threads_left = array.array("q", bytes(8 * runs))
    threads = _ThreadWatch()
    threads.mark()
    started = time.monotonic()
    gc_was_enabled = gc.isenabled()
    census = None
    measured = first
    calls = runs
    with _Tracing(frames):
        try:
            for _ in range(warmup):
                func(*args, **kwargs)
                threads.join()
                _clear_caches()
            census = _take_census()
            _measure(func, args, kwargs, first, threads, threads_left)
            # The counters are the process's: another thread allocating or
            # freeing during one run (a server's I/O thread, pytest-xdist's)
            # can hide a small leak.  Measured once more, a leak grows again
            # in every run; the verdict is the second measurement's.
            if _disturbed_once(_deltas(first)):
                _measure(func, args, kwargs, second, threads, threads_left)
                measured, calls = second, 2 * runs
            gc.disable()
            groups, stats = _analyse_or_warn(census, calls, frames)
        finally:
            if census is not None:
                census.close()
            if gc_was_enabled:
                gc.enable()
    deltas = _deltas(measured)
    disturbed = _deltas(first) if measured is second else None
    leaked = _grew_every_run(deltas)
    groups = [g for g in groups if _grows(g, calls)] if leaked else []
    bounded, extra = [], 0
    # Runs that leave threads running are not a bounded pattern, and every
    # extra call would wait THREAD_WAIT for them: no extra runs then.
    if groups and not any(threads_left):
        t_extra = time.monotonic()
        seconds = max(_bounds.EXTRA_TIME, t_extra - started)
        groups, bounded, extra = _settle_bounds(groups, lambda: func(*args, **kwargs),
                                                threads, seconds)
        leaked = bool(groups)
        stats["t_extra"] = time.monotonic() - t_extra
    for g in groups + bounded:
        g._holder = None
    for g in bounded:
        g.hint = HINTS["bounded"]
    return LeakReport(leaked, warmup, runs, deltas, groups, stats, bounded=bounded,
                      extra_runs=extra, threads_left=list(threads_left), disturbed=disturbed)


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
        self._paused = None
        self._blocks = array.array("q", [0, 0])

    def __enter__(self):
        self._paused = _recording_paused()
        self._paused.__enter__()
        try:
            self._tracing = _Tracing(self.frames).__enter__()
        except BaseException:
            self._paused.__exit__(None, None, None)
            raise
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
            self._paused.__exit__(None, None, None)
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
