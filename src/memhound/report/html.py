"""Self-contained HTML report: one file, inline CSS and JavaScript, no network.

The Python side aggregates (see ``_aggregate``): the page receives a pruned
call tree of at most ``MAX_NODES`` nodes, at most ``MAX_SITES`` table rows
and the timeline, as one JSON document; the flame graph is drawn on a single
canvas.  So the page costs the same for a snapshot of a thousand traces and
of ten million.  The templates live next to this file: report.html,
report.css, report.js.
"""
import datetime
import json
import os
import re
from importlib import resources

from .. import __version__
from . import _aggregate, _source
from ._source import SnapshotError
from .terminal import sampling_note

MAX_NODES = 20000
MAX_SITES = 1000


def _template(name):
    return resources.files(__package__).joinpath(name).read_text(encoding="utf-8")


def build_report(files, title=None):
    """Build the report data from snapshot files (in time order) and leak
    report JSON files (``memhound leaks --json``).

    >>> import memhound, os, tempfile
    >>> snap = memhound.Snapshot([(0, 4096, (("app.py", 12, "load"),), 1)], 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     snap.dump(os.path.join(tmp, "app.snap"))
    ...     report = build_report([os.path.join(tmp, "app.snap")], title="app")
    >>> report["title"], report["sites"]
    ('app', [['app.py', 12, 'load', 4096, 1]])
    """
    snapshots = []
    leaks = []
    for path in files:
        leak = _read_leak_json(path)
        if leak is not None:
            leaks.append((path, leak))
        else:
            snapshots.append((path, _source.load_snapshot(path)))
    default = snapshots[-1][0] if snapshots else files[-1]
    return report_from_snapshots(snapshots, title=title or os.path.basename(default), leaks=leaks)


def _read_leak_json(path):
    """The leak report dict if ``path`` holds one; None for other files."""
    try:
        with open(path, "rb") as fp:
            head = fp.read(1)
            if head not in (b"{", b" ", b"\n", b"\t", b"\r"):
                return None
            fp.seek(0)
            data = json.loads(fp.read().decode("utf-8"))
    except FileNotFoundError:
        raise SnapshotError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise SnapshotError(f"{path}: is a directory, not a snapshot file") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise SnapshotError(f"{path}: invalid JSON ({exc})") from None
    if not isinstance(data, dict) or "groups" not in data or not isinstance(data["groups"], list):
        raise SnapshotError(f"{path}: JSON file is not a leak report (no 'groups' list)")
    return data


def report_from_snapshots(snapshots, title="memhound report", leaks=()):
    """Report data from ``[(name, snapshot), ...]`` (time order; the flame
    graph and table show the last one) and ``[(name, leak_dict), ...]``.

    >>> import memhound
    >>> snap = memhound.Snapshot([(0, 64, (("app.py", 3),), 1)], 1)
    >>> report_from_snapshots([("app.snap", snap)])["sites"]
    [['app.py', 3, None, 64, 1]]
    """
    report = {"title": title, "version": __version__,
              "generated": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
              "files": [name for name, _ in snapshots] + [name for name, _ in leaks],
              "flame": None, "sites": [], "timeline": None,
              "leaks": [dict(data, name=name) for name, data in leaks]}
    if snapshots:
        name, last = snapshots[-1]
        tree = _aggregate.flame_tree(last, max_nodes=MAX_NODES)
        report["flame"] = tree
        report["sites"] = _sites_from_tree(tree)
        report["snapshot"] = name
        report["timeline"] = _timeline(snapshots)
        report["sampling"] = sampling_note(*(snap.sample_every
                                             for _, snap in snapshots))
    return report


def _sites_from_tree(tree):
    """Top sites by line (most recent frame), from the unpruned leaf sums
    kept by flame_tree."""
    sites = sorted(tree.pop("sites").items(), key=lambda kv: (-kv[1][0], -kv[1][1]))[:MAX_SITES]
    return [[f[0], f[1], f[2], size, count] for f, (size, count) in sites]


def _timeline(snapshots):
    """Points (t, current, peak) from the metadata ``run`` records, else one
    point per snapshot file; None when there is nothing to draw."""
    best = None
    for _name, snap in snapshots:
        meta = _source.metadata(snap).get("memhound") or {}
        points = meta.get("timeline") if isinstance(meta, dict) else None
        if isinstance(points, list) and len(points) >= 2 and (best is None or len(points) >= len(best)):
            best = points
    marks = []
    for index, (name, snap) in enumerate(snapshots):
        meta = _source.metadata(snap).get("memhound") or {}
        t = meta.get("time") if isinstance(meta, dict) else None
        size = _aggregate.totals(snap)[0] if len(snapshots) > 1 or best else None
        if size is not None:
            marks.append([t if isinstance(t, (int, float)) else index, size, os.path.basename(name)])
    if best is not None:
        points = [[float(p[0]), int(p[1]), int(p[2])] for p in best
                  if isinstance(p, (list, tuple)) and len(p) >= 3]
        return {"unit": "s", "points": points, "marks": marks}
    if len(snapshots) >= 2:
        points = []
        peak = 0
        for t, size, _label in marks:
            peak = max(peak, size)
            points.append([t, size, peak])
        timed = all(isinstance(_source.metadata(s).get("memhound", {}).get("time"), (int, float))
                    for _, s in snapshots)
        return {"unit": "s" if timed else "snapshot", "points": points, "marks": marks}
    return None


def render(report):
    """The complete HTML text for report data (see ``report_from_snapshots``).

    >>> render(report_from_snapshots([], title="empty")).startswith("<!DOCTYPE html>")
    True
    """
    data = json.dumps(report, separators=(",", ":"), ensure_ascii=False)
    # JSON inside <script>: only "</" can end the element early.
    data = data.replace("</", "<\\/").replace("<!--", "<\\!--")
    page = _template("report.html")
    title = (report.get("title") or "memhound report")
    title = title.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    parts = {"title": title, "css": _template("report.css"),
             "js": _template("report.js").replace("</script", "<\\/script"), "data": data}
    return re.sub(r"\{\{(title|css|js|data)\}\}", lambda m: parts[m.group(1)], page)


def write_html(report, path):
    """Write the report as one HTML file.

    >>> import memhound, os, tempfile
    >>> snap = memhound.Snapshot([(0, 4096, (("app.py", 12),), 1)], 1)
    >>> with tempfile.TemporaryDirectory() as tmp:
    ...     write_html(report_from_snapshots([("app.snap", snap)]), os.path.join(tmp, "report.html"))
    ...     with open(os.path.join(tmp, "report.html"), encoding="utf-8") as f:
    ...         f.read().startswith("<!DOCTYPE html>")
    True
    """
    text = render(report)
    with open(path, "w", encoding="utf-8") as fp:
        fp.write(text)
