"""`memhound run` never shows itself: no memhound allocation, object or
frame in its snapshots (exit, peak, --signal, --interval), its peak figure or
its reports.  The program runs through _core.call_traced(), whose caller is
the root of every traceback: the launcher's frames are in none."""
import os
import re
import signal
import subprocess
import sys

import pytest

import memhound
from memhound.report import _aggregate, _source

from conftest import SRC, child_env

OWN = os.path.join(SRC, "memhound") + os.sep


def _run(argv, cwd):
    return subprocess.run([sys.executable, "-m", "memhound"] + argv, cwd=cwd,
                          capture_output=True, text=True, env=child_env(NO_COLOR=None),
                          timeout=120)


def _traced(report, what):
    """Bytes in a report line: 'live memory at exit: 1.5 KiB' -> 1536."""
    m = re.search(what + r": ([0-9.]+) (B|KiB|MiB)", report)
    return float(m.group(1)) * {"B": 1, "KiB": 1024, "MiB": 1024 ** 2}[m.group(2)]


def test_empty_script_reports_nothing(tmp_path):
    (tmp_path / "empty.py").write_text("")
    res = _run(["run", "--snapshot", "e.snap", "empty.py"], tmp_path)
    assert res.returncode == 0, res.stderr
    # Executing an empty module allocates at most a few hundred bytes in the
    # interpreter (the module's frame data, a dict slot); memhound's own set-up,
    # imports and report used to show here as ~240 KiB.
    assert _traced(res.stderr, "live memory at exit") <= 1024
    assert _traced(res.stderr, "at the peak") <= 4096
    snap = _source.load_snapshot(str(tmp_path / "e.snap"))
    current, peak = _source.metadata(snap)["memhound"]["traced"]
    assert current <= 1024 and peak <= 4096
    assert _aggregate.totals(snap)[0] <= 1024


def _memhound_frames(snapshot):
    """Frames of memhound's files in a snapshot's tracebacks."""
    return [f for stat in snapshot.statistics("traceback") for f in stat.traceback
            if f.filename.startswith(OWN)]


PROGRAM = """\
import os, signal, threading, time
def grow(n):
    return [bytes(5000) for i in range(n)]
keep = grow(100)
os.kill(os.getpid(), signal.SIGUSR2)
time.sleep(0.05)
def worker():
    global more
    more = grow(50)
t = threading.Thread(target=worker); t.start(); t.join()
os.kill(os.getpid(), signal.SIGUSR2)
time.sleep(0.1)
big = bytearray(3_000_000)
del big
"""


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no SIGUSR2 on this platform")
def test_signal_and_interval_snapshots_hold_only_the_program(tmp_path):
    (tmp_path / "srv.py").write_text(PROGRAM)
    res = _run(["run", "--signal", "USR2", "--interval", "0.02", "--snapshot", "srv.snap",
                "srv.py"], tmp_path)
    assert res.returncode == 0, res.stderr
    kinds = {}
    for path in sorted(tmp_path.glob("srv*.snap")):
        snap = _source.load_snapshot(str(path))
        kind = _source.metadata(snap)["memhound"]["kind"]
        kinds[kind] = kinds.get(kind, 0) + 1
        assert _memhound_frames(snap) == [], (path.name, kind)
        if kind.startswith("signal"):
            assert _aggregate.totals(snap)[0] >= 100 * 5000
    assert kinds.get("signal SIGUSR2") == 2 and kinds.get("exit") == 1 and kinds.get("interval")
    # the peak is the program's 3 MB bytearray on top of what it keeps, not
    # memhound's snapshots or report
    peak = _traced(res.stderr, "at the peak")
    assert 3_000_000 + 150 * 5000 <= peak <= 3_000_000 + 150 * 5000 + 64 * 1024
    # the reports leave the launcher out of tracebacks and cumulative sites
    for argv in (["compare", "srv.0001.snap", "srv.snap", "--group-by", "traceback"],
                 ["top", "srv.snap", "--cumulative", "--limit", "50"],
                 ["top", "srv.snap", "--group-by", "traceback", "--limit", "50"]):
        out = _run(argv, tmp_path)
        assert out.returncode == 0, out.stderr
        assert "srv.py" in out.stdout and OWN not in out.stdout and "runpy" not in out.stdout


def test_program_using_memhound_keeps_memhound_out(tmp_path):
    # A program that takes its own snapshots under `memhound run`: memhound's
    # objects (the snapshot it keeps) are not the program's memory.
    (tmp_path / "self.py").write_text(
        "import memhound\ndata = [bytearray(100) for _ in range(1000)]\n"
        "kept = memhound.take_snapshot()\n")
    res = _run(["run", "--snapshot", "s.snap", "self.py"], tmp_path)
    assert res.returncode == 0, res.stderr
    snap = memhound.Snapshot.load(str(tmp_path / "s.snap"))
    assert _memhound_frames(snap) == []
