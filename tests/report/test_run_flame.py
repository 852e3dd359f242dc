"""The flame graph of `memhound run` shows the program: the launcher's and
the import machinery's frames collapse, and the default traceback depth
reaches a request handler called through ~30 frames of framework code."""
import os
import random
import subprocess
import sys

import pytest

import memhound
from memhound.report import _aggregate, _source

from conftest import SRC, child_env

LAYERS = 30
# A web framework in miniature: importing it allocates (its registry), and
# it calls the application's handler through LAYERS distinct functions.
FRAMEWORK = "REGISTRY = [bytearray(200_000)]\n" + "".join(
    f"def layer{i}(handler, request):\n    return layer{i + 1}(handler, request)\n"
    for i in range(LAYERS)) + f"""\
def layer{LAYERS}(handler, request):
    return handler(request)
def serve(handler, requests):
    for request in range(requests):
        layer0(handler, request)
"""
APP = """\
import framework
CACHE = []
def handle_request(request):
    CACHE.append(bytearray(10_000))
framework.serve(handle_request, 100)
"""


def _flame(tmp_path, *options):
    (tmp_path / "framework.py").write_text(FRAMEWORK)
    (tmp_path / "app.py").write_text(APP)
    res = subprocess.run([sys.executable, "-m", "memhound", "run", "--snapshot", "app.snap",
                          *options, "app.py"], cwd=tmp_path, capture_output=True, text=True,
                         env=child_env(NO_COLOR=None), timeout=120)
    assert res.returncode == 0, res.stderr
    tree = _aggregate.flame_tree(_source.load_snapshot(str(tmp_path / "app.snap")))
    frames, nodes = tree["frames"], tree["nodes"]
    parent = nodes[0::4]
    frame = nodes[1::4]
    size = nodes[2::4]

    def path(i):
        out = []
        while i > 0:
            out.append(frames[frame[i]][:3])
            i = parent[i]
        return out[::-1]                   # root first
    return tree, [(path(i), size[i]) for i in range(1, len(parent))]


def _short(frame):
    return (os.path.basename(frame[0]), frame[2])


def test_handler_visible_under_framework(tmp_path):
    tree, paths = _flame(tmp_path)
    handler = [(p, s) for p, s in paths if _short(p[-1]) == ("app.py", "handle_request")]
    assert handler, [p for p, _ in paths]
    p, size = max(handler, key=lambda x: x[1])
    assert size >= 100 * 10_000
    # the whole call path, from the program's first line down to the handler
    assert _short(p[0]) == ("app.py", "<module>")
    assert [_short(f) for f in p[1:-1]] == [("framework.py", "serve")] + [
        ("framework.py", f"layer{i}") for i in range(LAYERS + 1)]
    own = os.path.join(SRC, "memhound")
    for p, _ in paths:
        files = [f[0] for f in p]
        # the launcher never shows; the import machinery only where it allocates
        assert not [f for f in files if f.startswith(own) or "runpy" in f], files
        assert not [f for f in files[:-1] if f in _aggregate.IMPORT_FRAMES], files
    # the import of the framework: app.py's import line, then the module itself
    registry = [p for p, s in paths if _short(p[-1]) == ("framework.py", "<module>")
                and s >= 200_000]
    assert registry and [_short(f) for f in registry[0]] == [("app.py", "<module>"),
                                                             ("framework.py", "<module>")]


def test_shallow_depth_loses_the_program(tmp_path):
    # what the default depth buys: with 16 frames the handler's path starts
    # inside the framework, and the app's own line is nowhere above it
    _tree, paths = _flame(tmp_path, "--frames", "16")
    handler = [p for p, _ in paths if _short(p[-1]) == ("app.py", "handle_request")]
    assert handler and _short(handler[0][0]) != ("app.py", "<module>")


def _both(snapshot):
    c = _aggregate._tree_c(snapshot.traces._data, snapshot, True)
    py = _aggregate._tree_python(snapshot, True)
    return c, py


def test_import_frames_collapse_in_any_snapshot():
    # the machinery's own allocations stay, as leaves; C and Python agree
    boot = "<frozen importlib._bootstrap>"
    raw = [(0, 100, (("lib.py", 2), (boot, 488), (boot, 1360), ("app.py", 1)), 4),
           (0, 30, ((boot, 700), ("app.py", 1)), 2)]
    c, py = _both(memhound.Snapshot(raw, 16))
    assert c == py
    frames, parent = c[0], c[1]
    assert [f[:2] for f in frames] == [("app.py", 1), ("lib.py", 2), (boot, 700)]
    assert parent == [-1, 0, 1, 1]        # lib.py and the leaf both under app.py


@pytest.mark.parametrize("seed", range(8))
def test_collapse_same_tree_as_python(seed):
    rng = random.Random(seed)
    runner = _aggregate.LAUNCHER_FRAMES.files[0]
    names = ["a.py", "b.py", "<frozen importlib._bootstrap>",
             "<frozen importlib._bootstrap_external>", "<frozen runpy>", runner]
    raw = []
    for _ in range(rng.choice([1, 50, 800])):
        depth = rng.randint(1, 9)
        tb = tuple((rng.choice(names), rng.randint(1, 4)) for _ in range(depth))
        raw.append((0, rng.choice([8, 64, 1000, 50000]), tb, depth))
    for meta in (None, {"memhound": {"argv": ["a.py"]}}):
        s = memhound.Snapshot(raw, 16)
        if meta:
            s.metadata = meta
        c, py = _both(s)
        assert c == py
        assert c[3][0] == sum(t[1] for t in raw)
