"""Exports of live memory by traceback for existing viewers.

- ``speedscope(snapshot)``: speedscope's JSON file format (a "sampled"
  profile whose weights are bytes), openable in speedscope offline.
- ``collapsed(snapshot)``: Brendan Gregg's collapsed stacks, one line per
  distinct traceback, ``root;...;leaf BYTES`` (flamegraph.pl, inferno).
"""
import json

from .. import __version__
from ._aggregate import frame_key, stacks


def frame_name(frame):
    """``function (file:line)``, or ``file:line`` when the function is unknown.

    >>> frame_name(("app.py", 12, "load")), frame_name(("app.py", 12, None))
    ('load (app.py:12)', 'app.py:12')
    """
    filename, lineno, function = frame
    where = f"{filename}:{lineno}"
    return f"{function} ({where})" if function else where


def collapsed(snapshot):
    """Collapsed stacks text, biggest stacks first.

    >>> import memhound
    >>> snapshot = memhound.Snapshot([(0, 1048576, (("app.py", 12, "load"), ("app.py", 30, "main")), 2),
    ...                               (0, 64, (("app.py", 5),), 1)], 16)
    >>> print(collapsed(snapshot), end="")
    main (app.py:30);load (app.py:12) 1048576
    app.py:5 64
    """
    lines = []
    for frames, functions, size, _count in stacks(snapshot):
        functions = functions or (None,) * len(frames)
        names = [frame_name(frame_key(f, fn)).replace(";", ":") for f, fn in zip(frames, functions)]
        lines.append(f"{';'.join(names)} {size}\n")
    return "".join(lines)


def speedscope(snapshot, name="memhound"):
    """speedscope JSON text (one sampled profile, unit bytes).

    >>> import memhound
    >>> snapshot = memhound.Snapshot([(0, 1048576, (("app.py", 12, "load"), ("app.py", 30, "main")), 2)], 16)
    >>> data = json.loads(speedscope(snapshot))
    >>> data["profiles"][0]["unit"], data["profiles"][0]["weights"]
    ('bytes', [1048576])
    >>> [frame["name"] for frame in data["shared"]["frames"]]
    ['main', 'load']
    """
    frame_ids = {}
    shared = []
    samples = []
    weights = []
    for frames, functions, size, _count in stacks(snapshot):
        functions = functions or (None,) * len(frames)
        sample = []
        for raw, function in zip(frames, functions):
            fid = frame_ids.get(raw)
            if fid is None:
                fid = frame_ids[raw] = len(shared)
                f = frame_key(raw, function)
                entry = {"name": f[2] or f"{f[0]}:{f[1]}", "file": f[0], "line": f[1]}
                shared.append(entry)
            sample.append(fid)
        samples.append(sample)
        weights.append(size)
    total = sum(weights)
    doc = {
        "$schema": "https://www.speedscope.app/file-format-schema.json",
        "exporter": f"memhound {__version__}",
        "name": name,
        "activeProfileIndex": 0,
        "shared": {"frames": shared},
        "profiles": [{"type": "sampled", "name": f"{name}: live memory", "unit": "bytes",
                      "startValue": 0, "endValue": total, "samples": samples, "weights": weights}],
    }
    return json.dumps(doc, separators=(",", ":"))
