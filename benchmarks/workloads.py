"""Allocation-heavy workloads for the tracing-overhead benchmark (section 1).

Each workload takes a scale factor (1.0 = the size used for the README table)
and does a fixed amount of allocation work; it returns nothing.  They mirror
the workloads of the research notes (shared/research/tracemalloc.md section 4.1):
small dicts/lists/tuples/str, json dumps+loads, class-instance churn, f-string
building, and the small-object loop again at stack depth 30.

Stdlib only: this file is imported by the benchmark worker in a fresh
interpreter with or without a tracer running.
"""
import json


def small_objs(scale):
    """100k iterations, each building a dict, a list, a tuple and a str."""
    keep = []
    for i in range(int(100_000 * scale)):
        d = {"k": i, "v": [i, i + 1]}
        keep.append((i, d, str(i)))
        if len(keep) > 1000:
            keep.clear()


_DOC = None


def _json_doc():
    global _DOC
    if _DOC is None:
        _DOC = {"records": [
            {"id": i, "name": "user%d" % i, "email": "user%d@example.org" % i,
             "score": i * 1.5, "tags": ["a", "b", str(i)], "active": bool(i % 2),
             "address": {"city": "City%d" % (i % 17), "zip": "%05d" % i}}
            for i in range(200)]}
    return _DOC


def json_roundtrip(scale):
    """json.dumps + json.loads of a 200-record document, 20 times."""
    doc = _json_doc()
    for _ in range(max(1, int(20 * scale))):
        json.loads(json.dumps(doc))


class _Point:
    def __init__(self, x, y):
        self.x = x
        self.y = y


class _Segment:
    def __init__(self, a, b):
        self.a = a
        self.b = b
        self.label = None


def class_churn(scale):
    """150k short-lived plain class instances (two classes, nested)."""
    last = None
    for i in range(int(150_000 * scale) // 3):
        a = _Point(i, i)
        b = _Point(i, -i)
        last = _Segment(a, b)
    return last


def str_format(scale):
    """150k f-strings, collected in a short-lived list and joined."""
    parts = []
    name = "memhound"
    for i in range(int(150_000 * scale)):
        parts.append(f"{name}:{i}:{i * 3}")
        if len(parts) > 500:
            "|".join(parts)
            parts.clear()


def _descend(depth, func, scale):
    if depth <= 0:
        return func(scale)
    return _descend(depth - 1, func, scale)


def small_objs_depth30(scale):
    """small_objs called 30 frames below the caller."""
    return _descend(30, small_objs, scale)


WORKLOADS = {
    "small_objs": small_objs,
    "json": json_roundtrip,
    "class_churn": class_churn,
    "str_format": str_format,
    "small_objs_depth30": small_objs_depth30,
}

DESCRIPTIONS = {
    "small_objs": "small dicts/lists/tuples/str (100k iterations)",
    "json": "json dumps+loads x20 (200-record doc)",
    "class_churn": "class-instance churn (150k instances)",
    "str_format": "f-string building (150k)",
    "small_objs_depth30": "small_objs at stack depth 30",
}
