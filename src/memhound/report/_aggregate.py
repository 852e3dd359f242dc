"""Turn snapshots into the small tables and trees that reports draw.

Reports never emit one element per trace: a snapshot is first grouped by
traceback (``Snapshot.statistics('traceback')``, done in C by memhound's
engine), then the distinct tracebacks are merged into a call tree whose
nodes are (frame, size, count).  A tree larger than ``max_nodes`` is pruned
from the smallest nodes up; what is cut is accounted for in its parent, so
every percentage stays exact.
"""
import heapq
import os
import sys
from importlib import _bootstrap, _bootstrap_external
from typing import NamedTuple

from ..runner import LAUNCHER_FILES
from ._source import frame_function, metadata

GROUP_BY = ("lineno", "filename", "traceback")
# Call-tree nodes smaller than this share of the total are folded into their
# parent: at 1e-5 a node is 1/80 of a pixel wide on a 1280-pixel flame graph.
MIN_SHARE = 1e-5


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
    glob (if any) and no ``exclude`` glob (fnmatch, like tracemalloc.Filter).

    >>> import memhound
    >>> snap = memhound.Snapshot([(0, 8, (("app/a.py", 1),), 1), (0, 8, (("lib/b.py", 1),), 1)], 1)
    >>> len(apply_filters(snap, include=["app/*"]).traces)
    1
    """
    if not include and not exclude:
        return snapshot
    api = sys.modules[type(snapshot).__module__]
    filters = [api.Filter(True, pattern) for pattern in include]
    filters += [api.Filter(False, pattern) for pattern in exclude]
    return snapshot.filter_traces(filters)


def totals(snapshot):
    """(total size, number of blocks) of a snapshot.

    >>> import memhound
    >>> totals(memhound.Snapshot([(0, 64, (("a.py", 3),), 1)] * 2, 1))
    (128, 2)
    """
    size = count = 0
    for stat in snapshot.statistics("filename"):
        size += stat.size
        count += stat.count
    return size, count


def site_rows(snapshot, group_by="lineno", cumulative=False, limit=10):
    """Top ``limit`` sites of a snapshot, biggest first.  In a snapshot of
    ``memhound run`` the launcher's frames (LAUNCHER_FRAMES) are left out:
    of the tracebacks shown, and as sites of their own (cumulative).

    >>> rows = site_rows(snapshot, "lineno", limit=3)     # doctest: +SKIP
    >>> rows[0].size, rows[0].frames[0]                     # doctest: +SKIP
    (1048576, ('app.py', 12, 'load'))
    """
    run = _from_run(snapshot)
    stats = _without_launcher(snapshot, run, snapshot.statistics(group_by, cumulative), group_by,
                              cumulative, limit)
    return [SiteRow(s.size, s.count, _shown_frames(run, s.traceback, group_by)) for s in stats]


def compare_rows(old, new, group_by="lineno", cumulative=False, limit=10):
    """Top ``limit`` differences between two snapshots, largest change first."""
    run = _from_run(new)
    stats = _without_launcher(new, run, new.compare_to(old, group_by, cumulative), group_by,
                              cumulative, limit)
    return [SiteRow(s.size, s.count, _shown_frames(run, s.traceback, group_by), s.size_diff,
                    s.count_diff)
            for s in stats]


def _without_launcher(snapshot, run, stats, group_by, cumulative, limit):
    """``stats`` up to ``limit``, without the launcher's own frames as sites
    (only cumulative statistics of a ``run`` snapshot have them)."""
    if cumulative and run:
        launcher = set()
        for frames, _functions, _size, _count in _grouped(snapshot):
            start, _kept = strip_frames(frames, _LAUNCHER_ROOT)
            launcher.update(frames[:start])
        if group_by == "filename":
            launcher = {f[0] for f in launcher}
            stats = [s for s in stats if s.traceback[0].filename not in launcher]
        else:
            stats = [s for s in stats
                     if (s.traceback[0].filename, s.traceback[0].lineno) not in launcher]
    return stats[:limit] if limit is not None else stats


def _shown_frames(run, traceback, group_by):
    frames = _frames(traceback, group_by)
    if len(frames) > 1 and run:
        root_first = frames[::-1]
        start, _kept = strip_frames([f[:2] for f in root_first], _LAUNCHER_ROOT)
        if start < len(frames):
            frames = root_first[start:][::-1]
    return frames


class RootFrames(NamedTuple):
    """Frames to leave out of every traceback: at the root (oldest end), up
    to the last frame among the first ``depth`` whose file is in ``files``,
    then the frames of ``then_files`` right after it; anywhere but the most
    recent frame, the frames of ``collapse`` (their callee takes their place
    under their caller)."""
    files: tuple
    then_files: tuple
    depth: int
    collapse: tuple = ()


def _import_machinery_files():
    files = {"<frozen importlib._bootstrap>", "<frozen importlib._bootstrap_external>",
             "<frozen zipimport>", _bootstrap.__file__, _bootstrap_external.__file__,
             os.path.join(os.path.dirname(_bootstrap.__file__), "__init__.py")}
    return tuple(sorted(os.path.abspath(f) if not f.startswith("<") else f for f in files))


# The import machinery between an `import` and the imported module's code:
# a flame graph reads "app.py:3 -> models.py:10" without the frames of
# importlib in between.  What the machinery allocates itself (its leaf
# frames: code objects, specs) stays visible.
IMPORT_FRAMES = _import_machinery_files()

# The frames of the `memhound run` launcher, not of the program, at the root of
# every traceback recorded under `run`: whatever started memhound, then
# memhound's runner, then (for -m) runpy.  The launcher's frames are among the
# first 16.
LAUNCHER_FRAMES = RootFrames(files=LAUNCHER_FILES[:1], then_files=LAUNCHER_FILES[1:], depth=16,
                             collapse=IMPORT_FRAMES + LAUNCHER_FILES[1:])
# The tables show whole tracebacks: only the launcher's root leaves them.
_LAUNCHER_ROOT = LAUNCHER_FRAMES._replace(collapse=())
# Any other snapshot: only the import machinery collapses.
NO_LAUNCHER = RootFrames(files=(), then_files=(), depth=0, collapse=IMPORT_FRAMES)


def _from_run(snapshot):
    meta = metadata(snapshot).get("memhound")
    return isinstance(meta, dict) and "argv" in meta


def strip_frames(frames, strip):
    """Index of the first kept frame of ``frames`` (root first) and the kept
    frames: ``strip`` (a RootFrames) applied as the flame graph applies it.

    >>> strip_frames([("r.py", 1), ("<frozen runpy>", 9), ("app.py", 2)],
    ...              RootFrames(("r.py",), ("<frozen runpy>",), 16))
    (2, [('app.py', 2)])
    """
    start = 0
    for i, f in enumerate(frames[:strip.depth]):    # root first
        if f[0] in strip.files:
            start = i + 1
    while start and start < len(frames) and frames[start][0] in strip.then_files:
        start += 1
    kept = list(frames[start:])
    if strip.collapse and len(kept) > 1:
        kept = [f for f in kept[:-1] if f[0] not in strip.collapse] + kept[-1:]
    return start, kept


def stacks(snapshot, strip_launcher=True):
    """Yield (frames, functions, size, count) per distinct traceback, biggest
    first.  ``frames`` is a tuple of (filename, lineno) pairs, root first;
    ``functions`` the matching function names, or None when unknown (stdlib
    snapshots).  With ``strip_launcher`` and a snapshot written by
    ``memhound run`` (its metadata says so), the frames of the launcher
    itself (runner.py, runpy) are left out; the import machinery's frames
    collapse (IMPORT_FRAMES) in every snapshot."""
    strip = LAUNCHER_FRAMES if strip_launcher and _from_run(snapshot) else NO_LAUNCHER
    for frames, functions, size, count in _grouped(snapshot):
        start, kept = strip_frames(frames, strip)
        if len(kept) != len(frames):
            if functions:
                pairs = list(zip(frames[start:], functions[start:]))
                if len(pairs) > 1:
                    pairs = [p for p in pairs[:-1] if p[0][0] not in strip.collapse] + pairs[-1:]
                functions = tuple(p[1] for p in pairs)
            frames = tuple(kept)
            if not frames:              # only launcher frames: as the engine's flame_tree
                frames, functions = _UNKNOWN, None
        yield frames, functions, size, count


_UNKNOWN = (("<unknown>", 0),)


def _grouped(snapshot):
    data = getattr(getattr(snapshot, "traces", None), "_data", None)
    if data is not None and hasattr(data, "statistics"):
        # memhound snapshot: grouped in C, rows of plain tuples (frames
        # oldest first), no Traceback/Frame object per row.
        for frames, functions, size, count in data.statistics(2, False):
            yield (frames or _UNKNOWN), (functions if frames else None), size, count
        return
    raw = getattr(getattr(snapshot, "traces", None), "_traces", None)
    if type(raw) is tuple:
        # Stdlib snapshot: group its raw trace tuples directly.  Its
        # statistics('traceback') builds a Traceback object per trace and
        # takes ~8 s for 1M traces.  Tracebacks are shared tuples
        # (tracemalloc interns them and pickle keeps the sharing), so group
        # by identity: hashing a nested tuple per trace costs several times
        # more.  Equal tracebacks that are distinct objects stay separate
        # here; the call tree merges them.
        by_id = {}
        for trace in raw:
            group = by_id.get(id(trace[2]))
            if group is None:
                by_id[id(trace[2])] = [trace[1], 1, trace[2]]
            else:
                group[0] += trace[1]
                group[1] += 1
        items = sorted(by_id.values(), key=lambda g: (g[0], g[1]), reverse=True)
        for size, count, tb in items:
            yield (tb[::-1] if tb else _UNKNOWN), None, size, count
        return
    for stat in snapshot.statistics("traceback"):          # any other tracemalloc-like API
        frames = tuple((f.filename, f.lineno) for f in stat.traceback)
        functions = tuple(frame_function(f) for f in stat.traceback)
        yield (frames or _UNKNOWN), (functions if frames and any(functions) else None), \
            stat.size, stat.count


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
    data = getattr(getattr(snapshot, "traces", None), "_data", None)
    if data is not None and hasattr(data, "flame_tree"):
        built = _tree_c(data, snapshot, strip_launcher)
    else:
        built = _tree_python(snapshot, strip_launcher)
    frames, parent_of, frame_of, size_of, count_of, folded, sites = built
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
            "total_count": count_of[0], "pruned": folded + len(parent_of) - len(keep),
            "sites": sites}


def _tree_c(data, snapshot, strip_launcher):
    """The call tree built by memhound's engine (SnapshotData.flame_tree):
    same nodes, numbering and sites as _tree_python, no object per trace."""
    strip = LAUNCHER_FRAMES if strip_launcher and _from_run(snapshot) else NO_LAUNCHER
    frames, parent_of, frame_of, size_of, count_of, folded, site_frames, site_size, \
        site_count = data.flame_tree(MIN_SHARE, strip)
    sites = {f: [size, count] for f, size, count in zip(site_frames, site_size, site_count)}
    return frames, parent_of, frame_of, size_of, count_of, folded, sites


def _tree_python(snapshot, strip_launcher):
    """The call tree of a snapshot without memhound's engine (stdlib
    tracemalloc snapshots): (frames, parent_of, frame_of, size_of,
    count_of, folded, sites), node 0 the root, breadth first."""
    stack_list, func_list, sizes, counts = [], [], [], []
    sites = {}
    total_size = total_count = 0
    for stack, functions, size, count in stacks(snapshot, strip_launcher):
        stack_list.append(stack)
        func_list.append(functions)
        sizes.append(size)
        counts.append(count)
        total_size += size
        total_count += count
        leaf = (stack[-1], functions[-1] if functions else None)
        site = sites.get(leaf)
        if site is None:
            sites[leaf] = [size, count]
        else:
            site[0] += size
            site[1] += count
    # Build the tree one level at a time, splitting each node's tracebacks
    # by their next frame.  A group below `threshold` (too small to ever be
    # drawn) is folded into its parent and its tracebacks are not walked any
    # deeper: 1M distinct tracebacks do not turn into 10M tree nodes.
    threshold = total_size * MIN_SHARE
    frame_ids = {}
    frames = []
    parent_of, frame_of, size_of, count_of = [-1], [-1], [total_size], [total_count]
    folded = 0
    level = [(0, range(len(stack_list)))]
    depth = 0
    while level:
        next_level = []
        for node, members in level:
            split = {}
            for i in members:
                stack = stack_list[i]
                if len(stack) > depth:
                    key = stack[depth]
                    group = split.get(key)
                    if group is None:
                        split[key] = [sizes[i], counts[i], [i]]
                    else:
                        group[0] += sizes[i]
                        group[1] += counts[i]
                        group[2].append(i)
            for key, (size, count, sub) in split.items():
                if size < threshold or size == 0:
                    folded += 1
                    continue
                fid = frame_ids.get(key)
                if fid is None:
                    # a line belongs to one function: name it from any member
                    functions = func_list[sub[0]]
                    fid = frame_ids[key] = len(frames)
                    frames.append((key[0], key[1], functions[depth] if functions else None))
                child = len(parent_of)
                parent_of.append(node)
                frame_of.append(fid)
                size_of.append(size)
                count_of.append(count)
                next_level.append((child, sub))
        level = next_level
        depth += 1
    sites = {(f[0], f[1], fn): v for (f, fn), v in sites.items()}
    return frames, parent_of, frame_of, size_of, count_of, folded, sites


def frame_key(frame, function=None):
    """(filename, lineno, function) for a (filename, lineno) pair.

    >>> frame_key(("a.py", 3), "f")
    ('a.py', 3, 'f')
    """
    return (frame[0], frame[1], function)


def _prune(parent_of, size_of, max_nodes):
    """Indexes of the ``max_nodes`` biggest nodes, in index order.  A node is
    never bigger than its parent and parents have smaller indexes, so taking
    ties in index order keeps every kept node's ancestors."""
    n = len(parent_of)
    if n <= max_nodes:
        return range(n)
    threshold = heapq.nlargest(max_nodes, size_of)[-1]
    keep = [i for i in range(n) if size_of[i] > threshold]
    room = max_nodes - len(keep)
    keep += [i for i in range(n) if size_of[i] == threshold][:room]
    keep.sort()
    return keep
