"""Report data (flame tree, sites, timeline), exports and the HTML file."""
import json
import os
import re

import pytest

import memhound
from memhound.report import _aggregate, export, html
from memhound.report._source import SnapshotError

from conftest import SAMPLE_LEAK_REPORT

MiB = 1024 * 1024
RAW = ([(0, MiB, (("app.py", 12), ("app.py", 30)), 2)] * 2
       + [(0, MiB, (("app.py", 12), ("app.py", 31)), 2),
          (0, 3000, (("lib/util.py", 5), ("app.py", 30)), 2)]
       + [(0, 48, (("lib/util.py", 7),), 1)] * 2)


def snapshot(raw=RAW, metadata=None):
    snap = memhound.Snapshot(tuple(raw), 16)
    if metadata is not None:
        snap.metadata = metadata
    return snap


def test_flame_tree_exact():
    tree = _aggregate.flame_tree(snapshot())
    frames = [tuple(f) for f in tree["frames"]]
    nodes = [tuple(tree["nodes"][i:i + 4]) for i in range(0, len(tree["nodes"]), 4)]
    named = [(nodes[p][1] if p >= 0 else None, frames[f] if f >= 0 else None, size, count)
             for p, f, size, count in nodes]
    # root, then one node per distinct (caller path, frame), parents first
    assert (tree["total_size"], tree["total_count"], tree["pruned"]) == (3 * MiB + 3096, 6, 0)
    by_path = {}
    for i, (p, f, size, count) in enumerate(nodes):
        path = (by_path[p] if p >= 0 else ()) + ((frames[f][0], frames[f][1]),) if f >= 0 else ()
        by_path[i] = path
        assert p < i
    sizes = {by_path[i]: (n[2], n[3]) for i, n in enumerate(nodes)}
    assert sizes == {
        (): (3 * MiB + 3096, 6),
        (("app.py", 30),): (2 * MiB + 3000, 3),
        (("app.py", 30), ("app.py", 12)): (2 * MiB, 2),
        (("app.py", 30), ("lib/util.py", 5)): (3000, 1),
        (("app.py", 31),): (MiB, 1),
        (("app.py", 31), ("app.py", 12)): (MiB, 1),
        (("lib/util.py", 7),): (96, 2),
    }
    assert named  # every node resolved
    assert tree["sites"] == {("app.py", 12, None): [3 * MiB, 3], ("lib/util.py", 5, None): [3000, 1],
                             ("lib/util.py", 7, None): [96, 2]}


def test_flame_tree_pruning_keeps_totals_and_ancestors():
    raw = [(0, 1000 + i, (("leaf.py", i), ("mid.py", i % 7), ("top.py", 1)), 3) for i in range(500)]
    tree = _aggregate.flame_tree(snapshot(raw), max_nodes=50)
    nodes = tree["nodes"]
    n = len(nodes) // 4
    assert n == 50 and tree["pruned"] == 1 + 1 + 7 + 500 - 50
    assert nodes[2] == sum(1000 + i for i in range(500))          # root size exact
    for i in range(1, n):
        parent = nodes[4 * i]
        assert 0 <= parent < i
        assert nodes[4 * i + 2] <= nodes[4 * parent + 2]
    # the kept leaves are the biggest ones
    leaf_sizes = sorted(nodes[4 * i + 2] for i in range(n) if tree["frames"][nodes[4 * i + 1]][0] == "leaf.py")
    assert leaf_sizes[0] >= 1000 + 500 - len(leaf_sizes)


def test_launcher_frames_are_stripped():
    cli_file = _aggregate.LAUNCHER_FRAMES.files[0]
    raw = [(0, 100, (("prog.py", 3), ("<frozen runpy>", 88), (cli_file, 600), (cli_file, 200),
                     ("/usr/bin/memhound", 8)), 5)]
    from_run = {"memhound": {"kind": "exit", "argv": ["prog.py"]}}
    stacks = [(tuple(frames), size, count)
              for frames, _functions, size, count in _aggregate.stacks(snapshot(raw, from_run))]
    assert stacks == [((("prog.py", 3),), 100, 1)]
    for snap, strip in ((snapshot(raw, from_run), False), (snapshot(raw), True)):
        root = list(_aggregate.stacks(snap, strip_launcher=strip))[0][0][0]
        assert tuple(root) == ("/usr/bin/memhound", 8)


def test_collapsed_and_speedscope():
    text = export.collapsed(snapshot())
    assert text.splitlines() == ["app.py:30;app.py:12 2097152", "app.py:31;app.py:12 1048576",
                                 "app.py:30;lib/util.py:5 3000", "lib/util.py:7 96"]
    doc = json.loads(export.speedscope(snapshot(), name="t"))
    assert doc["$schema"] == "https://www.speedscope.app/file-format-schema.json"
    prof = doc["profiles"][0]
    assert prof["weights"] == [2 * MiB, MiB, 3000, 96]
    frames = doc["shared"]["frames"]
    assert [[frames[i]["file"] + ":" + str(frames[i]["line"]) for i in s] for s in prof["samples"]] == [
        ["app.py:30", "app.py:12"], ["app.py:31", "app.py:12"], ["app.py:30", "lib/util.py:5"],
        ["lib/util.py:7"]]


def test_report_data_and_timeline(tmp_path):
    meta = {"memhound": {"kind": "exit", "time": 2.5, "timeline": [[0, 0, 0], [1.0, 100, 150], [2.5, 90, 150]]}}
    report = html.report_from_snapshots([("a.snap", snapshot(metadata=meta))], title="t")
    assert report["timeline"] == {"unit": "s", "points": [[0.0, 0, 0], [1.0, 100, 150], [2.5, 90, 150]],
                                  "marks": [[2.5, 3 * MiB + 3096, "a.snap"]]}
    assert report["sites"][0] == ["app.py", 12, None, 3 * MiB, 3]
    # several snapshot files without recorded timeline: one point per file
    report = html.report_from_snapshots([("a", snapshot(RAW[:1])), ("b", snapshot(RAW))])
    assert report["timeline"]["unit"] == "snapshot"
    assert report["timeline"]["points"] == [[0, MiB, MiB], [1, 3 * MiB + 3096, 3 * MiB + 3096]]
    assert html.report_from_snapshots([("a", snapshot())])["timeline"] is None


def test_html_is_self_contained_and_escaped(tmp_path):
    raw = [(0, 10, (("</script><script>alert(1)</script>.py", 1),), 1)] + RAW
    report = html.report_from_snapshots([("x", snapshot(raw))], title="<b>&title")
    text = html.render(report)
    assert "<title>&lt;b&gt;&amp;title - memhound</title>" in text
    assert "</script><script>alert(1)" not in text
    assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", text)
    assert "@import" not in text
    data = re.search(r'<script id="mh-data" type="application/json">(.*?)</script>', text, re.S).group(1)
    assert json.loads(data)["flame"]["total_size"] == 3 * MiB + 3106


def test_build_report_inputs_and_errors(tmp_path):
    snap_path = tmp_path / "a.snap"
    snapshot().dump(str(snap_path))
    leak_path = tmp_path / "leaks.json"
    leak_path.write_text(json.dumps(SAMPLE_LEAK_REPORT))
    report = html.build_report([str(snap_path), str(leak_path)])
    assert report["title"] == "a.snap"
    assert report["leaks"][0]["groups"][0]["cause"] == "global-collection"
    bad = tmp_path / "bad.json"
    bad.write_text('{"not": "a leak report"}')
    with pytest.raises(SnapshotError, match=r"bad.json: JSON file is not a leak report \(no 'groups' list\)"):
        html.build_report([str(bad)])
    broken = tmp_path / "broken.json"
    broken.write_text('{"groups": [')
    with pytest.raises(SnapshotError, match=r"broken.json: invalid JSON"):
        html.build_report([str(broken)])
    with pytest.raises(SnapshotError, match=r"nope.snap: no such file"):
        html.build_report([str(tmp_path / "nope.snap")])


def test_stdlib_and_memhound_snapshots_give_the_same_report():
    import tracemalloc
    std = tracemalloc.Snapshot(tuple(RAW), 16)
    ours = snapshot()
    assert type(ours) is not type(std)

    def canonical(tree):
        nodes, frames = tree["nodes"], tree["frames"]
        paths = {}
        out = {}
        for i in range(0, len(nodes), 4):
            parent, frame = nodes[i], nodes[i + 1]
            paths[i // 4] = (paths[parent // 1] if parent >= 0 else ()) + (
                (tuple(frames[frame]),) if frame >= 0 else ())
            out[paths[i // 4]] = (nodes[i + 2], nodes[i + 3])
        return out, tree["sites"], tree["total_size"], tree["total_count"]

    assert canonical(_aggregate.flame_tree(std)) == canonical(_aggregate.flame_tree(ours))
    assert export.collapsed(std) == export.collapsed(ours)


@pytest.mark.parametrize("name", ["memhound.report.terminal", "memhound.report._aggregate",
                                  "memhound.report._source", "memhound.report.html",
                                  "memhound.report.export", "memhound.cli"])
def test_docstring_examples(name):
    import doctest
    import importlib
    result = doctest.testmod(importlib.import_module(name), optionflags=doctest.ELLIPSIS)
    assert result.failed == 0
