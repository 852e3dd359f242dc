"""The hints specific to the case: a group's hint opens with what this
leak shows -- the container that holds it, the line that grows it and what
it adds per call -- then gives the cause's usual fix (HINTS).
"""
import os

from .. import _core
from ._report import (HINTS, _ANCHOR_SPECIAL, _OWNER_CAUSES, _count_text, _own_frames_cut,
                      _per_run, _type_name)

_WEAK_CONTAINERS = ("weakref.WeakValueDictionary", "weakref.WeakKeyDictionary",
                    "_weakrefset.WeakSet", "weakref.WeakSet")
_HINT_ALREADY_WEAK = ("%s already holds weak references: something it holds strongly (a value, "
                      "a callback) refers back to its entry and keeps it alive: remove entries "
                      "when done, or do not refer back to the key")


def _stdlib_dirs():
    import sysconfig
    paths = sysconfig.get_paths()
    return tuple(os.path.join(paths[k], "") for k in ("stdlib", "platstdlib") if paths.get(k))


def _user_frame(frames):
    """The newest frame outside the standard library (the line that called
    into it), or the newest frame when all are in it."""
    stdlib = _stdlib_dirs()
    for fr in frames:
        if not str(fr[0]).startswith(stdlib):
            return fr
    return frames[0]


def _adds_text(surv, group, entries, runs, rep_head):
    """"one ValueError per call, which keeps one bytearray": what the
    holder gains per call (its direct entries) and the group's name."""
    counts = {}
    for h in entries:
        tp = type(surv.obj[h])
        counts[tp] = counts.get(tp, 0) + 1
    # On a tie, the entry that keeps the representative (a cache's key
    # rather than its result) is named.
    tp, n = max(counts.items(), key=lambda kv: (kv[1], kv[0] is type(surv.obj[rep_head])))
    name = _type_name(tp)
    text = _count_text(_per_run(n, runs), name) + " per call"
    if name != group.type:
        text += ", which keeps %s" % _count_text(group.count_per_run, group.type)
    return text


def _source_line(filename, lineno):
    """The code of one source line without its comment, or None."""
    import linecache
    import tokenize
    line = linecache.getline(filename, lineno).strip()
    if not line:
        return None
    try:
        for tok in tokenize.generate_tokens(iter([line + "\n"]).__next__):
            if tok.type == tokenize.COMMENT:
                line = line[:tok.start[1]].rstrip()
                break
    except (tokenize.TokenError, SyntaxError, IndentationError):
        pass
    return line or None


def _container_text(path):
    """"global _history (list)" / "attribute handlers (dict) of app.Session":
    the step that holds the first survivor, or None."""
    first = next((i for i, s in enumerate(path) if i > 0 and s[3]), None)
    if first is None:
        return None
    if first == 1:
        kind, label, tname = path[0][:3]
        if kind == "external":
            return "a %s held by native code" % tname
        return _core.ROOT_KINDS[kind].format(label)
    kind, label, tname = path[first - 1][:3]
    if kind in ("elided", "index", "key", "member", "ref", "dict_key", "local"):
        return None
    text = "%s (%s)" % (_core.EDGE_KINDS[kind].format(label), tname)
    if kind == "attr" and first >= 3:
        owner = path[first - 2]
        if owner[2] in _WEAK_CONTAINERS:
            # The weak container's own storage is an implementation detail.
            return "%s (%s)" % (_core.EDGE_KINDS[owner[0]].format(owner[1]), owner[2])
        text += " of " + owner[2]
    return text



def _hint(graph, surv, group, path, starts, runs, rep):
    """The cause's hint, opened by what this case shows: the container, the
    line that grows it and what it adds per call."""
    generic = HINTS[group.cause]
    weak = next((step[2] for step in path if step[2] in _WEAK_CONTAINERS), None)
    if weak is not None and group.cause in _OWNER_CAUSES.values():
        generic = _HINT_ALREADY_WEAK % weak
    container = _container_text(path)
    # The container is the holder of the representative's first survivor;
    # its entries are the group's heads that it holds.
    rep_head = rep
    while surv.parent.get(rep_head, -1) >= 0:
        rep_head = surv.parent[rep_head]
    anchor = surv.anchor[rep_head]
    entries = [h for h in starts if surv.anchor[h] == anchor] or [rep_head]
    adds = _adds_text(surv, group, entries, runs, rep_head)
    site = None
    if container is not None and 0 <= anchor < _ANCHOR_SPECIAL:
        grown = graph.storage_creation(graph.node(anchor))
        frames = _own_frames_cut(grown) if grown else ()
        # Only a line in the calls that created the group is named: the
        # container may also grow elsewhere.
        made = {(f, fn) for f, _n, fn in group.created_at}
        if any((f, fn) in made for f, _n, fn in frames):
            site = _user_frame(frames)
    if site is not None:
        code = _source_line(site[0], site[1])
        where = "%s:%s" % (os.path.basename(site[0]), site[1])
        opening = ("`%s` at %s" % (code, where)) if code else where
        text = "%s adds %s" % (opening, adds.replace(" per call", " per call to %s" % container, 1))
    elif group.created_at and container is not None:
        f, n, _fn = group.created_at[0]
        code = _source_line(f, n)
        where = "%s:%s" % (os.path.basename(f), n)
        text = "%s created at %s%s, %s, is kept by %s" % (
            group.type, ("`%s` at " % code) if code else "", where,
            "one per call" if group.count_per_run == 1 else "%s per call" % group.count_per_run,
            container)
    else:
        return generic
    return text + "; " + generic

