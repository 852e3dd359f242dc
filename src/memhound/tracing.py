"""Tracing API: a drop-in superset of the standard library's ``tracemalloc``.

Same names, signatures, semantics, reprs and exceptions as
``Lib/tracemalloc.py`` (3.11-3.13), so ``import memhound as tracemalloc``
runs existing code unchanged.  The difference is underneath: a snapshot
is a compact C object (``memhound._core.SnapshotData``) and
``statistics()``, ``compare_to()``, ``filter_traces()``, ``dump()`` and
``load()`` run in C over its arrays; Python objects are created only for
what they return.  ``Snapshot.traces`` is a lazy sequence over those arrays.

Extras over tracemalloc: ``Frame.function`` (None when unknown),
``Snapshot.from_tracemalloc()``, ``Snapshot.metadata`` (a JSON-able dict
saved by ``dump()``), a documented binary file format instead of pickle
(docs/snapshot-format.md), ``pause_tracing()`` (leave a block of code
untraced), and ``check_frames()`` with the frame counts each tool uses.

>>> import memhound as tracemalloc
>>> snap = tracemalloc.Snapshot([(0, 32, (("a.py", 3),), 1)], 1)
>>> snap.statistics("lineno")
[<Statistic traceback=<Traceback (<Frame filename='a.py' lineno=3>,)> size=32 count=1>]

The tracing functions are the C engine's own (``memhound._core``), with
tracemalloc's signatures:

>>> tracemalloc.start(10)
>>> tracemalloc.is_tracing(), tracemalloc.get_traceback_limit()
(True, 10)
>>> tracemalloc.reset_peak()
>>> data = bytearray(100_000)
>>> current, peak = tracemalloc.get_traced_memory()
>>> current >= 100_000, peak >= current, tracemalloc.get_tracemalloc_memory() > 0
(True, True, True)
>>> tracemalloc.clear_traces()
>>> tracemalloc.get_object_traceback(data) is None
True
>>> tracemalloc.stop()
>>> tracemalloc.is_tracing(), tracemalloc.get_traced_memory()
(False, (0, 0))

Sampled tracing (``start(nframe, sample_every=BYTES)``) records each
allocation with probability ``1 - exp(-size / BYTES)``; the sizes and counts
it reports are unbiased estimates (docs/production.md, "Sampling"):

>>> tracemalloc.start(1, sample_every=512 * 1024)
>>> tracemalloc.get_sample_every(), tracemalloc.take_snapshot().sample_every
(524288, 524288)
>>> tracemalloc.stop()
>>> tracemalloc.get_sample_every()
0
"""
from collections.abc import Iterable, Sequence
from functools import total_ordering
import fnmatch
import json
import linecache
import os.path
import sys

from . import _core

__all__ = [
    "start", "stop", "is_tracing", "clear_traces", "get_traced_memory", "reset_peak",
    "get_traceback_limit", "get_tracemalloc_memory", "get_object_traceback", "take_snapshot",
    "get_sample_every", "DEFAULT_SAMPLE_EVERY",
    "Frame", "Traceback", "Statistic", "StatisticDiff", "Trace", "Snapshot",
    "BaseFilter", "Filter", "DomainFilter",
]

start = _core.start
stop = _core.stop
is_tracing = _core.is_tracing
clear_traces = _core.clear_traces
get_traced_memory = _core.get_traced_memory
reset_peak = _core.reset_peak
get_traceback_limit = _core.get_traceback_limit
get_tracemalloc_memory = _core.get_tracemalloc_memory
get_sample_every = _core.get_sample_every
MAX_NFRAME = _core.MAX_NFRAME
# The rate docs/production.md recommends for sampled tracing (bytes): see
# "Sampling" there for the cost and accuracy measured at it.
DEFAULT_SAMPLE_EVERY = 64 * 1024
_get_object_traceback = _core._get_object_traceback

_SnapshotData = _core.SnapshotData
_KEY_TYPES = ('lineno', 'filename', 'traceback')   # index = C grouping mode


class pause_tracing:
    """Context manager: the current thread's allocations are not traced
    inside the block (memhound's own bookkeeping uses it; blocks nest).

    >>> import memhound
    >>> memhound.start()
    >>> with memhound.pause_tracing():
    ...     untraced = bytearray(1000)
    >>> traced = bytearray(1000)
    >>> memhound.get_object_traceback(untraced) is None, memhound.get_object_traceback(traced) is None
    (True, False)
    >>> memhound.stop()
    """
    __slots__ = ()

    def __enter__(self):
        _core.suspend()

    def __exit__(self, *exc):
        _core.resume()
        return False


_paused = pause_tracing()

# Frames stored per traceback, by purpose (start() itself defaults to 1, as
# tracemalloc does).
LEAK_FRAMES = 16        # leak finder: the creation site and the callers that explain it
PEAK_FRAMES = 8         # pytest --memhound: every test traced; only the sites' lines are shown


def check_frames(value, name="frames"):
    """Return ``value`` if it is a valid number of frames per traceback (an
    int from 1 to ``MAX_NFRAME``); else raise TypeError or ValueError whose
    message starts with ``name``.

    >>> check_frames(16)
    16
    >>> check_frames(0, "--frames")
    Traceback (most recent call last):
    ValueError: --frames must be >= 1, got 0
    """
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError("%s must be an int, not %s" % (name, type(value).__name__))
    if value < 1:
        raise ValueError("%s must be >= 1, got %d" % (name, value))
    if value > MAX_NFRAME:
        raise ValueError("%s must be <= %d, got %d" % (name, MAX_NFRAME, value))
    return value


def _format_size(size, sign):
    """Human size, exactly like tracemalloc's: ``_format_size(2048, False)`` -> '2048 B'."""
    for unit in ('B', 'KiB', 'MiB', 'GiB', 'TiB'):
        if abs(size) < 100 and unit != 'B':
            # 3 digits (xx.x UNIT)
            if sign:
                return "%+.1f %s" % (size, unit)
            else:
                return "%.1f %s" % (size, unit)
        if abs(size) < 10 * 1024 or unit == 'TiB':
            # 4 or 5 digits (xxxx UNIT)
            if sign:
                return "%+.0f %s" % (size, unit)
            else:
                return "%.0f %s" % (size, unit)
        size /= 1024


class Statistic:
    """
    Statistic on memory allocations.

    >>> Statistic(Traceback((("a.py", 1),)), 64, 2)
    <Statistic traceback=<Traceback (<Frame filename='a.py' lineno=1>,)> size=64 count=2>
    """

    __slots__ = ('traceback', 'size', 'count')

    def __init__(self, traceback, size, count):
        self.traceback = traceback
        self.size = size
        self.count = count

    def __hash__(self):
        return hash((self.traceback, self.size, self.count))

    def __eq__(self, other):
        if not isinstance(other, Statistic):
            return NotImplemented
        return (self.traceback == other.traceback
                and self.size == other.size
                and self.count == other.count)

    def __str__(self):
        text = ("%s: size=%s, count=%i"
                % (self.traceback,
                   _format_size(self.size, False),
                   self.count))
        if self.count:
            average = self.size / self.count
            text += ", average=%s" % _format_size(average, False)
        return text

    def __repr__(self):
        return ('<Statistic traceback=%r size=%i count=%i>'
                % (self.traceback, self.size, self.count))

    def _sort_key(self):
        return (self.size, self.count, self.traceback)


class StatisticDiff:
    """
    Statistic difference on memory allocations between an old and a new
    Snapshot instance.

    >>> str(StatisticDiff(Traceback((("a.py", 1),)), 96, 32, 3, 1))
    'a.py:1: size=96 B (+32 B), count=3 (+1), average=32 B'
    """
    __slots__ = ('traceback', 'size', 'size_diff', 'count', 'count_diff')

    def __init__(self, traceback, size, size_diff, count, count_diff):
        self.traceback = traceback
        self.size = size
        self.size_diff = size_diff
        self.count = count
        self.count_diff = count_diff

    def __hash__(self):
        return hash((self.traceback, self.size, self.size_diff,
                     self.count, self.count_diff))

    def __eq__(self, other):
        if not isinstance(other, StatisticDiff):
            return NotImplemented
        return (self.traceback == other.traceback
                and self.size == other.size
                and self.size_diff == other.size_diff
                and self.count == other.count
                and self.count_diff == other.count_diff)

    def __str__(self):
        text = ("%s: size=%s (%s), count=%i (%+i)"
                % (self.traceback,
                   _format_size(self.size, False),
                   _format_size(self.size_diff, True),
                   self.count,
                   self.count_diff))
        if self.count:
            average = self.size / self.count
            text += ", average=%s" % _format_size(average, False)
        return text

    def __repr__(self):
        return ('<StatisticDiff traceback=%r size=%i (%+i) count=%i (%+i)>'
                % (self.traceback, self.size, self.size_diff,
                   self.count, self.count_diff))

    def _sort_key(self):
        return (abs(self.size_diff), self.size,
                abs(self.count_diff), self.count,
                self.traceback)


def _compare_grouped_stats(old_group, new_group):
    # tracemalloc's helper, kept for code that calls it; memhound's own
    # compare_to() does this in C.
    statistics = []
    for traceback, stat in new_group.items():
        previous = old_group.pop(traceback, None)
        if previous is not None:
            stat = StatisticDiff(traceback,
                                 stat.size, stat.size - previous.size,
                                 stat.count, stat.count - previous.count)
        else:
            stat = StatisticDiff(traceback,
                                 stat.size, stat.size,
                                 stat.count, stat.count)
        statistics.append(stat)

    for traceback, stat in old_group.items():
        stat = StatisticDiff(traceback, 0, -stat.size, 0, -stat.count)
        statistics.append(stat)
    return statistics


@total_ordering
class Frame:
    """
    Frame of a traceback.

    ``function`` is the function's name when memhound knows it, else None;
    it is not part of equality, hashing or repr (same as tracemalloc).

    >>> f = Frame(("a.py", 3, "main"))
    >>> f, f.function
    (<Frame filename='a.py' lineno=3>, 'main')
    """
    __slots__ = ("_frame", "_function")

    def __init__(self, frame, function=None):
        # frame is a tuple: (filename: str, lineno: int[, function: str])
        if len(frame) == 3:
            function = frame[2]
            frame = (frame[0], frame[1])
        self._frame = frame
        self._function = function

    @property
    def filename(self):
        return self._frame[0]

    @property
    def lineno(self):
        return self._frame[1]

    @property
    def function(self):
        return self._function

    def __eq__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return (self._frame == other._frame)

    def __lt__(self, other):
        if not isinstance(other, Frame):
            return NotImplemented
        return (self._frame < other._frame)

    def __hash__(self):
        return hash(self._frame)

    def __str__(self):
        return "%s:%s" % (self.filename, self.lineno)

    def __repr__(self):
        return "<Frame filename=%r lineno=%r>" % (self.filename, self.lineno)


@total_ordering
class Traceback(Sequence):
    """
    Sequence of Frame instances sorted from the oldest frame
    to the most recent frame.

    ``frames`` is given most recent first, like tracemalloc; ``functions``
    (optional, memhound extension) gives their function names in the same
    order.

    >>> tb = Traceback((("b.py", 4), ("a.py", 2)), 2)
    >>> tb
    <Traceback (<Frame filename='a.py' lineno=2>, <Frame filename='b.py' lineno=4>) total_nframe=2>
    >>> str(tb)
    'a.py:2'
    """
    __slots__ = ("_frames", "_total_nframe", "_functions")

    def __init__(self, frames, total_nframe=None, functions=None):
        Sequence.__init__(self)
        # frames is a tuple of frame tuples: see Frame constructor for the
        # format of a frame tuple; it is reversed, because _tracemalloc
        # returns frames sorted from most recent to oldest, but the
        # Python API expects oldest to most recent
        self._frames = tuple(reversed(frames))
        self._total_nframe = total_nframe
        self._functions = None if functions is None else tuple(reversed(functions))

    @classmethod
    def _new(cls, frames_oldest_first, functions_oldest_first, total_nframe=None):
        tb = object.__new__(cls)
        tb._frames = frames_oldest_first
        tb._total_nframe = total_nframe
        tb._functions = functions_oldest_first
        return tb

    @property
    def total_nframe(self):
        return self._total_nframe

    def __len__(self):
        return len(self._frames)

    def __getitem__(self, index):
        functions = self._functions
        if isinstance(index, slice):
            if functions is None:
                return tuple(Frame(trace) for trace in self._frames[index])
            return tuple(Frame(trace, fn)
                         for trace, fn in zip(self._frames[index], functions[index]))
        else:
            return Frame(self._frames[index],
                         None if functions is None else functions[index])

    def __contains__(self, frame):
        return frame._frame in self._frames

    def __hash__(self):
        return hash(self._frames)

    def __eq__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return (self._frames == other._frames)

    def __lt__(self, other):
        if not isinstance(other, Traceback):
            return NotImplemented
        return (self._frames < other._frames)

    def __str__(self):
        return str(self[0])

    def __repr__(self):
        s = f"<Traceback {tuple(self)}"
        if self._total_nframe is None:
            s += ">"
        else:
            s += f" total_nframe={self.total_nframe}>"
        return s

    def format(self, limit=None, most_recent_first=False):
        """Lines like the interpreter's tracebacks, oldest frame first.

        >>> Traceback((("nowhere.py", 1),)).format()
        ['  File "nowhere.py", line 1']
        """
        lines = []
        if limit is not None:
            if limit > 0:
                frame_slice = self[-limit:]
            else:
                frame_slice = self[:limit]
        else:
            frame_slice = self

        if most_recent_first:
            frame_slice = reversed(frame_slice)
        for frame in frame_slice:
            lines.append('  File "%s", line %s'
                         % (frame.filename, frame.lineno))
            line = linecache.getline(frame.filename, frame.lineno).strip()
            if line:
                lines.append('    %s' % line)
        return lines


def get_object_traceback(obj):
    """
    Get the traceback where the Python object *obj* was allocated.
    Return a Traceback instance.

    Return None if the tracemalloc module is not tracing memory allocations or
    did not trace the allocation of the object.

    >>> import memhound
    >>> memhound.start()
    >>> data = bytearray(100)
    >>> memhound.get_object_traceback(data)[-1].filename
    '<doctest memhound.tracing.get_object_traceback[2]>'
    >>> memhound.stop()
    """
    frames = _get_object_traceback(obj)
    if frames is not None:
        with _paused:
            return Traceback(frames)
    else:
        return None


class Trace:
    """
    Trace of a memory block.

    >>> t = Trace((0, 48, (("a.py", 7),), 1))
    >>> t
    <Trace domain=0 size=48 B, traceback=<Traceback (<Frame filename='a.py' lineno=7>,) total_nframe=1>>
    """
    __slots__ = ("_trace", "_functions")

    def __init__(self, trace, functions=None):
        # trace is a tuple: (domain: int, size: int, traceback: tuple).
        # See Traceback constructor for the format of the traceback tuple.
        self._trace = trace
        self._functions = functions

    @property
    def domain(self):
        return self._trace[0]

    @property
    def size(self):
        return self._trace[1]

    @property
    def traceback(self):
        tb = Traceback(*self._trace[2:])
        if self._functions is not None:
            tb._functions = tuple(reversed(self._functions))
        return tb

    def __eq__(self, other):
        if not isinstance(other, Trace):
            return NotImplemented
        return (self._trace == other._trace)

    def __hash__(self):
        return hash(self._trace)

    def __str__(self):
        return "%s: %s" % (self.traceback, _format_size(self.size, False))

    def __repr__(self):
        return ("<Trace domain=%s size=%s, traceback=%r>"
                % (self.domain, _format_size(self.size, False), self.traceback))


class _Traces(Sequence):
    """Lazy sequence of Trace over a SnapshotData: Trace objects are made
    on access, never for the whole snapshot."""

    def __init__(self, traces):
        Sequence.__init__(self)
        if not isinstance(traces, _SnapshotData):
            # tracemalloc's raw format: [(domain, size, frames, total_nframe), ...]
            with _paused:
                traces = _SnapshotData(traces, 0)
        self._data = traces

    @property
    def _traces(self):
        # tracemalloc code reads the raw list; built on demand.
        with _paused:
            return self._data.to_raw()

    def _trace(self, index):
        data = self._data
        return Trace(data.trace(index), data.functions(index))

    def __len__(self):
        return len(self._data)

    def __getitem__(self, index):
        with _paused:
            if isinstance(index, slice):
                return tuple(self._trace(i) for i in range(*index.indices(len(self._data))))
            return self._trace(index)

    def __iter__(self):
        for i in range(len(self._data)):
            with _paused:
                trace = self._trace(i)
            yield trace

    def __contains__(self, trace):
        if not isinstance(trace, Trace):
            return False
        return trace._trace in self._traces

    def __eq__(self, other):
        if not isinstance(other, _Traces):
            return NotImplemented
        return self._data is other._data or self._data.equals(other._data)

    __hash__ = None

    def __reduce__(self):
        # Picklable (e.g. for multiprocessing) in tracemalloc's raw format;
        # Snapshot.dump() is the compact, safe way to store a snapshot.
        rate = self._data.sample_every
        if rate:
            with _paused:
                return (_sampled_traces, (self._data.to_raw(True), rate))
        return (_Traces, (self._traces,))

    def __repr__(self):
        return "<Traces len=%s>" % len(self)


def _sampled_traces(recorded, sample_every):
    # Unpickling a sampled snapshot: the recorded sizes and the rate.
    with _paused:
        return _Traces(_SnapshotData(recorded, 0, sample_every))


def _normalize_filename(filename):
    filename = os.path.normcase(filename)
    if filename.endswith('.pyc'):
        filename = filename[:-1]
    return filename


class BaseFilter:
    """Base of Filter and DomainFilter: ``inclusive`` keeps (True) or drops
    (False) the traces the filter matches.

    >>> [isinstance(f, BaseFilter) for f in (Filter(True, "a.py"), DomainFilter(False, 0))]
    [True, True]
    """

    def __init__(self, inclusive):
        self.inclusive = inclusive

    def _match(self, trace):
        raise NotImplementedError


class Filter(BaseFilter):
    """Filter traces by filename pattern (fnmatch), line number and domain.

    >>> snap = Snapshot([(0, 8, (("a.py", 1),), 1), (0, 8, (("b.py", 2),), 1)], 1)
    >>> len(snap.filter_traces([Filter(False, "b.py")]).traces)
    1
    """

    def __init__(self, inclusive, filename_pattern,
                 lineno=None, all_frames=False, domain=None):
        super().__init__(inclusive)
        self.inclusive = inclusive
        self._filename_pattern = _normalize_filename(filename_pattern)
        self.lineno = lineno
        self.all_frames = all_frames
        self.domain = domain

    @property
    def filename_pattern(self):
        return self._filename_pattern

    def _match_frame_impl(self, filename, lineno):
        filename = _normalize_filename(filename)
        if not fnmatch.fnmatch(filename, self._filename_pattern):
            return False
        if self.lineno is None:
            return True
        else:
            return (lineno == self.lineno)

    def _match_frame(self, filename, lineno):
        return self._match_frame_impl(filename, lineno) ^ (not self.inclusive)

    def _match_traceback(self, traceback):
        if self.all_frames:
            if any(self._match_frame_impl(filename, lineno)
                   for filename, lineno in traceback):
                return self.inclusive
            else:
                return (not self.inclusive)
        else:
            filename, lineno = traceback[0]
            return self._match_frame(filename, lineno)

    def _match(self, trace):
        domain, size, traceback, total_nframe = trace
        res = self._match_traceback(traceback)
        if self.domain is not None:
            if self.inclusive:
                return res and (domain == self.domain)
            else:
                return res or (domain != self.domain)
        return res


class DomainFilter(BaseFilter):
    """Filter traces by address space (domain).

    >>> snap = Snapshot([(0, 8, (("a.py", 1),), 1), (5, 8, (("a.py", 1),), 1)], 1)
    >>> len(snap.filter_traces([DomainFilter(True, 5)]).traces)
    1
    """

    def __init__(self, inclusive, domain):
        super().__init__(inclusive)
        self._domain = domain

    @property
    def domain(self):
        return self._domain

    def _match(self, trace):
        domain, size, traceback, total_nframe = trace
        return (domain == self.domain) ^ (not self.inclusive)


def _stdlib_class(name):
    mod = sys.modules.get('tracemalloc')
    return getattr(mod, name, None) if mod is not None else None


def _filter_spec(trace_filter):
    """The C form of a Filter/DomainFilter (also stdlib's), or None when the
    filter must run in Python (subclass or unusual attribute types)."""
    cls = type(trace_filter)
    if cls is Filter or (cls is _stdlib_class('Filter') and cls is not None):
        lineno, domain = trace_filter.lineno, trace_filter.domain
        pattern = trace_filter._filename_pattern
        if (type(pattern) is str and (lineno is None or type(lineno) is int)
                and (domain is None or type(domain) is int)):
            # Same re.error as tracemalloc for a broken pattern.
            fnmatch._compile_pattern(pattern)
            return (False, bool(trace_filter.inclusive), pattern, lineno,
                    bool(trace_filter.all_frames), domain)
    elif cls is DomainFilter or (cls is _stdlib_class('DomainFilter') and cls is not None):
        domain = trace_filter.domain
        if domain is None or type(domain) is int:
            return (True, bool(trace_filter.inclusive), None, None, False, domain)
    return None


def _snapshot_data(snapshot):
    """SnapshotData of a memhound Snapshot, or of a stdlib one (converted)."""
    if isinstance(snapshot, Snapshot):
        return snapshot.traces._data
    traces = getattr(getattr(snapshot, 'traces', None), '_traces', None)
    if traces is None:
        raise TypeError("expected a Snapshot, not %s" % type(snapshot).__name__)
    with _paused:
        return _SnapshotData(traces, 0)


class Snapshot:
    """
    Snapshot of traces of memory blocks allocated by Python.

    Build one from tracemalloc-style raw traces, from a stdlib snapshot, or
    with take_snapshot():

    >>> snap = Snapshot([(0, 100, (("a.py", 2), ("b.py", 9)), 2)], 2)
    >>> [str(s) for s in snap.statistics("filename")]
    ['a.py:0: size=100 B, count=1, average=100 B']
    """

    def __init__(self, traces, traceback_limit):
        # traces is a tuple of trace tuples: see _Traces constructor for
        # the exact format (or a memhound._core.SnapshotData)
        self.traces = _Traces(traces)
        self.traceback_limit = traceback_limit
        self.metadata = {}

    @property
    def sample_every(self):
        """The sampling rate in bytes the snapshot was taken with, 0 when
        every allocation was traced.  When it is not 0, the sizes and counts
        the snapshot reports (``traces``, ``statistics()``,
        ``compare_to()``) are estimates.

        >>> Snapshot([(0, 8, (("a.py", 1),), 1)], 1).sample_every
        0
        """
        return self.traces._data.sample_every

    @classmethod
    def from_tracemalloc(cls, snapshot):
        """Convert a stdlib ``tracemalloc.Snapshot``.

        >>> import tracemalloc as std
        >>> std_snap = std.Snapshot([(0, 8, (("a.py", 1),), 1)], 1)
        >>> len(Snapshot.from_tracemalloc(std_snap).traces)
        1
        """
        traces = getattr(getattr(snapshot, 'traces', None), '_traces', None)
        if traces is None:
            raise TypeError("expected a tracemalloc.Snapshot, not %s"
                            % type(snapshot).__name__)
        return cls(traces, snapshot.traceback_limit)

    def _metadata_json(self):
        blob = {"metadata": self.metadata}
        extra = {k: v for k, v in vars(self).items()
                 if k not in ('traces', 'traceback_limit', 'metadata')}
        if extra:
            blob["attributes"] = extra
        return json.dumps(blob)

    def dump(self, filename):
        """
        Write the snapshot into a file (memhound's binary format, see
        docs/snapshot-format.md; ``metadata`` and extra JSON-able attributes
        are saved too).

        >>> snap = Snapshot([(0, 8, (("a.py", 1),), 1)], 1)
        >>> snap.dump("/tmp/example.mhsnap")
        """
        with _paused:
            text = self._metadata_json()
            limit = self.traceback_limit if type(self.traceback_limit) is int else 0
            self.traces._data.dump(filename, text, limit)

    @classmethod
    def load(cls, filename):
        """
        Load a snapshot from a file written by dump().  A truncated,
        corrupted or foreign file raises ValueError naming the problem.

        >>> Snapshot([(0, 8, (("a.py", 1),), 1)], 1).dump("/tmp/example.mhsnap")
        >>> Snapshot.load("/tmp/example.mhsnap").traces[0].size
        8
        """
        with _paused:
            data, text = _SnapshotData.load(filename)
            snapshot = cls(data, data.traceback_limit)
            if text is not None:
                try:
                    blob = json.loads(text)
                except ValueError as exc:
                    raise ValueError("memhound snapshot file %r: metadata section: "
                                     "invalid JSON (%s)" % (str(filename), exc)) from None
                if not isinstance(blob, dict):
                    raise ValueError("memhound snapshot file %r: metadata section: "
                                     "expected a JSON object" % (str(filename),))
                metadata = blob.get("metadata", {})
                snapshot.metadata = metadata if isinstance(metadata, dict) else {}
                attributes = blob.get("attributes", {})
                if isinstance(attributes, dict):
                    for name, value in attributes.items():
                        # Only plain user attributes: a file must not be able
                        # to replace the snapshot's own data or methods.
                        if (isinstance(name, str) and name.isidentifier()
                                and not name.startswith("_") and not hasattr(cls, name)
                                and name not in ("traces", "traceback_limit", "metadata")):
                            setattr(snapshot, name, value)
            return snapshot

    def _filter_trace(self, include_filters, exclude_filters, trace):
        if include_filters:
            if not any(trace_filter._match(trace)
                       for trace_filter in include_filters):
                return False
        if exclude_filters:
            if any(not trace_filter._match(trace)
                   for trace_filter in exclude_filters):
                return False
        return True

    def filter_traces(self, filters):
        """
        Create a new Snapshot instance with a filtered traces sequence, filters
        is a list of Filter or DomainFilter instances.  If filters is an empty
        list, return a new Snapshot instance with a copy of the traces.

        >>> snap = Snapshot([(0, 8, (("a.py", 1),), 1), (1, 8, (("b.py", 2),), 1)], 1)
        >>> len(snap.filter_traces([Filter(True, "a*")]).traces)
        1
        """
        if not isinstance(filters, Iterable):
            raise TypeError("filters must be a list of filters, not %s"
                            % type(filters).__name__)
        data = self.traces._data
        with _paused:
            if filters:
                filters = list(filters)
                specs = [_filter_spec(f) for f in filters]
                if None not in specs:
                    return Snapshot(data.filter(specs), self.traceback_limit)
                # A filter of another kind: tracemalloc's own loop.
                include_filters = []
                exclude_filters = []
                for trace_filter in filters:
                    if trace_filter.inclusive:
                        include_filters.append(trace_filter)
                    else:
                        exclude_filters.append(trace_filter)
                # Filters see the estimated sizes; the new snapshot keeps
                # the recorded ones and the rate.
                rate = data.sample_every
                recorded = data.to_raw(True) if rate else None
                new_traces = [recorded[i] if rate else trace
                              for i, trace in enumerate(data.to_raw())
                              if self._filter_trace(include_filters,
                                                    exclude_filters,
                                                    trace)]
                if rate:
                    new_traces = _SnapshotData(new_traces, 0, rate)
                return Snapshot(new_traces, self.traceback_limit)
            return Snapshot(data.filter(()), self.traceback_limit)

    def _check_key(self, key_type, cumulative):
        if key_type not in ('traceback', 'filename', 'lineno'):
            raise ValueError("unknown key_type: %r" % (key_type,))
        if cumulative and key_type not in ('lineno', 'filename'):
            raise ValueError("cumulative mode cannot by used "
                             "with key type %r" % key_type)
        return _KEY_TYPES.index(key_type)

    def statistics(self, key_type, cumulative=False):
        """
        Group statistics by key_type. Return a sorted list of Statistic
        instances.

        >>> snap = Snapshot([(0, 10, (("a.py", 1),), 1), (0, 30, (("b.py", 5),), 1)], 1)
        >>> [str(s) for s in snap.statistics("lineno")]
        ['b.py:5: size=30 B, count=1, average=30 B', 'a.py:1: size=10 B, count=1, average=10 B']
        """
        mode = self._check_key(key_type, cumulative)
        new_tb = Traceback._new
        with _paused:
            rows = self.traces._data.statistics(mode, bool(cumulative))
            return [Statistic(new_tb(frames, functions), size, count)
                    for frames, functions, size, count in rows]

    def compare_to(self, old_snapshot, key_type, cumulative=False):
        """
        Compute the differences with an old snapshot old_snapshot. Get
        statistics as a sorted list of StatisticDiff instances, grouped by
        group_by.

        >>> old = Snapshot([(0, 10, (("a.py", 1),), 1)], 1)
        >>> new = Snapshot([(0, 10, (("a.py", 1),), 1), (0, 5, (("a.py", 1),), 1)], 1)
        >>> [str(s) for s in new.compare_to(old, "lineno")]
        ['a.py:1: size=15 B (+5 B), count=2 (+1), average=8 B']
        """
        mode = self._check_key(key_type, cumulative)
        new_tb = Traceback._new
        with _paused:
            old = _snapshot_data(old_snapshot)
            rows = self.traces._data.compare_to(old, mode, bool(cumulative))
            return [StatisticDiff(new_tb(frames, functions), size, size_diff, count, count_diff)
                    for frames, functions, size, size_diff, count, count_diff in rows]


def _get_traces():
    """All live traces in tracemalloc's raw format:
    ``[(domain, size, ((filename, lineno), ...), total_nframe), ...]``.

    >>> import memhound
    >>> memhound.start()
    >>> keep = [bytearray(100) for _ in range(3)]
    >>> domain, size, frames, total_nframe = memhound._get_traces()[0]
    >>> memhound.stop()

    Not tracing: an empty list, like tracemalloc (take_snapshot() raises).

    >>> memhound._get_traces()
    []
    """
    try:
        data = _core.take_snapshot()
    except RuntimeError:
        if not _core.is_tracing():
            return []
        raise
    with _paused:
        return data.to_raw()


_originals = {'is_tracing': is_tracing, '_get_traces': _get_traces,
              'get_traceback_limit': get_traceback_limit}


def _compat_global(name):
    # Code written for tracemalloc (and CPython's own tests) patches
    # tracemalloc.is_tracing & co.; with `import memhound as tracemalloc`
    # that patches the package, so honour a replacement found there.
    pkg = sys.modules.get(__package__)
    value = getattr(pkg, name, None) if pkg is not None else None
    if value is not None and value is not _originals[name]:
        return value
    return globals()[name]


def take_snapshot():
    """
    Take a snapshot of traces of memory blocks allocated by Python.

    >>> import memhound
    >>> memhound.start()
    >>> keep = [bytearray(1000) for _ in range(50)]
    >>> top = memhound.take_snapshot().statistics("lineno")[0]
    >>> memhound.stop()
    >>> top.size >= 50 * 1000, top.traceback[0].filename
    (True, '<doctest memhound.tracing.take_snapshot[2]>')
    """
    if not _compat_global('is_tracing')():
        raise RuntimeError("the tracemalloc module must be tracing memory "
                           "allocations to take a snapshot")
    get_traces = _compat_global('_get_traces')
    if get_traces is _originals['_get_traces']:
        data = _core.take_snapshot()
        with _paused:
            return Snapshot(data, data.traceback_limit)
    traces = get_traces()
    traceback_limit = _compat_global('get_traceback_limit')()
    with _paused:
        return Snapshot(traces, traceback_limit)
