"""`memhound run` runs a program exactly like the interpreter does."""
import json
import os
import re
import signal
import subprocess
import sys
import textwrap

import pytest

from memhound.report import _source

from conftest import SRC, child_env

PROGRAM = textwrap.dedent("""\
    import sys
    data = [bytearray(1000) for _ in range(2000)]
    print("argv", sys.argv, __name__, __file__ == sys.argv[0] or __file__)
    print("path0", sys.path[0])
    print("stdin", sys.stdin.read().strip())
    import pickle
    class Thing: pass
    print("pickle", len(pickle.dumps(Thing())) > 0)
    def fail():
        raise ValueError("boom")
    mode = sys.argv[-1]
    if mode == "raise": fail()
    if mode == "exit3": sys.exit(3)
    if mode == "exitmsg": sys.exit("bye now")
    if mode == "syntax": exec("def (")
""")


def _run(argv, cwd, stdin="hello"):
    return subprocess.run([sys.executable] + argv, cwd=cwd, input=stdin, capture_output=True,
                          text=True, env=child_env(NO_COLOR=None), timeout=120)


@pytest.fixture
def prog(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    return tmp_path


@pytest.mark.parametrize("mode", ["", "raise", "exit3", "exitmsg", "syntax"])
def test_script_like_python(prog, mode):
    # "--top" after the script belongs to the program, not to memhound
    args = ["prog.py", "--top"] + ([mode] if mode else [])
    plain = _run(args, prog)
    under = _run(["-m", "memhound", "run", "--top", "3"] + args, prog)
    assert under.returncode == plain.returncode
    assert under.stdout == plain.stdout
    # the program's own stderr (traceback) comes first, unchanged; then the report
    assert under.stderr.startswith(plain.stderr)
    report = under.stderr[len(plain.stderr):]
    assert report.startswith("memhound: live memory at exit: ")
    # biggest site: the list of bytearrays on line 2 (function shown when known)
    assert re.search(r"prog\.py:2( in <(module|listcomp)>)?$", report.splitlines()[2])
    assert "memhound: at the peak: " in report
    for launcher in ("cli.py", "runner.py"):
        assert launcher not in plain.stderr and launcher not in under.stderr[:len(plain.stderr)]


def test_expected_exit_statuses(prog):
    assert _run(["-m", "memhound", "run", "prog.py", "exit3"], prog).returncode == 3
    assert _run(["-m", "memhound", "run", "prog.py", "raise"], prog).returncode == 1
    assert _run(["-m", "memhound", "run", "prog.py"], prog).returncode == 0


def test_program_options_are_not_memhound_options(prog):
    under = _run(["-m", "memhound", "run", "prog.py", "--top", "x", "-m", "y"], prog)
    assert under.returncode == 0
    assert under.stdout.startswith("argv ['prog.py', '--top', 'x', '-m', 'y'] __main__ ")


def test_module_like_python_m(prog):
    for mode in ("", "raise", "exit3"):
        args = ["-m", "prog"] + ([mode] if mode else [])
        plain = _run(args, prog)
        under = _run(["-m", "memhound", "run", "--top", "2"] + args, prog)
        assert (under.returncode, under.stdout) == (plain.returncode, plain.stdout)
        assert under.stderr.startswith(plain.stderr)
        assert "memhound: live memory at exit" in under.stderr


def test_missing_script_and_module(prog):
    res = _run(["-m", "memhound", "run", "nope.py"], prog)
    assert res.returncode == 2
    assert res.stderr == (f"memhound: can't open file {str(prog / 'nope.py')!r}: "
                          "[Errno 2] No such file or directory\n")
    res = _run(["-m", "memhound", "run", "-m", "no_such_module_xyz"], prog)
    plain = _run(["-m", "no_such_module_xyz"], prog)
    assert res.returncode == plain.returncode == 1
    assert res.stderr.splitlines()[0] == plain.stderr.splitlines()[0]


def test_snapshot_html_and_interval_files(prog):
    res = _run(["-m", "memhound", "run", "--snapshot", "out.snap", "--html", "out.html",
                "--interval", "0.01", "prog.py"], prog)
    assert res.returncode == 0, res.stderr
    assert "memhound: wrote out.snap\n" in res.stderr
    assert "memhound: wrote out.html\n" in res.stderr
    snap = _source.load_snapshot(str(prog / "out.snap"))
    meta = _source.metadata(snap)["memhound"]
    assert meta["kind"] == "exit"
    assert len(meta["timeline"]) >= 2
    assert all(len(p) == 3 for p in meta["timeline"])
    top = snap.statistics("lineno")[0]
    assert top.traceback[0].filename == str(prog / "prog.py") and top.traceback[0].lineno == 2
    assert top.size >= 2000 * 1000
    # memhound never reports its own allocations
    own = os.path.join(SRC, "memhound")
    assert not [s for s in snap.statistics("lineno") if s.traceback[0].filename.startswith(own)]
    html = (prog / "out.html").read_text()
    # the heading reads "memhound run prog.py" (the logo, then the title)
    assert "<title>run prog.py - memhound</title>" in html
    # the flame graph starts at the program: the launcher's frames are stripped
    data = json.loads(re.search(r'<script id="mh-data" type="application/json">(.*?)</script>',
                                html, re.S).group(1).replace("<\\/", "</"))
    files = {frame[0] for frame in data["flame"]["frames"]}
    assert str(prog / "prog.py") in files
    assert not {f for f in files if f.startswith(own) or "runpy" in f}, files
    res = _run(["-m", "memhound", "top", "out.snap", "--limit", "1"], prog)
    assert re.search(re.escape(f"{prog / 'prog.py'}:2") + "( in <(module|listcomp)>)?$", res.stdout.splitlines()[2])


def test_interval_writes_numbered_snapshots(tmp_path):
    (tmp_path / "slow.py").write_text("import time\nx = []\nfor i in range(30):\n"
                                      "    x.append(bytearray(10000))\n    time.sleep(0.01)\n")
    res = _run(["-m", "memhound", "run", "--snapshot", "s.snap", "--interval", "0.05", "slow.py"],
               tmp_path)
    assert res.returncode == 0, res.stderr
    numbered = sorted(p.name for p in tmp_path.glob("s.0*.snap"))
    assert numbered and numbered[0] == "s.0001.snap"
    first = _source.load_snapshot(str(tmp_path / numbered[0]))
    assert _source.metadata(first)["memhound"]["kind"] == "interval"


@pytest.mark.skipif(not hasattr(signal, "SIGUSR2"), reason="no SIGUSR2 on this platform")
def test_signal_writes_snapshot(tmp_path):
    (tmp_path / "srv.py").write_text(
        "import os, signal, time\nkeep = [bytes(5000) for i in range(100)]\n"
        "os.kill(os.getpid(), signal.SIGUSR2)\ntime.sleep(0.05)\nprint('still running')\n")
    res = _run(["-m", "memhound", "run", "--signal", "USR2", "--snapshot", "srv.snap", "srv.py"],
               tmp_path)
    assert res.returncode == 0, res.stderr
    assert res.stdout == "still running\n"
    assert "memhound: wrote srv.0001.snap\n" in res.stderr
    snap = _source.load_snapshot(str(tmp_path / "srv.0001.snap"))
    assert _source.metadata(snap)["memhound"]["kind"] == "signal SIGUSR2"
    sites = {(s.traceback[0].filename, s.traceback[0].lineno) for s in snap.statistics("lineno")}
    assert (str(tmp_path / "srv.py"), 2) in sites


def test_keyboard_interrupt_dies_of_sigint(tmp_path):
    (tmp_path / "ki.py").write_text("raise KeyboardInterrupt\n")
    plain = _run(["ki.py"], tmp_path)
    under = _run(["-m", "memhound", "run", "ki.py"], tmp_path)
    assert under.returncode == plain.returncode == -signal.SIGINT
    assert under.stderr.startswith(plain.stderr)


def test_unwritable_outputs_and_closed_stderr(prog):
    res = _run(["-m", "memhound", "run", "--html", "no/such/dir/r.html", "prog.py", "exit3"], prog)
    assert res.returncode == 3                      # the program's status wins
    assert "memhound: error: cannot write no/such/dir/r.html: No such file or directory\n" in res.stderr
    res = _run(["-m", "memhound", "run", "--snapshot", "no/such/s.snap", "prog.py"], prog)
    assert res.returncode == 1
    # stderr closed early (memhound run ... 2>&1 | head): the files are still written
    read_end, write_end = os.pipe()
    os.close(read_end)                              # every write to stderr fails: EPIPE
    try:
        proc = subprocess.run([sys.executable, "-m", "memhound", "run", "--html", "ok.html",
                               "--snapshot", "ok.snap", "prog.py"], cwd=prog, input="",
                              stdout=subprocess.DEVNULL, stderr=write_end, env=child_env(NO_COLOR=None),
                              timeout=120, text=True)
    finally:
        os.close(write_end)
    assert (prog / "ok.html").exists() and (prog / "ok.snap").exists()


def test_non_daemon_threads_finish_before_the_report(tmp_path):
    (tmp_path / "thr.py").write_text(
        "import threading, time, atexit\n"
        "keep = []\n"
        "def work():\n"
        "    time.sleep(0.2)\n"
        "    keep.append(bytearray(3000000))\n"
        "    print('thread done', flush=True)\n"
        "atexit.register(lambda: print('atexit', flush=True))\n"
        "threading.Thread(target=work).start()\n"
        "print('main done', flush=True)\n")
    plain = _run(["thr.py"], tmp_path)
    under = _run(["-m", "memhound", "run", "--top", "1", "thr.py"], tmp_path)
    assert under.returncode == plain.returncode == 0
    assert under.stdout == plain.stdout == "main done\nthread done\natexit\n"
    top = under.stderr.splitlines()[2]
    assert "2.9 MiB" in top and "thr.py:5" in top
