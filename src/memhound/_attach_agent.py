"""The side of ``memhound attach`` that runs inside the target process.

``memhound attach PID`` writes a request (``request.json``) and a small
script into a private directory and has the target run the script at its
next safe point (``sys.remote_exec``, PEP 768).  The script imports this
module and calls ``handle(directory)``, which runs the request and writes
``result.json`` -- first under a temporary name, then renamed, so the
attaching side never reads half a result.  Every failure is written as a
result; nothing here may raise into the target.  The only thread is the
watcher of ``--watch`` ("memhound-watch"), which ends after the last
interval, at ``watch-end`` or at ``detach``; nothing else stays behind but
this module's small state.

memhound's own work is untraced (``pause_tracing``) and its frames are not
roots of the heap graph (``_OWN_DIR``).  Everything the commands use is
imported here, before any census, so that memhound's own modules are old
objects and never survivors.

Example (in-process, as the target would)::

    >>> import json, os, tempfile
    >>> d = tempfile.mkdtemp()
    >>> with open(os.path.join(d, "request.json"), "w") as f:
    ...     json.dump({"command": "state"}, f)
    >>> handle(d)
    >>> with open(os.path.join(d, "result.json")) as f:
    ...     json.load(f)["ok"]
    True
"""
import gc
import json
import os
import shutil
import sys
import threading
import time

from . import _core, tracing
from .leaks import LeakReport, _clear_caches
from .leaks._bounds import _SIZED
from .leaks._grouping import _groups
from .leaks._report import _OWN_DIR, _path_text, _type_name

__all__ = ["handle", "census"]

# The watcher thread of --watch and its stop event, and whether attach
# started the tracing.
_state = {"thread": None, "stop": None, "started": False}


def _result(directory, data, name="result.json"):
    # Plain file descriptors: no io objects are made in the target.
    path = os.path.join(directory, name)
    tmp = path + ".tmp"
    blob = json.dumps(data).encode("utf-8")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    try:
        view = memoryview(blob)
        while view:
            view = view[os.write(fd, view):]
    finally:
        os.close(fd)
    os.replace(tmp, path)


def _read_request(directory):
    fd = os.open(os.path.join(directory, "request.json"), os.O_RDONLY)
    try:
        chunks = []
        while True:
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
    finally:
        os.close(fd)
    return json.loads(b"".join(chunks).decode("utf-8"))


def _describe():
    return {"pid": os.getpid(), "executable": sys.executable,
            "version": "%d.%d.%d" % sys.version_info[:3],
            "tracing": _core.is_tracing(),
            "frames": _core.get_traceback_limit() if _core.is_tracing() else 0,
            "threads": sorted(t.name for t in threading.enumerate()),
            "watching": _state["thread"] is not None and _state["thread"].is_alive()}


def handle(directory, deadline=None):
    """Run the request in ``directory`` and write its result there; after
    ``deadline`` (``time.time()``) the attaching side has given up: remove
    the directory and do nothing else.

    Example::

        >>> import json, os, tempfile
        >>> d = tempfile.mkdtemp()
        >>> with open(os.path.join(d, "request.json"), "w") as f:
        ...     json.dump({"command": "census", "types": 3, "holders": 1}, f)
        >>> handle(d)
        >>> with open(os.path.join(d, "result.json")) as f:
        ...     len(json.load(f)["census"]["types"])
        3
    """
    with tracing.pause_tracing():
        if deadline is not None and time.time() > deadline:
            shutil.rmtree(directory, ignore_errors=True)
            return
        try:
            request = _read_request(directory)
            data = _COMMANDS[request["command"]](directory, request)
            data.setdefault("ok", True)
            data["target"] = _describe()
        except Exception as exc:  # the target must never see it
            data = {"ok": False, "error": "agent",
                    "message": "%s: %s" % (type(exc).__name__, exc)}
        try:
            _result(directory, data)
        except Exception as exc:
            try:        # e.g. a value json cannot write: say so, briefly
                _result(directory, {"ok": False, "error": "agent",
                                    "message": "no result written: %s: %s"
                                               % (type(exc).__name__, exc)})
            except Exception:
                pass    # the attaching side reports the timeout; nothing to tell here


def census(types=25, holders=10, collect=True):
    """The live heap now: objects by type and the biggest holders with their
    paths from named roots, as a JSON-able dict (the heap graph, in C).

    Example::

        >>> _kept = [bytearray(10) for _ in range(2000)]
        >>> c = census(types=5, holders=3)
        >>> any(h["contents"][0]["type"] == "bytearray" and h["count"] >= 2000 for h in c["holders"])
        True
    """
    t0 = time.perf_counter()
    if collect:
        gc.collect()
    t1 = time.perf_counter()
    raw = _core.heap_census_report(_OWN_DIR, types, holders)
    out = {"objects": raw["objects"], "bytes": raw["bytes"], "gc_objects": raw["gc_objects"],
           "own_objects": raw["own_objects"], "own_bytes": raw["own_bytes"],
           "types_seen": raw["types_seen"],
           "types": [{"type": _type_name(tp), "count": c, "bytes": b} for tp, c, b in raw["types"]],
           "holders": [], "stats": raw["stats"]}
    for h in raw["holders"]:
        name = _type_name(h["type"])
        path = [(k, lab, t) for k, lab, t, _s in h["path"]]
        out["holders"].append({
            "type": name, "count": h["count"], "bytes": h["bytes"], "keeps": h["keeps"],
            "contents": [{"type": _type_name(tp), "count": c, "bytes": b}
                         for tp, c, b in h["contents"]],
            "path": [{"kind": k, "label": lab, "type": t} for k, lab, t in path],
            "path_text": _path_text(h["path"], name)})
    out["stats"]["t_collect"] = t1 - t0
    out["stats"]["t_total"] = time.perf_counter() - t0
    return out


def _census(directory, request):
    return {"census": census(request.get("types", 25), request.get("holders", 10),
                             request.get("collect", True))}


def _start(directory, request):
    if _core.is_tracing():
        return {"ok": True, "note": "already tracing (%d frames)" % _core.get_traceback_limit()}
    _core.start(int(request.get("frames", tracing.LEAK_FRAMES)))
    _state["started"] = True
    return {}


def _stop(directory, request):
    if not _core.is_tracing():
        return {"ok": True, "note": "was not tracing"}
    _core.stop()
    _state["started"] = False
    return {}


def _take_snapshot():
    snap = tracing.take_snapshot()
    own = tracing.Filter(False, os.path.join(_OWN_DIR, "*"))
    snap = snap.filter_traces([own])
    current, peak = _core.get_traced_memory()
    snap.metadata = {"memhound": {"kind": "attach", "wall_time": time.time(), "pid": os.getpid(),
                                  "traced": [current, peak], "argv": list(sys.argv)}}
    return snap


def _snapshot(directory, request):
    if not _core.is_tracing():
        return {"ok": False, "error": "not-tracing"}
    path = os.path.join(directory, "snapshot.mhsnap")
    _take_snapshot().dump(path)
    return {"snapshot": path}


def _reading():
    return sys.getallocatedblocks(), len(gc.get_objects())


def _watch_begin(directory, request):
    """Start the watcher thread: the intervals run there, so that no
    request's own objects (each remote_exec compiles a script) fall into an
    interval, and the main thread is needed only to start and stop it."""
    _drop_watch()
    stop = threading.Event()
    thread = threading.Thread(target=_watch_loop, name="memhound-watch", daemon=True,
                              args=(directory, float(request["seconds"]), int(request["times"]),
                                    int(request.get("frames", tracing.LEAK_FRAMES)), stop))
    _state["stop"], _state["thread"] = stop, thread
    thread.start()
    return {}


def _watch_loop(directory, seconds, times, frames, stop):
    _core.suspend()     # the thread's own objects are memhound's
    census_obj = None
    n = 1
    try:
        snapshot, readings, t, census_obj = _interval_start()
        for n in range(1, times + 1):
            if stop.wait(seconds):
                return
            data = _interval_end(census_obj, snapshot, readings, t, frames)
            census_obj = None
            data["ok"] = True
            data["target"] = _describe()
            _result(directory, data, "result-%d.json" % n)
            del data
            if n < times:
                snapshot, readings, t, census_obj = _interval_start()
    except Exception as exc:  # reported to the attaching side, never raised in the target
        try:
            _result(directory, {"ok": False, "error": "agent",
                                "message": "%s: %s" % (type(exc).__name__, exc)},
                    "result-%d.json" % n)
        except Exception:
            pass
    finally:
        if census_obj is not None:
            census_obj.close()


def _interval_start():
    _clear_caches()
    # The snapshot first: taken after the census, it would be a survivor.
    snapshot = _take_snapshot() if _core.is_tracing() else None
    readings = _reading()
    t = time.monotonic()
    return snapshot, readings, t, _core.heap_census()


def _interval_end(census_obj, old_snapshot, readings, t, frames):
    try:
        _clear_caches()
        blocks, objects = _reading()
        seconds = time.monotonic() - t
        gc_was_enabled = gc.isenabled()
        gc.disable()
        try:
            groups, stats = _analyse(census_obj, frames)
        finally:
            if gc_was_enabled:
                gc.enable()
    finally:
        census_obj.close()
    deltas = {"blocks": [blocks - readings[0]], "objects": [objects - readings[1]], "bytes": []}
    grew = deltas["blocks"][0] >= 1 or deltas["objects"][0] >= 1
    report = LeakReport(grew and bool(groups), 0, 1, deltas, groups, stats)
    as_dict = report.to_dict()
    # The holder's size now: over the intervals, a holder that grows is a
    # leak, one whose entries are only replaced is not.
    for g, d in zip(groups, as_dict["groups"]):
        d["holder_len"] = _holder_len(g._holder)
        g._holder = None
    new_snapshot = _take_snapshot() if _core.is_tracing() else None
    return {"report": as_dict, "text": str(report), "seconds": seconds,
            "readings": [blocks, objects],
            "grown_lines": _grown_lines(old_snapshot, new_snapshot, 10)}


def _analyse(census_obj, frames):
    """The leak finder's analysis (leaks._analyse) of one interval, with the
    graph built by heap_graph_live(): in a live process other threads run
    between any two calls, and what they put on the interpreter's free lists
    must not be taken for orphans."""
    t0 = time.perf_counter()
    c0 = time.process_time()
    census_bytes = census_obj.nbytes
    graph = _core.heap_graph_live(census_obj, _OWN_DIR)
    census_obj.close()
    try:
        return _groups(graph, 1, frames, census_bytes, t0, c0)
    finally:
        graph.close()


def _holder_len(holder):
    """len() of a plain dict, list, set or deque through the builtin's own
    slot (no user __len__), else None."""
    for base in _SIZED:
        if isinstance(holder, base):
            return base.__len__(holder)
    return None


def _grown_lines(old, new, limit):
    if old is None or new is None:
        return []
    out = []
    for d in new.compare_to(old, "lineno")[:limit]:
        if d.size_diff <= 0 and d.count_diff <= 0:
            continue
        fr = d.traceback[0]
        out.append({"filename": fr.filename, "lineno": fr.lineno, "size_diff": d.size_diff,
                    "count_diff": d.count_diff, "size": d.size, "count": d.count})
    return out


def _drop_watch():
    stop, thread = _state["stop"], _state["thread"]
    _state["stop"] = _state["thread"] = None
    if stop is not None:
        stop.set()
    if thread is not None:
        thread.join()


def _detach(directory, request):
    _drop_watch()
    stopped = _core.is_tracing()
    if stopped:
        _core.stop()
    _state["started"] = False
    return {"stopped_tracing": stopped}


def _watch_end(directory, request):
    _drop_watch()
    return {}


def _state_cmd(directory, request):
    return {}


_COMMANDS = {"census": _census, "start": _start, "stop": _stop, "snapshot": _snapshot,
             "watch-begin": _watch_begin, "watch-end": _watch_end, "detach": _detach,
             "state": _state_cmd}
