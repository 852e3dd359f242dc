"""Workloads that look like programs (the "programs" section of run.py).

Three kinds:

* growth  -- build N live objects (dicts, lists, dataclass and __slots__
  instances, strings) and keep them alive until the workload returns, as a
  program that loads or caches data does.  Leaks are growth too.
* depth   -- the dict growth workload run 30, 60 or 100 frames below the
  caller (web handlers run 40-80 frames deep).
* program -- real programs: black formatting a tree of Python files, a
  generated pytest suite run in-process, json and pickle round trips of a
  large document, a wsgiref application serving a bounded loop of requests
  on 127.0.0.1.

Every workload is ``func(scale, at_peak=None)``: scale 1.0 is the size named
in the table; ``at_peak()``, when given, is called while the live set is at
its largest (the harness measures the tracer's own memory there).  A
workload with a ``setup(tmpdir, scale)`` needs it called once, untraced,
before the first run; a workload whose program is not installed raises
``ProgramMissing``.

Imported by benchmarks/worker.py in a fresh interpreter; stdlib only except
black and pytest, imported lazily.
"""
import dataclasses
import json
import os
import pickle
import sys
import threading


class ProgramMissing(Exception):
    """The program a workload runs (black, pytest) is not installed."""


def _call_at_peak(at_peak):
    if at_peak is not None:
        at_peak()


# --------------------------------------------------------------------------
# growth: live sets of 100k and 1M objects
# --------------------------------------------------------------------------

def grow_dicts(n, at_peak=None):
    """The issue's first workload: a dict holding a list and a tuple, per item."""
    keep = []
    append = keep.append
    for i in range(n):
        append({"id": i, "tags": [i, i + 1], "pos": (i, -i)})
    _call_at_peak(at_peak)


def grow_lists(n, at_peak=None):
    keep = []
    append = keep.append
    for i in range(n):
        append([i, i + 1, i + 2])
    _call_at_peak(at_peak)


@dataclasses.dataclass
class Record:
    ident: int
    name: str
    score: float


def grow_dataclasses(n, at_peak=None):
    keep = []
    append = keep.append
    for i in range(n):
        append(Record(i, "r", i * 0.5))
    _call_at_peak(at_peak)


class SlotPoint:
    __slots__ = ("x", "y", "z")

    def __init__(self, x, y, z):
        self.x = x
        self.y = y
        self.z = z


def grow_slots(n, at_peak=None):
    keep = []
    append = keep.append
    for i in range(n):
        append(SlotPoint(i, i + 1, i + 2))
    _call_at_peak(at_peak)


def grow_strings(n, at_peak=None):
    keep = []
    append = keep.append
    for i in range(n):
        append(f"user-{i}@example.org")
    _call_at_peak(at_peak)


def _sized(func, n_full):
    def run(scale, at_peak=None):
        return func(max(1, int(n_full * scale)), at_peak)
    run.__name__ = "%s_%d" % (func.__name__, n_full)
    return run


# --------------------------------------------------------------------------
# depth: the dict growth 30, 60, 100 frames deep
# --------------------------------------------------------------------------

def _descend(depth, func, *args):
    if depth <= 0:
        return func(*args)
    return _descend(depth - 1, func, *args)


def _deep(depth, n_full):
    def run(scale, at_peak=None):
        return _descend(depth, grow_dicts, max(1, int(n_full * scale)), at_peak)
    run.__name__ = "grow_dicts_depth%d" % depth
    return run


# --------------------------------------------------------------------------
# program: json and pickle round trips of a large document
# --------------------------------------------------------------------------

_DOCUMENT = {}


def _document(records):
    """An API-style document: records with nested dicts, lists, strings,
    floats; built once per process, outside the timed runs."""
    doc = _DOCUMENT.get(records)
    if doc is None:
        doc = {"meta": {"version": 3, "source": "memhound-bench"},
               "records": [{"id": i, "name": "user%d" % i, "email": "user%d@example.org" % i,
                            "score": i * 1.5, "active": bool(i % 2),
                            "tags": ["tag%d" % (i % 13), "tag%d" % (i % 7), str(i)],
                            "address": {"city": "City%d" % (i % 97), "zip": "%05d" % (i % 100000),
                                        "geo": [i * 0.001, -i * 0.002]}}
                           for i in range(records)]}
        _DOCUMENT[records] = doc
    return doc


DOC_RECORDS = 20_000


def json_roundtrip(scale, at_peak=None):
    """json.dumps then json.loads of a 20,000-record document (about 4.2 MB
    of JSON), twice; the decoded copies stay alive until the end."""
    doc = _document(max(10, int(DOC_RECORDS * scale)))
    decoded = [json.loads(json.dumps(doc)) for _ in range(2)]
    _call_at_peak(at_peak)
    return len(decoded)


def pickle_roundtrip(scale, at_peak=None):
    """pickle.dumps (protocol 5) then pickle.loads of the same document, three
    times; the copies stay alive until the end."""
    doc = _document(max(10, int(DOC_RECORDS * scale)))
    copies = [pickle.loads(pickle.dumps(doc, protocol=5)) for _ in range(3)]
    _call_at_peak(at_peak)
    return len(copies)


def setup_documents(tmpdir, scale):
    _document(max(10, int(DOC_RECORDS * scale)))


# --------------------------------------------------------------------------
# program: black formatting a tree of Python files
# --------------------------------------------------------------------------

# Standard-library modules of every supported version, formatted by black
# (their text differs a little between versions; ratios are per version).
BLACK_FILES = ["bisect.py", "heapq.py", "json/decoder.py", "textwrap.py"]
_black_sources = []


def setup_black(tmpdir, scale):
    try:
        import black  # noqa: F401  (fail early, untraced)
    except ImportError as exc:
        raise ProgramMissing("black: %s" % exc)
    import sysconfig
    stdlib = sysconfig.get_paths()["stdlib"]
    del _black_sources[:]
    for rel in BLACK_FILES:
        path = os.path.join(stdlib, rel)
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                _black_sources.append((rel, f.read()))


def black_format(scale, at_peak=None):
    """black (safe mode: it also compares the ASTs) on 4 stdlib modules
    (59 KB of source on 3.13); the formatted texts stay alive until the end."""
    import black
    mode = black.Mode()
    count = max(1, int(round(len(_black_sources) * scale)))
    formatted = []
    for rel, source in _black_sources[:count]:
        try:
            formatted.append(black.format_file_contents(source, fast=False, mode=mode))
        except black.NothingChanged:
            formatted.append(source)
    _call_at_peak(at_peak)
    return len(formatted)


# --------------------------------------------------------------------------
# program: a generated pytest suite, run in-process
# --------------------------------------------------------------------------

PYTEST_MODULES = 12
_TEST_MODULE = '''\
import dataclasses
import json

import pytest


@dataclasses.dataclass
class Item:
    name: str
    price: float
    tags: list


@pytest.fixture
def catalog():
    return [Item("item%d" % i, i * 1.25, ["t%d" % (i % 5)]) for i in range(200)]


@pytest.fixture(scope="module")
def table():
    return {"row%d" % i: list(range(i % 30)) for i in range(300)}


@pytest.mark.parametrize("n", range(12))
def test_filter(catalog, n):
    cheap = [item for item in catalog if item.price < n * 20]
    assert len(cheap) == min(len(catalog), max(0, -(-n * 20 // 1.25)))


@pytest.mark.parametrize("key", ["row1", "row17", "row250"])
def test_table(table, key):
    assert sum(table[key]) == sum(range(int(key[3:]) % 30))


def test_json(catalog):
    text = json.dumps([dataclasses.asdict(item) for item in catalog])
    assert json.loads(text)[7]["name"] == "item7"


class TestGrouping:
    def test_groups(self, catalog):
        groups = {}
        for item in catalog:
            groups.setdefault(item.tags[0], []).append(item)
        assert sorted(groups) == ["t0", "t1", "t2", "t3", "t4"]

    @pytest.mark.parametrize("tag", ["t0", "t3"])
    def test_members(self, catalog, tag):
        assert all(tag in item.tags for item in catalog if item.tags == [tag])

    def test_failure_is_reported(self, catalog):
        with pytest.raises(AssertionError):
            assert catalog[0].price == 99, "pytest rewrites this assert"
'''
_pytest_dir = []


def setup_pytest(tmpdir, scale):
    try:
        import pytest  # noqa: F401
    except ImportError as exc:
        raise ProgramMissing("pytest: %s" % exc)
    # No third-party plugins (memhound's own plugin among them): the suite
    # runs the same whatever is installed next to it.
    os.environ["PYTEST_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    suite = os.path.join(tmpdir, "mhbench_suite")
    os.makedirs(suite, exist_ok=True)
    for k in range(PYTEST_MODULES):
        with open(os.path.join(suite, "test_mhbench_%02d.py" % k), "w") as f:
            f.write(_TEST_MODULE)
    del _pytest_dir[:]
    _pytest_dir.append(suite)


def _forget_suite_modules():
    for name in [m for m in sys.modules if m.startswith("test_mhbench_")]:
        del sys.modules[name]


def pytest_suite(scale, at_peak=None):
    """pytest.main() in-process on 12 generated test modules (240 tests:
    fixtures, parametrize, classes, assertion rewriting), output discarded."""
    import pytest
    suite = _pytest_dir[0]
    count = max(1, int(round(PYTEST_MODULES * scale)))
    paths = [os.path.join(suite, "test_mhbench_%02d.py" % k) for k in range(count)]
    _forget_suite_modules()
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved = os.dup(1)
    sys.stdout.flush()
    os.dup2(devnull, 1)  # pytest's terminal output, at the file-descriptor level
    try:
        status = pytest.main(["-q", "-p", "no:cacheprovider", "--import-mode=importlib",
                              "-o", "python_files=test_mhbench_*.py"] + paths)
    finally:
        sys.stdout.flush()
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)
    _forget_suite_modules()
    if int(status) != 0:
        raise RuntimeError("the generated pytest suite failed (exit status %s)" % int(status))


# --------------------------------------------------------------------------
# program: a WSGI application (stdlib wsgiref) on 127.0.0.1
# --------------------------------------------------------------------------

WSGI_REQUESTS = 300
_PRODUCTS = [{"id": i, "name": "product %d" % i, "price": round(i * 0.37, 2),
              "stock": i % 11} for i in range(500)]


def _wsgi_app(environ, start_response):
    from urllib.parse import parse_qs
    query = parse_qs(environ.get("QUERY_STRING", ""))
    page = int(query.get("page", ["0"])[0])
    size = int(query.get("size", ["50"])[0])
    rows = [dict(p, total=p["price"] * p["stock"]) for p in _PRODUCTS[page * size:(page + 1) * size]]
    body = json.dumps({"page": page, "rows": rows, "path": environ["PATH_INFO"]}).encode()
    start_response("200 OK", [("Content-Type", "application/json"),
                              ("Content-Length", str(len(body)))])
    return [body]


def wsgi_requests(scale, at_peak=None):
    """wsgiref's server in a thread serving 300 GET requests (JSON pages of a
    product list) to http.client in the main thread, one connection each;
    the decoded responses stay alive until the end."""
    import http.client
    from wsgiref.simple_server import WSGIRequestHandler, make_server

    class QuietHandler(WSGIRequestHandler):
        def log_message(self, *args):
            pass

    n = max(1, int(WSGI_REQUESTS * scale))
    server = make_server("127.0.0.1", 0, _wsgi_app, handler_class=QuietHandler)
    port = server.server_address[1]

    def serve():
        for _ in range(n):
            server.handle_request()

    thread = threading.Thread(target=serve, name="wsgi-server")
    thread.start()
    pages = []
    try:
        for i in range(n):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
            conn.request("GET", "/products?page=%d&size=50" % (i % 10))
            resp = conn.getresponse()
            pages.append(json.loads(resp.read()))
            conn.close()
    finally:
        thread.join()
        server.server_close()
    _call_at_peak(at_peak)
    return len(pages)


# --------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------

GROWTH = {}
for _func, _what in ((grow_dicts, "dicts (each with a list and a tuple)"),
                     (grow_lists, "3-item lists"),
                     (grow_dataclasses, "dataclass instances"),
                     (grow_slots, "__slots__ instances"),
                     (grow_strings, "f-strings")):
    for _n, _label in ((100_000, "100k"), (1_000_000, "1M")):
        GROWTH["%s_%s" % (_func.__name__, _label)] = (
            _sized(_func, _n), "%s live %s" % (_label, _what))

DEPTH = {"depth_%d" % d: (_deep(d, 100_000), "grow_dicts_100k %d frames deep" % d)
         for d in (30, 60, 100)}

PROGRAMS = {
    "black": (black_format, "black (safe mode) formatting 4 stdlib modules (59 KB)"),
    "pytest_suite": (pytest_suite, "pytest on 12 generated modules (240 tests), in-process"),
    "json_doc": (json_roundtrip, "json dumps+loads of a 20,000-record document, x2"),
    "pickle_doc": (pickle_roundtrip, "pickle dumps+loads of a 20,000-record document, x3"),
    "wsgi": (wsgi_requests, "wsgiref app serving 300 requests on 127.0.0.1"),
}

SETUP = {"black": setup_black, "pytest_suite": setup_pytest,
         "json_doc": setup_documents, "pickle_doc": setup_documents}

KIND = dict([(name, "growth") for name in GROWTH] + [(name, "depth") for name in DEPTH]
            + [(name, "program") for name in PROGRAMS])
WORKLOADS = {name: entry[0] for group in (GROWTH, DEPTH, PROGRAMS) for name, entry in group.items()}
DESCRIPTIONS = {name: entry[1] for group in (GROWTH, DEPTH, PROGRAMS)
                for name, entry in group.items()}
