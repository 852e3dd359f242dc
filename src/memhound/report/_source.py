"""Where the CLI and the reports get their snapshots from: memhound's own
snapshot files and stdlib ``tracemalloc`` dumps (converted on load).
"""
import os
import pickle
import tracemalloc

from .. import tracing


class SnapshotError(Exception):
    """A snapshot file that cannot be read; the message names file and cause."""


def load_snapshot(path):
    """Load a snapshot file written by memhound (or by stdlib ``tracemalloc``).

    >>> import os, tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "app.snap")
    >>> tracing.Snapshot([(0, 4096, (("app.py", 3),), 1)], 1).dump(path)
    >>> load_snapshot(path).statistics("lineno")[0].size
    4096

    Raises SnapshotError with a one-line message for a missing, foreign or
    corrupted file.  Stdlib ``tracemalloc`` dumps are pickles: they are read
    with an unpickler that only builds tracemalloc's own classes, so a foreign
    pickle cannot run code.
    """
    if not os.path.exists(path):
        raise SnapshotError(f"{path}: no such file")
    if os.path.isdir(path):
        raise SnapshotError(f"{path}: is a directory, not a snapshot file")
    try:
        with open(path, "rb") as fp:
            head = fp.read(2)
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror or exc}") from None
    if not head:
        raise SnapshotError(f"{path}: empty file, not a snapshot")
    if head[:1] == b"\x80":            # pickle protocol 2+: a stdlib dump
        snap = _load_stdlib(path)
        meta = getattr(snap, "metadata", None)
        snap = tracing.Snapshot.from_tracemalloc(snap)
        if isinstance(meta, dict):
            snap.metadata = meta
        return snap
    try:
        snap = tracing.Snapshot.load(path)
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror or exc}") from None
    except Exception as exc:            # foreign or corrupted: the loader says why
        text = _one_line(exc)
        if repr(path) not in text and path not in text:
            text = f"{path}: cannot read snapshot: {text}"
        raise SnapshotError(text) from None
    return snap


class _TracemallocUnpickler(pickle.Unpickler):
    _allowed = {("tracemalloc", "Snapshot"), ("tracemalloc", "_Traces"),
                ("tracemalloc", "Traceback"), ("tracemalloc", "Frame"),
                ("builtins", "dict"), ("builtins", "list"), ("builtins", "tuple"),
                ("builtins", "set"), ("builtins", "frozenset")}

    def find_class(self, module, name):
        if (module, name) not in self._allowed:
            raise pickle.UnpicklingError(f"contains {module}.{name}, not a snapshot")
        return super().find_class(module, name)


def _load_stdlib(path):
    try:
        with open(path, "rb") as fp:
            snap = _TracemallocUnpickler(fp).load()
    except OSError as exc:
        raise SnapshotError(f"{path}: {exc.strerror or exc}") from None
    except Exception as exc:
        raise SnapshotError(f"{path}: corrupted or foreign snapshot file ({_one_line(exc)})") from None
    if not isinstance(snap, tracemalloc.Snapshot):
        raise SnapshotError(f"{path}: contains a {type(snap).__name__}, not a snapshot")
    return snap


def _one_line(exc):
    text = str(exc).strip().splitlines()
    text = text[0] if text else type(exc).__name__
    return text


def metadata(snapshot):
    """The snapshot's metadata dict ({} when the format has none).

    >>> import tracemalloc; metadata(tracemalloc.Snapshot((), 1))
    {}
    """
    meta = getattr(snapshot, "metadata", None)
    return meta if isinstance(meta, dict) else {}


def frame_function(frame):
    """The function name of a Frame, or None (stdlib frames have none).

    >>> import tracemalloc; frame_function(tracemalloc.Frame(("a.py", 1))) is None
    True
    """
    return getattr(frame, "function", None)


