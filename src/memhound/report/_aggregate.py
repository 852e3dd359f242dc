"""Turn snapshots into the small tables and trees that reports draw.

Reports never emit one element per trace: a snapshot is first grouped by
traceback (``Snapshot.statistics('traceback')``, done in C by memhound's
engine), then the distinct tracebacks are merged into a call tree whose
nodes are (frame, size, count).  A tree larger than ``max_nodes`` is pruned
from the smallest nodes up; what is cut is accounted for in its parent, so
every percentage stays exact.
"""
import os
import runpy
import sys

from ._source import frame_function

GROUP_BY = ("lineno", "filename", "traceback")


class SiteRow:
    """One line of a top table: size/count (and their change) and frames,
    most recent call first, each a (filename, lineno, function) tuple."""

    __slots__ = ("size", "count", "size_diff", "count_diff", "frames")

    def __init__(self, size, count, frames, size_diff=0, count_diff=0):
        self.size = size
        self.count = count
        self.frames = frames
        self.size_diff = size_diff
        self.count_diff = count_diff

    def __repr__(self):
        return f"SiteRow(size={self.size}, count={self.count}, frames={self.frames!r})"


def _frames(traceback, group_by):
    frames = [(f.filename, f.lineno, frame_function(f)) for f in traceback]
    frames.reverse()                      # tracemalloc order is oldest first
    if group_by == "filename":
        frames = [(f[0], 0, None) for f in frames]
    return frames


def apply_filters(snapshot, include=(), exclude=()):
    """Keep traces whose most recent frame's filename matches an ``include``
    glob (if any) and no ``exclude`` glob (fnmatch, like tracemalloc.Filter)."""
    if not include and not exclude:
        return snapshot
    api = sys.modules[type(snapshot).__module__]
    filters = [api.Filter(True, pattern) for pattern in include]
    filters += [api.Filter(False, pattern) for pattern in exclude]
    return snapshot.filter_traces(filters)


def totals(snapshot):
    """(total size, number of blocks) of a snapshot."""
    size = count = 0
    for stat in snapshot.statistics("filename"):
        size += stat.size
        count += stat.count
    return size, count


def site_rows(snapshot, group_by="lineno", cumulative=False, limit=10):
    """Top ``limit`` sites of a snapshot, biggest first.

    >>> rows = site_rows(snapshot, "lineno", limit=3)     # doctest: +SKIP
    >>> rows[0].size, rows[0].frames[0]                     # doctest: +SKIP
    (1048576, ('app.py', 12, 'load'))
    """
    stats = snapshot.statistics(group_by, cumulative)
    if limit is not None:
        stats = stats[:limit]
    return [SiteRow(s.size, s.count, _frames(s.traceback, group_by)) for s in stats]


def compare_rows(old, new, group_by="lineno", cumulative=False, limit=10):
    """Top ``limit`` differences between two snapshots, largest change first."""
    stats = new.compare_to(old, group_by, cumulative)
    if limit is not None:
        stats = stats[:limit]
    return [SiteRow(s.size, s.count, _frames(s.traceback, group_by), s.size_diff, s.count_diff)
            for s in stats]


# Frames that belong to the `memhound run` launcher, not to the program: they
# sit at the root (oldest end) of every traceback recorded under `run`:
# whatever started memhound, then cli.py, then (for -m) runpy.
_CLI_FILE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "cli.py")
_RUNPY_FILES = {os.path.abspath(runpy.__file__), "<frozen runpy>"}


def stacks(snapshot, strip_launcher=True):
    """Yield (frames root first, size, count) per distinct traceback; each
    frame is a (filename, lineno, function) tuple.  With ``strip_launcher``
    the frames of ``memhound run`` itself (cli.py, runpy) are left out."""
    for stat in snapshot.statistics("traceback"):
        frames = [(f.filename, f.lineno, frame_function(f)) for f in stat.traceback]
        if strip_launcher:
            start = 0
            for i, f in enumerate(frames):       # oldest first: root to leaf
                if f[0] == _CLI_FILE:
                    start = i + 1
            while start and start < len(frames) and frames[start][0] in _RUNPY_FILES:
                start += 1
            if start:
                del frames[:start]
        yield frames, stat.size, stat.count


def flame_tree(snapshot, max_nodes=20000, strip_launcher=True):
    """Merge a snapshot's tracebacks into a call tree for the flame graph.

    Returns ``{"frames": [[filename, lineno, function], ...],
    "nodes": [parent, frame, size, count, ...]}`` (flat, 4 ints per node;
    node 0 is the root, parents come before children), plus totals and
    ``sites``: {(filename, lineno, function): [size, count]} by most recent
    frame, computed before pruning.

    >>> tree = flame_tree(snapshot)                     # doctest: +SKIP
    >>> tree["total_size"], len(tree["nodes"]) // 4     # doctest: +SKIP
    (1048576, 42)
    """
    frame_ids = {}
    frames = []
    # node key (parent, frame) -> node index; per-node size/count lists
    children = {}
    parent_of = [-1]
    frame_of = [-1]
    size_of = [0]
    count_of = [0]
    sites = {}
    for stack, size, count in stacks(snapshot, strip_launcher):
        size_of[0] += size
        count_of[0] += count
        leaf = stack[-1] if stack else ("<unknown>", 0, None)
        site = sites.get(leaf)
        if site is None:
            sites[leaf] = [size, count]
        else:
            site[0] += size
            site[1] += count
        node = 0
        for key in stack:
            fid = frame_ids.get(key)
            if fid is None:
                fid = frame_ids[key] = len(frames)
                frames.append(key)
            child_key = (node, fid)
            child = children.get(child_key)
            if child is None:
                child = children[child_key] = len(parent_of)
                parent_of.append(node)
                frame_of.append(fid)
                size_of.append(0)
                count_of.append(0)
            size_of[child] += size
            count_of[child] += count
            node = child
    keep = _prune(parent_of, size_of, max_nodes)
    # renumber kept nodes (parents always precede children)
    new_index = {}
    flat = []
    used_frames = {}
    out_frames = []
    for old in keep:
        new_index[old] = len(new_index)
        fid = frame_of[old]
        if fid >= 0:
            nf = used_frames.get(fid)
            if nf is None:
                nf = used_frames[fid] = len(out_frames)
                out_frames.append(list(frames[fid]))
            fid = nf
        flat.extend((new_index.get(parent_of[old], -1), fid, size_of[old], count_of[old]))
    return {"frames": out_frames, "nodes": flat, "total_size": size_of[0],
            "total_count": count_of[0], "pruned": len(parent_of) - len(keep), "sites": sites}


def _prune(parent_of, size_of, max_nodes):
    n = len(parent_of)
    if n <= max_nodes:
        return range(n)
    # keep the max_nodes largest nodes; a node's size never exceeds its
    # parent's, so keeping the largest keeps every kept node's ancestors
    # (ties broken by index, and parents have smaller indexes).
    order = sorted(range(n), key=lambda i: (-size_of[i], i))[:max_nodes]
    order.sort()
    return order
