"""``memhound attach PID`` against a real server: a threaded http.server in a
child process (leaky_app.py) that leaks one Record per /leak request into a
module-level registry.

The attaching side runs in this process (cli.main), so the server is its
child, as Yama's ptrace scope 1 requires.  Tests that inject code need
CPython 3.14+ and a working sys.remote_exec (root, or a permissive ptrace
scope); elsewhere they skip and say why, and the refusals that need no
injection still run (a 3.11-3.13 target is refused for its version).
"""
import json
import os
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from conftest import SRC, child_env, marker_line
from memhound import cli

HERE = os.path.dirname(os.path.abspath(__file__))
APP = os.path.join(HERE, "leaky_app.py")
CYCLES = int(os.environ.get("MEMHOUND_ATTACH_CYCLES", "50"))


def _probe_remote_exec():
    """None when sys.remote_exec works into a child here, else why not."""
    if sys.version_info < (3, 14):
        return "sys.remote_exec needs CPython 3.14+ (this is %d.%d)" % sys.version_info[:2]
    import tempfile
    with tempfile.TemporaryDirectory() as d:
        flag = os.path.join(d, "flag")
        script = os.path.join(d, "probe.py")
        with open(script, "w") as f:
            f.write("open(%r, 'w').close()\n" % flag)
        child = subprocess.Popen([sys.executable, "-c", "import time\nfor _ in range(200): time.sleep(0.02)"])
        try:
            time.sleep(0.2)
            try:
                sys.remote_exec(child.pid, script)
            except Exception as exc:   # PermissionError with a strict ptrace scope, ...
                return "sys.remote_exec does not work here: %s: %s" % (type(exc).__name__, exc)
            deadline = time.monotonic() + 5
            while not os.path.exists(flag):
                if time.monotonic() > deadline:
                    return "sys.remote_exec into a child did not run within 5 s"
                time.sleep(0.01)
        finally:
            child.kill()
            child.wait()
    return None


_WHY_NOT = []


def needs_remote_exec():
    if not _WHY_NOT:
        _WHY_NOT.append(_probe_remote_exec())
    if _WHY_NOT[0]:
        pytest.skip(_WHY_NOT[0])


class Server:
    """leaky_app.py in a child process, with a few helpers."""

    def __init__(self, *extra, env=None):
        self.proc = subprocess.Popen([sys.executable, APP, *extra], stdout=subprocess.PIPE,
                                     env=env or child_env(), text=True)
        self.port = int(self.proc.stdout.readline())
        self.pid = self.proc.pid
        self.errors = []
        self.answered = 0

    def get(self, path, timeout=30):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.port, path), timeout=timeout) as r:
            return r.read()

    def state(self):
        return json.loads(self.get("/state"))

    def load(self, stop, path="/leak", pause=0.002):
        """Requests until `stop` is set; failures are kept in self.errors."""
        while not stop.is_set():
            try:
                if self.get(path) not in (b"ok", b"hello"):
                    self.errors.append("bad answer")
                self.answered += 1
            except Exception as exc:
                self.errors.append(repr(exc))
            time.sleep(pause)

    def close(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdout.close()


@pytest.fixture
def server():
    s = Server()
    try:
        yield s
    finally:
        s.close()


def attach(capsys, *argv):
    """cli.main(["attach", ...]) -> (status, stdout, stderr)."""
    status = cli.main(["attach", *map(str, argv)])
    out, err = capsys.readouterr()
    return status, out, err


class Load:
    """Threads sending requests to the server while the block runs."""

    def __init__(self, server, threads=3, path="/leak", pause=0.002):
        self.server, self.n, self.path, self.pause = server, threads, path, pause
        self.stop = threading.Event()

    def __enter__(self):
        self.threads = [threading.Thread(target=self.server.load, args=(self.stop, self.path, self.pause))
                        for _ in range(self.n)]
        for t in self.threads:
            t.start()
        return self

    def __exit__(self, *exc):
        self.stop.set()
        for t in self.threads:
            t.join()
        return False


def _comparable(state):
    return {k: state[k] for k in ("threads", "allocators", "ref_tracer", "profile", "trace",
                                  "gc_callbacks", "memhound_tracing")}


# ---- with sys.remote_exec ------------------------------------------------------------

def test_census_names_the_registry_and_the_type(server, capsys, tmp_path):
    needs_remote_exec()
    for _ in range(300):
        server.get("/leak")
    status, out, err = attach(capsys, server.pid, "--census", "--json", "-")
    assert status == 0, err
    data = json.loads(out)
    census = data["census"]
    assert census["objects"] > 10_000 and census["bytes"] > census["objects"] * 16
    by_type = {e["type"]: e for e in census["types"]}
    # The heap census counts what a Python-side count in the target also sees.
    assert data["target"]["pid"] == server.pid
    holders = [h for h in census["holders"] if "global REGISTRY" in h["path_text"]]
    assert holders, [h["path_text"] for h in census["holders"]]
    h = holders[0]
    assert h["path_text"] == "module leaky_app -> global REGISTRY -> list"
    assert h["count"] == 300 and h["contents"][0] == {"type": "leaky_app.Record", "count": 300,
                                                       "bytes": h["contents"][0]["bytes"]}
    # Each Record keeps its bytearray: the list keeps more than the Records alone.
    assert h["keeps"] > h["contents"][0]["bytes"] + 300 * 64
    assert "str" in by_type and by_type["str"]["count"] > 1000
    # memhound's own modules, classes and what only they hold are left out.
    assert census["own_objects"] > 100
    assert not [t for t in by_type if t.startswith("memhound")]
    assert not [h for h in census["holders"] if "memhound" in h["path_text"]]
    # The text report says the same.
    status, out, err = attach(capsys, server.pid, "--census", "--top", "40")
    assert status == 0, err
    assert "module leaky_app -> global REGISTRY -> list" in out
    assert "300 leaky_app.Record" in out
    assert server.state()["served"] == 300     # /state counts itself after answering
    page = tmp_path / "census.html"
    status, out, err = attach(capsys, server.pid, "--census", "--html", page)
    assert status == 0, err
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>")
    assert "module leaky_app -> global REGISTRY -> list" in html and "leaky_app.Record" in html


def test_attaching_python_without_remote_exec(server, capsys, monkeypatch):
    """A 3.11-3.13 attaching side has no sys.remote_exec: the target's own
    interpreter makes the call.  That helper is not the target's parent, so
    Yama's ptrace scope lets only root do it."""
    needs_remote_exec()
    if os.geteuid() != 0:
        pytest.skip("the helper is not the target's parent: needs root under ptrace scope 1")
    monkeypatch.delattr(sys, "remote_exec")
    for _ in range(300):
        server.get("/leak")
    status, out, err = attach(capsys, server.pid, "--census", "--json", "-", "--top", "40")
    assert status == 0, err
    holders = json.loads(out)["census"]["holders"]
    assert any(h["path_text"] == "module leaky_app -> global REGISTRY -> list" and h["count"] == 300
               for h in holders)


def test_census_while_serving_from_several_threads(server, capsys):
    needs_remote_exec()
    with Load(server, threads=4):
        for _ in range(3):
            status, out, err = attach(capsys, server.pid, "--census", "--top", "5")
            assert status == 0, err
    assert server.errors == []
    assert server.answered > 0


def test_watch_names_registry_type_and_handler_line(server, capsys, tmp_path):
    needs_remote_exec()
    status, out, err = attach(capsys, server.pid, "--start", "--frames", "8")
    assert status == 0, err
    assert "tracing started (8 frames)" in out
    report = tmp_path / "watch.json"
    page = tmp_path / "watch.html"
    with Load(server, threads=2, pause=0.01):
        status, out, err = attach(capsys, server.pid, "--watch", "0.6", "--times", "2",
                                  "--json", report, "--html", page)
    assert server.errors == []
    assert status == 1, out + err     # grew in every interval
    assert "LEAK: memory grew in every one of 2 intervals" in out
    data = json.loads(report.read_text())
    line = marker_line(APP, "leak-line")
    assert len(data["intervals"]) == 2 and data["grew"] is True
    steady = {x["type"]: x["path_text"] for x in data["steady"]}
    assert steady["leaky_app.Record"] == ("module leaky_app -> global REGISTRY (list) -> [...] "
                                          "-> leaky_app.Record")
    # A request caught between its two allocations may split off its
    # bytearray; whatever is steady is held by the registry.
    assert all("global REGISTRY (list)" in p for p in steady.values()), steady
    for interval in data["intervals"]:
        groups = [g for g in interval["report"]["groups"] if g["type"] == "leaky_app.Record"]
        assert groups, [g["type"] for g in interval["report"]["groups"]]
        g = groups[0]
        assert g["path_text"].startswith("module leaky_app -> global REGISTRY (list) -> [")
        assert g["cause"] == "global-collection"
        assert g["count"] >= 1
        assert (g["created_at"][0]["filename"], g["created_at"][0]["lineno"]) == (APP, line)
        assert "leaky_app.py:%d" % line in g["hint"]
        assert any(x["filename"] == APP and x["lineno"] == line for x in interval["grown_lines"])
    assert "leaky_app.py:%d in do_GET" % line in out
    html = page.read_text()
    assert html.startswith("<!DOCTYPE html>") and "leaky_app.Record" in html
    # No watcher thread stays behind.
    assert "memhound-watch" not in server.state()["threads"]
    status, out, err = attach(capsys, server.pid, "--detach")
    assert status == 0, err


def test_watch_without_growth_exits_0(server, capsys):
    needs_remote_exec()
    with Load(server, threads=1, path="/hello", pause=0.01):
        status, out, err = attach(capsys, server.pid, "--watch", "0.3", "--times", "2")
    assert status == 0, out + err
    assert "no steady growth over 2 interval(s)" in out
    assert "leaky_app.Record" not in out


def test_snapshot_is_read_by_top(server, capsys, tmp_path):
    needs_remote_exec()
    snap = tmp_path / "srv.snap"
    status, out, err = attach(capsys, server.pid, "--snapshot", snap)
    assert status == 2 and "is not tracing: run 'memhound attach %d --start' first" % server.pid in err
    assert not snap.exists()
    assert attach(capsys, server.pid, "--start")[0] == 0
    for _ in range(200):
        server.get("/leak")
    status, out, err = attach(capsys, server.pid, "--snapshot", snap)
    assert status == 0, err
    status = cli.main(["top", str(snap), "--limit", "3"])
    out, err = capsys.readouterr()
    assert status == 0, err
    assert "leaky_app.py:%d in do_GET" % marker_line(APP, "leak-line") in out
    # memhound's own frames are not in it.
    assert "_attach_agent" not in out and os.path.join(SRC, "memhound") not in out
    assert attach(capsys, server.pid, "--stop")[0] == 0
    assert server.state()["memhound_tracing"] is False


def test_detach_leaves_the_server_as_it_was(server, capsys):
    needs_remote_exec()
    before = server.state()
    assert attach(capsys, server.pid, "--start")[0] == 0
    during = server.state()
    assert during["memhound_tracing"] is True and during["allocators"] != before["allocators"]
    with Load(server, threads=2):
        assert attach(capsys, server.pid, "--census")[0] == 0
    status, out, err = attach(capsys, server.pid, "--detach")
    assert status == 0, err
    assert "tracing stopped; memhound's modules stay imported" in out
    after = server.state()
    assert _comparable(after) == _comparable(before)
    assert after["memhound_imported"] is True
    assert server.errors == []


def test_many_attach_cycles_under_load(server, capsys):
    """Attach, census, start/stop now and then, detach: CYCLES times into a
    server under load from several threads.  MEMHOUND_ATTACH_CYCLES=1000
    for the long run."""
    needs_remote_exec()
    before = server.state()
    warm = CYCLES // 5
    with Load(server, threads=4, path="/hello", pause=0.001):
        for n in range(CYCLES):
            if n == warm:
                settled = server.state()["blocks"]
            if n % 10 == 3:
                assert attach(capsys, server.pid, "--start", "--frames", "4")[0] == 0
            status, out, err = attach(capsys, server.pid, "--census", "--top", "3")
            assert status == 0, err
            status, out, err = attach(capsys, server.pid, "--detach")
            assert status == 0, err
    after = server.state()
    assert server.errors == []
    assert server.answered > CYCLES
    assert _comparable(after) == _comparable(before)
    assert after["served"] >= server.answered
    # After the first cycles (memhound's modules imported, caches filled) a
    # cycle keeps nothing of its census (thousands of objects): what stays is
    # CPython's own per-remote_exec residue and the load's, a few blocks.
    grown = after["blocks"] - settled
    assert grown < 25 * (CYCLES - warm), (settled, after["blocks"])


def _wait_until_asleep(pid, limit=10.0):
    """Until the process's main thread is inside its sleep: between the line
    it printed and that call it still passes a safe point (seen under ASan)."""
    deadline = time.monotonic() + limit
    while time.monotonic() < deadline:
        try:
            with open("/proc/%d/syscall" % pid) as f:
                if f.read().split()[0] in ("35", "230"):       # nanosleep, clock_nanosleep
                    return
        except (OSError, IndexError):
            pass
        time.sleep(0.01)
    # /proc/PID/syscall unreadable here: go on (the race is narrow)


def test_blocked_target_times_out(capsys, tmp_path):
    needs_remote_exec()
    child = subprocess.Popen([sys.executable, "-c", "import time; print('up', flush=True); time.sleep(30)"],
                             env=child_env(), stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        _wait_until_asleep(child.pid)
        t0 = time.monotonic()
        status, out, err = attach(capsys, child.pid, "--census", "--timeout", "1")
        assert time.monotonic() - t0 < 10
        assert status == 2
        assert "did not reach a safe point within 1 s" in err
        assert err.count("\n") == 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_memhound_not_importable_in_the_target(capsys, tmp_path):
    needs_remote_exec()
    # -I -S: no PYTHONPATH, no site-packages, so no memhound.
    code = "import time\nprint('up', flush=True)\nfor _ in range(3000): time.sleep(0.01)"
    child = subprocess.Popen([sys.executable, "-I", "-S", "-c", code], stdout=subprocess.PIPE,
                             text=True, cwd=str(tmp_path))
    try:
        child.stdout.readline()
        status, out, err = attach(capsys, child.pid, "--census")
        assert status == 2
        assert "memhound is not importable in process %d" % child.pid in err
        assert sys.executable in err and "sys.path" in err and "No module named 'memhound'" in err
        assert err.count("\n") == 1
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


def test_agent_examples():
    """The agent is private (not in test_doctests' list); its examples run here."""
    import doctest
    from memhound import _attach_agent
    result = doctest.testmod(_attach_agent, optionflags=doctest.ELLIPSIS)
    assert result.attempted >= 3 and result.failed == 0


# ---- refusals that need no injection -------------------------------------------------

def _refused(argv, capsys):
    status, out, err = attach(capsys, *argv)
    assert status == 2, out + err
    assert err.startswith("memhound attach: error: ") and err.count("\n") == 1, err
    return err


def test_refuses_a_process_that_is_not_running(capsys):
    assert "no process 999999999 is running" in _refused(["999999999", "--census"], capsys)


def test_refuses_a_process_that_is_not_python(capsys):
    child = subprocess.Popen(["sleep", "30"])
    try:
        deadline = time.monotonic() + 10       # until the fork has exec'd sleep
        while not os.readlink("/proc/%d/exe" % child.pid).endswith("sleep"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        err = _refused([child.pid, "--census"], capsys)
        assert "process %d (sleep" % child.pid in err and "is not a Python process" in err
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(sys.version_info >= (3, 14), reason="needs a target older than 3.14: "
                    "this interpreter is %d.%d" % sys.version_info[:2])
def test_refuses_python_older_than_3_14(capsys):
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        err = _refused([child.pid, "--census"], capsys)
        assert "runs Python %d.%d" % sys.version_info[:2] in err
        assert "needs 3.14+" in err and "memhound run --signal" in err
    finally:
        child.kill()
        child.wait()


@pytest.mark.skipif(sys.version_info < (3, 14), reason="remote debugging exists on 3.14+ only: "
                    "an older target is refused for its version first")
@pytest.mark.parametrize("how", ["env", "xoption"])
def test_refuses_when_remote_debugging_is_disabled(capsys, how):
    env = child_env(PYTHON_DISABLE_REMOTE_DEBUG="1" if how == "env" else None)
    options = ["-X", "disable_remote_debug"] if how == "xoption" else []
    child = subprocess.Popen([sys.executable, *options, "-c", "import time; print('up', flush=True); "
                              "time.sleep(30)"], env=env, stdout=subprocess.PIPE, text=True)
    try:
        child.stdout.readline()
        err = _refused([child.pid, "--census"], capsys)
        assert "remote debugging is disabled in process %d" % child.pid in err
        assert ("PYTHON_DISABLE_REMOTE_DEBUG" if how == "env" else "-X disable_remote_debug") in err
    finally:
        child.kill()
        child.wait()
        child.stdout.close()


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0,
                    reason="needs root to run the attaching side as another user")
def test_refuses_without_permission(tmp_path):
    """An unprivileged user may not attach to root's process."""
    try:
        subprocess.run([sys.executable, "-c", "pass"], user=65534, group=65534, cwd="/",
                       check=True, capture_output=True, timeout=60)
    except (OSError, subprocess.CalledProcessError) as exc:
        pytest.skip("user 65534 cannot run %s here: %s" % (sys.executable, exc))
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"], env=child_env())
    try:
        proc = subprocess.run([sys.executable, "-m", "memhound", "attach", str(child.pid), "--census"],
                              env=child_env(), capture_output=True, text=True, timeout=60,
                              cwd="/", user=65534, group=65534)
        assert proc.returncode == 2, proc.stdout + proc.stderr
        assert "no permission" in proc.stderr and proc.stderr.count("\n") == 1, proc.stderr
    finally:
        child.kill()
        child.wait()


@pytest.mark.parametrize("argv, message", [
    (["--census", "--detach"], "one of --census"),
    ([], "say what to do"),
    (["--watch", "0"], "--watch must be between"),
    (["--watch", "1", "--times", "0"], "--times must be between"),
    (["--census", "--timeout", "-1"], "--timeout must be between"),
    (["--start", "--frames", "0"], "--frames"),
    (["--start", "--html", "x.html"], "--html goes with --census or --watch"),
])
def test_bad_arguments_are_one_line_exit_2(capsys, argv, message):
    err = _refused([os.getpid(), *argv], capsys)
    assert message in err


def test_snapshot_into_a_missing_directory_is_refused(capsys, tmp_path):
    err = _refused([os.getpid(), "--snapshot", tmp_path / "no" / "such.snap"], capsys)
    assert "no such directory" in err


def test_cli_subprocess_exit_status(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "memhound", "attach", "999999999", "--census"],
                          env=child_env(), capture_output=True, text=True, timeout=60)
    assert proc.returncode == 2
    assert proc.stderr == "memhound attach: error: no process 999999999 is running\n"
    assert proc.stdout == ""


def _interval(blocks, *groups):
    return {"report": {"deltas": {"blocks": [blocks], "objects": [0]},
                       "groups": [dict(zip(("type", "path_text", "count", "holder_len"), g))
                                  for g in groups]}}


def test_steady_groups_is_the_refleak_rule_over_time():
    from memhound.attach import steady_groups
    reg = "module app -> global REG (list) -> [%d] -> app.Rec"
    grows = [_interval(5, ("app.Rec", reg % 3, 2, 10)), _interval(5, ("app.Rec", reg % 9, 4, 14))]
    assert steady_groups(grows) == [("app.Rec", reg.replace("%d", "..."), [2, 4])]
    # The holder did not grow: its entries were replaced (a counter in a list).
    replaced = [_interval(5, ("int", "module app -> global N (list) -> [0] -> int", 1, 1))] * 3
    assert steady_groups(replaced) == []
    # Held from outside Python only (a request thread's state in flight).
    ext = [_interval(5, ("dict", "dict: held outside Python", 1, None))] * 2
    ext[0]["report"]["groups"][0]["path"] = [{"kind": "external", "label": "", "type": "dict"}]
    assert steady_groups(ext) == []
    # A running frame's local, new in every interval.
    local = [_interval(5, ("list", "thread MainThread -> f() local x (a.py:3) -> list", 2, None))] * 2
    assert steady_groups(local) == []
    # The process's counts do not decide: other threads of a server free
    # more than the leak adds, and the registry still grew.
    assert steady_groups([grows[0], _interval(-3, ("app.Rec", reg % 5, 1, 15))]) == [
        ("app.Rec", reg.replace("%d", "..."), [2, 1])]
    # Two groups of one holder (two indexes) in one interval are one leak.
    two = _interval(5, ("app.Rec", reg % 3, 2, 10))
    two["report"]["groups"] += _interval(5, ("app.Rec", reg % 4, 1, 10))["report"]["groups"]
    assert steady_groups([two, grows[1]]) == [("app.Rec", reg.replace("%d", "..."), [3, 4])]
    # Missing from one interval: not steady.
    assert steady_groups([grows[0], _interval(5)]) == []


# ---- the private directory: the target's user controls it once handed over --------

def test_request_files_are_never_written_through_a_link(tmp_path):
    from memhound import attach
    session = attach.Session(attach.Target(os.getpid()))
    victim = tmp_path / "victim"
    victim.write_text("keep")
    d = tmp_path / "req"
    d.mkdir()
    os.symlink(victim, d / "request.json")
    with pytest.raises(FileExistsError):
        session._write_private(str(d), "request.json", b"{}")
    assert victim.read_text() == "keep"


@pytest.mark.parametrize("kind", ["symlink", "fifo"])
def test_results_are_read_only_from_regular_files(tmp_path, kind):
    from memhound import attach
    session = attach.Session(attach.Target(os.getpid()))
    target = tmp_path / "elsewhere.json"
    target.write_text('{"ok": true}')
    result = tmp_path / "result.json"
    if kind == "symlink":
        os.symlink(target, result)
    else:
        os.mkfifo(result)           # a reader that followed it would hang
    with pytest.raises(attach.AttachError, match="unreadable result"):
        session.wait_for(str(tmp_path), "result.json", time.monotonic() + 5)
