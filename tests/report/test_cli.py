"""memhound command line: exact tables on fixed snapshots, bad input, help."""
import io
import os
import pickle
import sys

import pytest

import memhound
from memhound import cli
from memhound.report import terminal

MiB = 1024 * 1024

# Raw traces in tracemalloc's format: (domain, size, frames most recent first, total_nframe)
OLD = ([(0, MiB, (("app.py", 12), ("app.py", 30)), 2)] * 2
       + [(0, MiB, (("app.py", 12), ("app.py", 31)), 2),
          (0, 3000, (("lib/util.py", 5), ("app.py", 30)), 2)]
       + [(0, 48, (("lib/util.py", 7),), 1)] * 2)
NEW = OLD[:3] + [(0, 3000, (("lib/util.py", 5), ("app.py", 30)), 2)] * 5 + [
    (0, 2 * MiB, (("app.py", 40), ("app.py", 31)), 2)]


def make_snapshot(tmp_path, name, raw, limit=16, metadata=None):
    snap = memhound.Snapshot(tuple(raw), limit)
    if metadata is not None:
        snap.metadata = metadata
    path = tmp_path / name
    snap.dump(str(path))
    return str(path)


@pytest.fixture
def old(tmp_path):
    return make_snapshot(tmp_path, "old.snap", OLD)


@pytest.fixture
def new(tmp_path):
    return make_snapshot(tmp_path, "new.snap", NEW)


def run(capsys, *argv):
    status = cli.main(list(argv))
    out, err = capsys.readouterr()
    return status, out, err


def test_top_lineno_exact(capsys, old, monkeypatch):
    monkeypatch.chdir(os.path.dirname(old))
    status, out, err = run(capsys, "top", "old.snap")
    assert (status, err) == (0, "")
    assert out == (
        "old.snap: 3.0 MiB live in 6 blocks; top 3 by lineno\n"
        "#     Size  Share  Count  Average  Location\n"
        "1  3.0 MiB  99.9%      3  1.0 MiB  app.py:12\n"
        "2  2.9 KiB   0.1%      1  2.9 KiB  lib/util.py:5\n"
        "3     96 B   0.0%      2     48 B  lib/util.py:7\n")


def test_top_traceback_limit_exact(capsys, old, monkeypatch):
    monkeypatch.chdir(os.path.dirname(old))
    status, out, _ = run(capsys, "top", "old.snap", "--group-by", "traceback", "--limit", "2")
    assert status == 0
    assert out == (
        "old.snap: 3.0 MiB live in 6 blocks; top 2 by traceback, most recent call first\n"
        "#     Size  Share  Count  Average  Location\n"
        "1  2.0 MiB  66.6%      2  1.0 MiB  app.py:12\n"
        "                                   app.py:30\n"
        "2  1.0 MiB  33.3%      1  1.0 MiB  app.py:12\n"
        "                                   app.py:31\n")


def test_top_filename_cumulative_and_filters(capsys, old, monkeypatch):
    monkeypatch.chdir(os.path.dirname(old))
    status, out, _ = run(capsys, "top", "old.snap", "--group-by", "filename")
    assert out == (
        "old.snap: 3.0 MiB live in 6 blocks; top 2 by filename\n"
        "#     Size  Share  Count  Average  Location\n"
        "1  3.0 MiB  99.9%      3  1.0 MiB  app.py\n"
        "2  3.0 KiB   0.1%      3  1.0 KiB  lib/util.py\n")
    # cumulative: app.py:30 is in the tracebacks of 2 MiB + 3000 B
    status, out, _ = run(capsys, "top", "old.snap", "--cumulative", "--limit", "3")
    assert out == (
        "old.snap: 3.0 MiB live in 6 blocks; top 3 by lineno (cumulative)\n"
        "#     Size  Share  Count    Average  Location\n"
        "1  3.0 MiB  99.9%      3    1.0 MiB  app.py:12\n"
        "2  2.0 MiB  66.7%      3  683.6 KiB  app.py:30\n"
        "3  1.0 MiB  33.3%      1    1.0 MiB  app.py:31\n")
    status, out, _ = run(capsys, "top", "old.snap", "--include", "lib/*")
    assert out.splitlines()[0] == "old.snap: 3.0 KiB live in 3 blocks; top 2 by lineno"
    status, out, _ = run(capsys, "top", "old.snap", "--exclude", "lib/*", "--exclude", "nothing")
    assert [line.split()[-1] for line in out.splitlines()[2:]] == ["app.py:12"]


def test_compare_exact(capsys, old, new, monkeypatch):
    monkeypatch.chdir(os.path.dirname(old))
    status, out, err = run(capsys, "compare", "old.snap", "new.snap", "--limit", "3")
    assert (status, err) == (0, "")
    assert out == (
        "old.snap -> new.snap: 5.0 MiB live (+2.0 MiB) in 9 blocks (+3); top 3 changes by lineno\n"
        "#      Size     Change  Count  Change  Location\n"
        "1   2.0 MiB   +2.0 MiB      1      +1  app.py:40\n"
        "2  14.6 KiB  +11.7 KiB      5      +4  lib/util.py:5\n"
        "3       0 B      -96 B      0      -2  lib/util.py:7\n")
    status, out, err = run(capsys, "compare", "old.snap", "new.snap", "--limit", "2",
                           "--group-by", "traceback")
    assert out == (
        "old.snap -> new.snap: 5.0 MiB live (+2.0 MiB) in 9 blocks (+3); top 2 changes by "
        "traceback, most recent call first\n"
        "#      Size     Change  Count  Change  Location\n"
        "1   2.0 MiB   +2.0 MiB      1      +1  app.py:40\n"
        "                                       app.py:31\n"
        "2  14.6 KiB  +11.7 KiB      5      +4  lib/util.py:5\n"
        "                                       app.py:30\n")


def test_colour_only_on_tty_without_no_color(monkeypatch):
    class Tty(io.StringIO):
        def isatty(self):
            return True
    monkeypatch.delenv("NO_COLOR", raising=False)
    assert terminal.use_colour(Tty())
    assert not terminal.use_colour(io.StringIO())
    monkeypatch.setenv("NO_COLOR", "1")
    assert not terminal.use_colour(Tty())


def test_colour_output(monkeypatch, old, capsys):
    monkeypatch.delenv("NO_COLOR", raising=False)
    monkeypatch.setattr(terminal, "use_colour", lambda stream: True)
    status, out, _ = run(capsys, "compare", old, old)
    assert "\x1b[1m" in out
    monkeypatch.setattr(terminal, "use_colour", lambda stream: False)
    status, out, _ = run(capsys, "compare", old, old)
    assert "\x1b[" not in out


def test_format_size():
    assert [terminal.format_size(n) for n in (0, 1023, 1024, 1536, MiB - 1, 5 * MiB, 3 << 30)] == [
        "0 B", "1023 B", "1.0 KiB", "1.5 KiB", "1.0 MiB", "5.0 MiB", "3.0 GiB"]
    assert terminal.format_size(-2048, sign=True) == "-2.0 KiB"
    assert terminal.format_size(2048, sign=True) == "+2.0 KiB"


@pytest.mark.parametrize("argv, message", [
    (["top", "missing.snap"], "memhound: error: missing.snap: no such file\n"),
    (["top", "text.snap"], "memhound: error: memhound snapshot file 'text.snap': "
                           "not a memhound snapshot file (bad magic number)\n"),
    (["top", "empty.snap"], "memhound: error: empty.snap: empty file, not a snapshot\n"),
    (["top", "."], "memhound: error: .: is a directory, not a snapshot file\n"),
    (["top", "evil.snap"], "memhound: error: evil.snap: corrupted or foreign snapshot file "
                           "(contains os.system, not a snapshot)\n"),
    (["top", "list.snap"], "memhound: error: list.snap: contains a list, not a snapshot\n"),
    (["top", "old.snap", "--bogus"],
     "memhound: error: unrecognized arguments: --bogus (see 'memhound top --help')\n"),
    (["top", "old.snap", "--limit", "0"],
     "memhound: error: argument --limit: expected a positive integer, got '0' "
     "(see 'memhound top --help')\n"),
    (["top", "old.snap", "--group-by", "traceback", "--cumulative"],
     "memhound: error: --cumulative cannot be used with --group-by traceback\n"),
    (["compare", "old.snap"],
     "memhound: error: the following arguments are required: NEW (see 'memhound compare --help')\n"),
    (["html", "old.snap"],
     "memhound: error: the following arguments are required: -o/--output "
     "(see 'memhound html --help')\n"),
    (["nosuch"], None),
    (["run"], "memhound: error: run: expected a script or -m module (see 'memhound run --help')\n"),
    (["run", "--signal", "NOPE", "x.py"],
     "memhound: error: --signal: unknown or uncatchable signal 'NOPE' (try USR1 or USR2)\n"),
    (["run", "--frames", "x", "x.py"],
     "memhound: error: argument --frames: expected a positive integer, got 'x' "
     "(see 'memhound run --help')\n"),
    (["run", "--frames", "70000", "x.py"],
     "memhound: error: argument --frames: frames must be <= 65535, got 70000 "
     "(see 'memhound run --help')\n"),
    (["leaks", "app.py:f", "--bogus"],
     "memhound: error: unrecognized arguments: --bogus (see 'memhound leaks --help')\n"),
])
def test_bad_input_one_line(capsys, tmp_path, monkeypatch, argv, message):
    monkeypatch.chdir(tmp_path)
    make_snapshot(tmp_path, "old.snap", OLD)
    (tmp_path / "text.snap").write_text("hello\n")
    (tmp_path / "empty.snap").write_bytes(b"")
    (tmp_path / "list.snap").write_bytes(pickle.dumps([1, 2]))
    (tmp_path / "evil.snap").write_bytes(b"\x80\x04cos\nsystem\n(S'true'\ntR.")
    status, out, err = run(capsys, *argv)
    assert status != 0
    assert out == ""
    assert err.count("\n") == 1 and "Traceback" not in err
    if message is not None:
        assert err == message
    else:
        assert err.startswith("memhound: error: argument COMMAND: invalid choice: 'nosuch'")


def test_corrupted_snapshot(capsys, tmp_path, old):
    data = open(old, "rb").read()
    bad = tmp_path / "cut.snap"
    bad.write_bytes(data[: len(data) // 2])
    status, out, err = run(capsys, "top", str(bad))
    assert status == 1
    # memhound's loader names the file and the damaged section
    assert err.startswith(f"memhound: error: memhound snapshot file {str(bad)!r}: ")
    assert "truncated" in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("command", ["run", "top", "compare", "html", "export"])
def test_help_has_examples(capsys, command):
    status, out, err = run(capsys, command, "--help")
    assert status == 0
    assert f"usage: memhound {command}" in out
    assert "examples:\n  memhound " + command in out


def test_main_help_and_version(capsys):
    status, out, _ = run(capsys, "--help")
    assert status == 0
    for command in ("run", "top", "compare", "html", "export", "leaks"):
        assert f"\n    {command} " in out
    status, out, _ = run(capsys, "--version")
    assert status == 0
    assert out.startswith("memhound 0.1.0 (")
    status, out, err = run(capsys)
    assert status == 2 and "usage: memhound" in err


def test_export_formats(capsys, old, tmp_path):
    status, out, _ = run(capsys, "export", old, "--format", "collapsed", "-o", "-")
    assert status == 0
    assert out == ("app.py:30;app.py:12 2097152\n"
                   "app.py:31;app.py:12 1048576\n"
                   "app.py:30;lib/util.py:5 3000\n"
                   "lib/util.py:7 96\n")
    target = tmp_path / "out.json"
    status, _, err = run(capsys, "export", old, "--format", "speedscope", "-o", str(target))
    assert status == 0 and err == f"memhound: wrote {target}\n"
    import json
    doc = json.loads(target.read_text())
    prof = doc["profiles"][0]
    assert prof["unit"] == "bytes" and prof["type"] == "sampled"
    assert sum(prof["weights"]) == prof["endValue"] == 3 * MiB + 3000 + 96
    names = [[doc["shared"]["frames"][i]["name"] for i in s] for s in prof["samples"]]
    assert names[0] == ["app.py:30", "app.py:12"]


def test_write_error_is_one_line(capsys, old, tmp_path):
    status, out, err = run(capsys, "html", old, "-o", str(tmp_path / "no" / "such" / "r.html"))
    assert status == 1
    assert err == f"memhound: error: {tmp_path / 'no' / 'such' / 'r.html'}: No such file or directory\n"
