"""pprof export: the encoder checked field by field with a small protobuf
decoder, and the whole file checked against a real reader (``go tool pprof``)."""
import gzip
import os
import re
import shutil
import subprocess
import sys

import pytest

import memhound
from memhound import cli
from memhound.report import pprof, terminal

from conftest import child_env, marker_line

KiB = 1024


# ---------------------------------------------------------------- decoder

def _varint(buf, i):
    shift = value = 0
    while True:
        b = buf[i]
        i += 1
        value |= (b & 0x7F) << shift
        if b < 0x80:
            return value, i
        shift += 7


def _fields(buf):
    """(field number, wire type, value) of a message; value is an int or bytes."""
    i = 0
    out = []
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            value, i = _varint(buf, i)
        elif wire == 2:
            n, i = _varint(buf, i)
            value = bytes(buf[i:i + n])
            assert len(value) == n, "truncated field"
            i += n
        else:
            raise AssertionError(f"unexpected wire type {wire}")
        out.append((field, wire, value))
    assert i == len(buf)
    return out


def _ints(wire, value):
    """A repeated integer field's values, packed or not."""
    if wire == 0:
        return [value]
    out, i = [], 0
    while i < len(value):
        v, i = _varint(value, i)
        out.append(v)
    return out


def _signed(v):
    return v - (1 << 64) if v >= 1 << 63 else v


def decode(raw):
    """A Profile message as a dict of plain Python values."""
    p = {"sample_type": [], "sample": [], "location": {}, "function": {}, "string": [],
         "comment": [], "mapping": []}
    for field, wire, value in _fields(raw):
        if field == 1:
            vt = dict((f, v) for f, _, v in _fields(value))
            p["sample_type"].append((vt.get(1, 0), vt.get(2, 0)))
        elif field == 2:
            s = {"loc": [], "value": []}
            for f, w, v in _fields(value):
                if f == 1:
                    s["loc"] += _ints(w, v)
                elif f == 2:
                    s["value"] += [_signed(x) for x in _ints(w, v)]
            p["sample"].append(s)
        elif field == 3:
            p["mapping"].append(value)
        elif field == 4:
            loc = {"lines": []}
            for f, _, v in _fields(value):
                if f == 1:
                    loc["id"] = v
                elif f == 4:
                    line = dict((lf, lv) for lf, _, lv in _fields(v))
                    loc["lines"].append((line.get(1, 0), _signed(line.get(2, 0))))
            assert loc["id"] not in p["location"], "duplicate location id"
            p["location"][loc["id"]] = loc
        elif field == 5:
            fn = dict((f, v) for f, _, v in _fields(value))
            assert fn[1] not in p["function"], "duplicate function id"
            p["function"][fn[1]] = fn
        elif field == 6:
            p["string"].append(value.decode("utf-8"))
        elif field in (9, 12, 14):
            p[{9: "time_nanos", 12: "period", 14: "default_sample_type"}[field]] = value
        elif field == 11:
            vt = dict((f, v) for f, _, v in _fields(value))
            p["period_type"] = (vt.get(1, 0), vt.get(2, 0))
        elif field == 13:
            p["comment"] += _ints(wire, value)
    return p


def stacks(p):
    """{(frames leaf first as (function, file, line)): [count, size]} of a decoded profile."""
    st = p["string"]
    names = [st[t] + "/" + st[u] for t, u in p["sample_type"]]
    ic, isz = names.index("inuse_objects/count"), names.index("inuse_space/bytes")
    out = {}
    for s in p["sample"]:
        frames = []
        for lid in s["loc"]:
            (fid, line), = p["location"][lid]["lines"]
            fn = p["function"][fid]
            frames.append((st[fn[2]], st[fn[4]], line))
        acc = out.setdefault(tuple(frames), [0, 0])
        acc[0] += s["value"][ic]
        acc[1] += s["value"][isz]
    return out


# ---------------------------------------------------------------- encoder

RAW = ([(0, 1000, (("app.py", 12, "load"), ("app.py", 30, "main")), 2)] * 3
       + [(0, 64, (("lib/u.py", 5, "helper"), ("app.py", 12, "load"), ("app.py", 30, "main")), 3)]
       + [(0, 7, (("app.py", 40, "main"),), 1)] * 2)


def test_profile_fields_and_values():
    snap = memhound.Snapshot(tuple(RAW), 16)
    p = decode(pprof.profile(snap, time_nanos=1234567))
    st = p["string"]
    assert st[0] == ""
    assert [(st[t], st[u]) for t, u in p["sample_type"]] == [("inuse_objects", "count"),
                                                            ("inuse_space", "bytes")]
    assert st[p["default_sample_type"]] == "inuse_space"
    assert p["time_nanos"] == 1234567
    assert [st[x] for x in p["period_type"]] == ["space", "bytes"] and p["period"] == 1
    assert not any("estimate" in st[c] for c in p["comment"])
    assert stacks(p) == {
        (("load", "app.py", 12), ("main", "app.py", 30)): [3, 3000],
        (("helper", "lib/u.py", 5), ("load", "app.py", 12), ("main", "app.py", 30)): [1, 64],
        (("main", "app.py", 40),): [2, 14],
    }
    # one location per distinct frame, one function per (name, file)
    lines = [loc["lines"][0] for loc in p["location"].values()]
    assert len(lines) == len(set(lines)) == 4
    fnames = sorted(st[f[2]] for f in p["function"].values())
    assert fnames == ["helper", "load", "main"]
    assert len(set(st)) == len(st), "strings are interned"


def test_sampled_snapshot_says_estimates():
    memhound.start(1, sample_every=4 * KiB)
    try:
        kept = [bytearray(16 * KiB) for _ in range(200)]          # pprof-sampled
        snap = memhound.take_snapshot()
    finally:
        memhound.stop()
    p = decode(pprof.profile(snap, time_nanos=0))
    st = p["string"]
    assert p["period"] == 4 * KiB
    assert any("estimates" in st[c] and str(4 * KiB) in st[c] for c in p["comment"])
    line = marker_line(__file__, "pprof-sampled")
    size = sum(v[1] for frames, v in stacks(p).items() if frames[0][1:] == (__file__, line))
    # the weights are applied: the estimate of the site is near its 3.2 MB
    assert 0.8 * 200 * 16 * KiB < size < 1.25 * 200 * 16 * KiB, size
    del kept


def test_stdlib_frames_and_empty_tracebacks():
    import tracemalloc
    std = tracemalloc.Snapshot([(0, 100, (("a.py", 3), ("a.py", 9)), 2), (0, 50, (), 0),
                                (0, 20, (("a.py", 4),), 1)], 4)
    p = decode(pprof.profile(memhound.Snapshot.from_tracemalloc(std), time_nanos=0))
    got = stacks(p)
    # unknown function names become "file:line", so per-function views keep lines apart
    assert got[(("a.py:3", "a.py", 3), ("a.py:9", "a.py", 9))] == [1, 100]
    assert got[(("a.py:4", "a.py", 4),)] == [1, 20]
    assert got[(("<unknown>", "<unknown>", 0),)] == [1, 50]


def test_launcher_frames_left_out_of_run_snapshots():
    from memhound.runner import LAUNCHER_FILES
    runner_py = LAUNCHER_FILES[0]
    raw = [(0, 100, (("app.py", 3, "f"), (runner_py, 90, "_run_script"), (runner_py, 60, "run"),
                     ("cli.py", 8, "main")), 4)]
    snap = memhound.Snapshot(tuple(raw), 8)
    assert list(stacks(decode(pprof.profile(snap, 0)))) == [
        (("f", "app.py", 3), ("_run_script", runner_py, 90), ("run", runner_py, 60),
         ("main", "cli.py", 8))]
    snap.metadata = {"memhound": {"argv": ["app.py"]}}
    assert list(stacks(decode(pprof.profile(snap, 0)))) == [(("f", "app.py", 3),)]


def test_negative_and_zero_line_numbers():
    raw = [(0, 10, (("a.py", -1, "f"), ("a.py", 0, "<module>")), 2)]
    assert stacks(decode(pprof.profile(memhound.Snapshot(tuple(raw), 2), 0))) == {
        (("f", "a.py", -1), ("<module>", "a.py", 0)): [1, 10]}


def test_non_utf8_names_are_escaped():
    raw = [(0, 10, (("caf\udce9.py", 1, "f\udcff"),), 1)]
    p = decode(pprof.profile(memhound.Snapshot(tuple(raw), 1), 0))
    (frames,) = stacks(p)
    assert frames == (("f\\udcff", "caf\\udce9.py", 1),)


def test_many_tracebacks_match_statistics():
    raw = [(0, 8 + i % 100, (("m%d.py" % (i % 50), i % 1000, "f%d" % (i % 7)),
                             ("root.py", i % 3, "main")), 2) for i in range(30000)]
    snap = memhound.Snapshot(tuple(raw), 2)
    got = stacks(decode(pprof.profile(snap, 0)))
    # statistics() tracebacks iterate oldest first; the profile's stacks are leaf first
    want = {tuple((f.function, f.filename, f.lineno) for f in reversed(list(stat.traceback))):
            [stat.count, stat.size] for stat in snap.statistics("traceback")}
    assert got == want


def test_live_snapshot_and_gzip(tmp_path):
    memhound.start(8)
    try:
        blobs = [bytearray(3000) for _ in range(50)]           # pprof-live
        snap = memhound.take_snapshot()
    finally:
        memhound.stop()
    line = marker_line(__file__, "pprof-live")
    raw = gzip.decompress(pprof.dumps(snap))
    got = stacks(decode(raw))
    here = [(frames, v) for frames, v in got.items()
            if frames[0][1] == __file__ and frames[0][2] == line]
    assert here and sum(v[0] for _, v in here) >= 50 and sum(v[1] for _, v in here) >= 150000
    assert here[0][0][0][0].endswith("test_live_snapshot_and_gzip")
    del blobs


# ---------------------------------------------------------------- command line

def test_cli_export_pprof(tmp_path, capsys):
    path = tmp_path / "a.snap"
    memhound.Snapshot(tuple(RAW), 16).dump(str(path))
    out = tmp_path / "a.pb.gz"
    assert cli.main(["export", str(path), "--format", "pprof", "-o", str(out)]) == 0
    assert "wrote" in capsys.readouterr().err
    assert sum(v[1] for v in stacks(decode(gzip.decompress(out.read_bytes()))).values()) == 3078
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".memhound-")]


@pytest.mark.parametrize("argv, words", [
    (["export", "{snap}", "--format", "pprof", "-o", "{tmp}/missing-dir/out.pb.gz"],
     "missing-dir/out.pb.gz"),
    (["export", "{tmp}/none.snap", "--format", "pprof", "-o", "{tmp}/x.pb.gz"], "no such file"),
    (["export", "{snap}", "--format", "protobuf", "-o", "{tmp}/x"], "invalid choice"),
])
def test_cli_export_pprof_errors(tmp_path, capsys, argv, words):
    snap = tmp_path / "a.snap"
    memhound.Snapshot(tuple(RAW), 16).dump(str(snap))
    argv = [a.format(snap=snap, tmp=tmp_path) for a in argv]
    status = cli.main(argv)
    err = capsys.readouterr().err
    assert status in (1, 2) and len(err.strip().splitlines()) == 1 and words in err


# ---------------------------------------------------------------- go tool pprof

GO = shutil.which("go")

# One allocating line per function, so that pprof's per-function rows and
# memhound's per-line rows name the same sites.
PROGRAM = """\
def load_users():
    return bytearray(800000)


def build_index():
    return bytes(300000)


def small_cache():
    return bytearray(50000)


users, index, cache = load_users(), build_index(), small_cache()
"""


def _memhound_top(snap_path, limit):
    proc = subprocess.run([sys.executable, "-m", "memhound", "top", snap_path, "--limit",
                           str(limit)], capture_output=True, text=True, env=child_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    rows = []
    for text in proc.stdout.splitlines():
        m = re.match(r"\s*\d+\s+(\S+ \S+)\s+\S+%\s+\S+\s+\S+ \S+\s+(\S+:\d+) in (\S+)", text)
        if m:
            rows.append((m.group(2), m.group(3), m.group(1)))
    assert rows, proc.stdout
    return rows


def _go_top(pb_path, tmp_path, lines):
    argv = [GO, "tool", "pprof", "-top", "-sample_index=inuse_space", "-unit=B"]
    argv += ["-lines"] if lines else []
    # Newer Go builds `go tool pprof` on first use into the user's build
    # cache: keep HOME (and so that cache), or every run rebuilds it.
    proc = subprocess.run(argv + [pb_path], capture_output=True, text=True, timeout=600,
                          env=dict(os.environ, PPROF_TMPDIR=str(tmp_path)))
    assert proc.returncode == 0, proc.stderr
    rows = []
    for text in proc.stdout.splitlines():
        m = re.match(r"\s*(\d+)B\s+\S+%\s+\S+%\s+\S+\s+\S+%\s+(.*)$", text)
        if m and int(m.group(1)) > 0:
            rows.append((m.group(2).strip(), int(m.group(1))))
    assert rows, proc.stdout + proc.stderr
    return rows


@pytest.mark.skipif(GO is None, reason="go is not installed (Debian: apt-get install golang-go); "
                                       "the profile is checked by the decoder tests only")
def test_go_tool_pprof_agrees_with_memhound_top(tmp_path):
    script = tmp_path / "service.py"
    script.write_text(PROGRAM)
    snap_path, pb_path = str(tmp_path / "svc.snap"), str(tmp_path / "svc.pb.gz")
    proc = subprocess.run([sys.executable, "-m", "memhound", "run", "--snapshot", snap_path,
                           str(script)], capture_output=True, text=True, env=child_env(),
                          timeout=120)
    assert proc.returncode == 0, proc.stderr
    assert cli.main(["export", snap_path, "--format", "pprof", "-o", pb_path]) == 0
    top = _memhound_top(snap_path, 3)
    assert [t[1] for t in top] == ["load_users", "build_index", "small_cache"]
    # by line: pprof's "function file:line" rows, the same sizes in bytes
    by_line = _go_top(pb_path, tmp_path, lines=True)
    go_sizes = {}
    for name, size in by_line:
        where = name.rsplit(" ", 1)[-1]
        go_sizes[where] = go_sizes.get(where, 0) + size
    for where, function, size_text in top:
        assert where in go_sizes, (where, by_line)
        assert terminal.format_size(go_sizes[where]) == size_text, (where, go_sizes[where])
    top_lines = [name.rsplit(" ", 1)[-1] for name, _ in by_line[:len(top)]]
    assert top_lines == [t[0] for t in top]
    # by function (pprof's default): one line per function here, same order
    by_function = _go_top(pb_path, tmp_path, lines=False)
    assert [name for name, _ in by_function[:len(top)]] == [t[1] for t in top]
    # and the exact bytes of the snapshot's statistics
    stats = memhound.Snapshot.load(snap_path).statistics("lineno")[:len(top)]
    assert [s.size for s in stats] == [size for _, size in by_line[:len(top)]]


# ---------------------------------------------------------------- memhound run --pprof

RUN_PROGRAM = """\
import gzip, os, sys, time
path = sys.argv[1]
keep = [bytearray(100000) for _ in range(5)]            # kept
seen = 0
deadline = time.monotonic() + 60
while time.monotonic() < deadline and seen < 2:          # two interval writes
    if os.path.exists(path):
        stamp = os.stat(path).st_mtime_ns
        with open(path, "rb") as fp:
            gzip.decompress(fp.read())                  # always a whole file
        while time.monotonic() < deadline and os.path.exists(path) \\
                and os.stat(path).st_mtime_ns == stamp:
            time.sleep(0.01)
        seen += 1
    time.sleep(0.01)
print("seen", seen)
"""


def test_run_pprof_every_interval_and_at_exit(tmp_path):
    from memhound.runner import LAUNCHER_FILES
    script = tmp_path / "prog.py"
    script.write_text(RUN_PROGRAM)
    out = tmp_path / "prog.pb.gz"
    proc = subprocess.run([sys.executable, "-m", "memhound", "run", "--pprof", str(out),
                           "--interval", "0.2", str(script), str(out)],
                          capture_output=True, text=True, env=child_env(), timeout=180)
    assert proc.returncode == 0, proc.stderr
    assert "seen 2" in proc.stdout and f"wrote {out}" in proc.stderr
    p = decode(gzip.decompress(out.read_bytes()))
    got = stacks(p)
    line = marker_line(str(script), "kept")
    kept = [v for frames, v in got.items() if frames[0][1:] == (str(script), line)]
    assert sum(v[1] for v in kept) >= 500000
    # the launcher's frames are not in the profile, nor memhound's own files
    files = {frame[1] for frames in got for frame in frames}
    assert not files & set(LAUNCHER_FILES)
    assert not [f for f in files if os.sep + "memhound" + os.sep in f]
    assert not [n for n in os.listdir(tmp_path) if n.startswith(".memhound-")]
