"""Snapshots as pprof profiles (gzip-compressed profile.proto), the format
that continuous-profiling systems (Pyroscope, Parca, Datadog) and
``go tool pprof`` read.

The profile is encoded by memhound's engine (``_core.pprof_encode``) from
the snapshot's tables; this module adds the time, the sampling period, the
comments and the compression.  Sample types are ``inuse_objects/count`` and
``inuse_space/bytes`` (the default); memhound records live memory only, so
there are no ``alloc_*`` values.

>>> import gzip, memhound
>>> snap = memhound.Snapshot([(0, 4096, (("app.py", 12, "load"),), 1)], 1)
>>> gzip.decompress(dumps(snap))[:2]      # field 1 (sample_type), a message
b'\\n\\x04'
"""
import gzip
import os
import tempfile
import time

from .. import __version__, tracing
from . import _aggregate as agg
from ._source import metadata


def _time_nanos(snapshot):
    meta = metadata(snapshot).get("memhound")
    wall = meta.get("wall_time") if isinstance(meta, dict) else None
    if not isinstance(wall, (int, float)) or isinstance(wall, bool):
        wall = time.time()
    return int(wall * 1e9)


def profile(snapshot, time_nanos=None):
    """The uncompressed profile.proto of a snapshot, as bytes.

    ``time_nanos`` defaults to the snapshot's wall time when ``memhound
    run`` wrote it, else now.  Values of a sampled snapshot are estimates:
    the profile's period is the sampling rate and a comment says so.

    >>> import memhound
    >>> snap = memhound.Snapshot([(0, 64, (("a.py", 3, "f"),), 1)], 1)
    >>> b"inuse_space" in profile(snap, time_nanos=0)
    True
    """
    data = getattr(getattr(snapshot, "traces", None), "_data", None)
    if data is None:                       # a stdlib tracemalloc.Snapshot
        snapshot = tracing.Snapshot.from_tracemalloc(snapshot)
        data = snapshot.traces._data
    rate = snapshot.sample_every
    comments = [f"memhound {__version__}: live memory by allocation site"]
    if rate:
        comments.append(f"values are estimates: allocations sampled about every {rate} bytes "
                        f"and weighted")
    meta = metadata(snapshot).get("memhound")
    strip = None
    if isinstance(meta, dict) and "argv" in meta:       # written by memhound run
        launcher = agg.LAUNCHER_FRAMES
        strip = (tuple(launcher.files), tuple(launcher.then_files), launcher.depth)
    if time_nanos is None:
        time_nanos = _time_nanos(snapshot)
    with tracing.pause_tracing():
        return tracing._core.pprof_encode(data, int(time_nanos), rate or 1, tuple(comments),
                                          strip)


def dumps(snapshot, time_nanos=None):
    """The gzip-compressed profile (what pprof readers expect), as bytes.

    >>> import gzip, memhound
    >>> snap = memhound.Snapshot([(0, 64, (("a.py", 3, "f"),), 1)], 1)
    >>> gzip.decompress(dumps(snap, 0)) == profile(snap, 0)
    True
    """
    raw = profile(snapshot, time_nanos)
    with tracing.pause_tracing():
        # level 1: as small as level 6 on profiles (measured), several times faster
        return gzip.compress(raw, compresslevel=1, mtime=0)


def _umask():
    """The process's umask, read without changing it (os.umask() would, for
    a moment, for every thread)."""
    try:
        with open("/proc/self/status", encoding="ascii", errors="replace") as f:
            for line in f:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def write(snapshot, path):
    """Write the compressed profile to ``path``, replacing it atomically (a
    reader polling the file never sees half of it).

    >>> import memhound, os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "app.pb.gz")
    >>> write(memhound.Snapshot([(0, 64, (("a.py", 3, "f"),), 1)], 1), path)
    >>> open(path, "rb").read(2) == b"\\x1f\\x8b"
    True
    """
    blob = dumps(snapshot)
    with tracing.pause_tracing():
        directory = os.path.dirname(os.path.abspath(path))
        try:
            fd, tmp = tempfile.mkstemp(prefix=".memhound-", suffix=".tmp", dir=directory)
        except OSError as exc:          # name the file asked for, not the temporary one
            raise OSError(exc.errno, exc.strerror, path) from None
        try:
            os.fchmod(fd, 0o666 & ~_umask())    # mkstemp makes it 0600: as open() would
            with os.fdopen(fd, "wb") as fp:
                fp.write(blob)
            os.replace(tmp, path)
        except BaseException:
            try:
                os.unlink(tmp)
            except OSError:
                pass
            raise
