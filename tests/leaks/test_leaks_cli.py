"""memhound leaks TARGET: exit codes and messages (in-process), and the real command."""
import argparse
import json
import os
import re
import signal
import subprocess
import sys
import textwrap
import time

import pytest

from memhound import cli, cli_leaks

from conftest import ROOT, child_env

EXAMPLE = os.path.join(ROOT, "examples", "leaky_app.py")


def run_cli(*argv):
    parser = cli_leaks.add_arguments(argparse.ArgumentParser(prog="memhound leaks"))
    return cli_leaks.run(parser.parse_args(list(argv)))


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return str(path)


def test_example_leaks_exit_1_and_json(tmp_path, capsys):
    out = tmp_path / "report.json"
    assert run_cli(EXAMPLE + ":handle_request", "--runs", "4", "--warmup", "2",
                   "--json", str(out)) == 1
    text = capsys.readouterr().out
    assert text.startswith("LEAK")
    assert "module leaky_app -> global _audit_log (list) -> [" in text
    d = json.loads(out.read_text())
    assert d["leaked"] is True and d["runs"] == 4 and d["warmup"] == 2
    g = d["groups"][0]
    assert g["type"] == "leaky_app.Request" and g["cause"] == "global-collection"
    assert g["count"] == 4 and g["count_per_run"] == 1
    assert g["created_at"][0]["function"] == "parse"


def test_clean_target_exit_0(tmp_path, capsys):
    path = write(tmp_path, "clean_mod.py", """
        def work():
            return sum(range(100))
    """)
    assert run_cli(path + ":work") == 0
    assert capsys.readouterr().out.startswith("no leak")


def test_module_target_and_json_stdout(tmp_path, capsys, monkeypatch):
    write(tmp_path, "cli_pkg_mod.py", """
        def work():
            return [1, 2, 3]
    """)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert run_cli("cli_pkg_mod:work", "--json", "-", "--runs", "2") == 0
    captured = capsys.readouterr()
    # stdout is only the JSON (issue 17): the text report goes to stderr.
    assert json.loads(captured.out)["leaked"] is False
    assert captured.err.startswith("no leak (3 warm-up, 2 measured runs)\n")


@pytest.mark.parametrize("target,message", [
    ("nofile_here.py:f", "no such file: nofile_here.py"),
    ("json:nope", "json has no attribute 'nope'"),
    ("json:__doc__", "json:__doc__ is not callable (it is a str)"),
    ("no_colon", "TARGET must be path/to/file.py:function or package.module:function"),
    ("no_such_module_xyz:f", "cannot import no_such_module_xyz: ModuleNotFoundError"),
])
def test_target_errors_exit_2(target, message, capsys):
    assert run_cli(target) == 2
    err = capsys.readouterr().err
    assert err.startswith("memhound leaks: error: ") and message in err
    assert "Traceback" not in err and err.count("\n") == 1


def test_broken_module_exit_2(tmp_path, capsys):
    path = write(tmp_path, "broken_mod.py", "def f(:\n")
    assert run_cli(path + ":f") == 2
    err = capsys.readouterr().err
    assert "cannot import" in err and "SyntaxError" in err and "Traceback" not in err


def test_target_raises_exit_2(tmp_path, capsys):
    path = write(tmp_path, "raising_mod.py", """
        def f():
            raise ValueError("bad input")
    """)
    assert run_cli(path + ":f") == 2
    err = capsys.readouterr().err
    assert "raising_mod.py:f raised ValueError: bad input" in err and "Traceback" not in err


def test_target_needs_arguments_exit_2(capsys):
    assert run_cli(EXAMPLE + ":parse") == 2
    assert "raised TypeError" in capsys.readouterr().err


@pytest.mark.parametrize("opt,value,message", [
    ("--runs", "0", "--runs must be >= 1, got 0"),
    ("--warmup", "-2", "--warmup must be >= 0, got -2"),
    ("--frames", "0", "--frames must be >= 1, got 0"),
])
def test_bad_options_exit_2(opt, value, message, capsys):
    assert run_cli(EXAMPLE + ":handle_request", opt, value) == 2
    assert message in capsys.readouterr().err


def test_unwritable_json_exit_2(tmp_path, capsys):
    path = write(tmp_path, "clean_mod2.py", "def f():\n    pass\n")
    assert run_cli(path + ":f", "--json", str(tmp_path / "missing" / "x.json")) == 2
    assert "cannot write" in capsys.readouterr().err


def test_real_command_writes_html_from_the_report(tmp_path):
    """`memhound leaks FILE:func --html OUT` end to end: a subprocess, real files."""
    src = os.path.dirname(os.path.dirname(os.path.abspath(cli_leaks.__file__)))
    env = dict(os.environ, PYTHONPATH=src + os.pathsep + os.environ.get("PYTHONPATH", ""))
    out_html = tmp_path / "leaks.html"
    res = subprocess.run([sys.executable, "-m", "memhound", "leaks", EXAMPLE + ":handle_request",
                          "--runs", "3", "--warmup", "2", "--html", str(out_html)],
                         cwd=tmp_path, capture_output=True, text=True, env=env, timeout=300)
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("LEAK")
    assert res.stderr == f"memhound: wrote {out_html}\n"
    page = out_html.read_text()
    assert "<title>memhound leaks " + EXAMPLE + ":handle_request - memhound</title>" in page
    data = json.loads(re.search(r'<script id="mh-data" type="application/json">(.*?)</script>',
                                page, re.S).group(1).replace("<\\/", "</"))
    (leak,) = data["leaks"]
    assert leak["name"] == EXAMPLE + ":handle_request"
    assert leak["leaked"] is True and leak["runs"] == 3
    group = leak["groups"][0]
    assert group["type"] == "leaky_app.Request" and group["cause"] == "global-collection"
    assert group["path_text"].startswith("module leaky_app -> global _audit_log (list) -> [")
    assert [step["kind"] for step in group["path"]][:2] == ["module", "global"]


def test_html_and_json_stdout_together(tmp_path, capsys):
    out_html = tmp_path / "r.html"
    assert run_cli(EXAMPLE + ":handle_request", "--runs", "2", "--json", "-",
                   "--html", str(out_html)) == 1
    captured = capsys.readouterr()
    report = json.loads(captured.out)           # only the JSON on stdout
    assert report["groups"][0]["cause"] == "global-collection"
    assert captured.err.startswith("LEAK: every measured run left memory behind")
    assert captured.err.endswith(f"\nmemhound: wrote {out_html}\n")
    assert "global-collection" in out_html.read_text()


def test_unwritable_html_exit_2(capsys, tmp_path):
    assert run_cli(EXAMPLE + ":handle_request", "--runs", "1",
                   "--html", str(tmp_path / "missing" / "x.html")) == 2
    err = capsys.readouterr().err
    assert err.startswith("memhound leaks: error: cannot write ") and err.count("\n") == 1


def test_frames_above_the_engine_limit_exit_2(capsys):
    assert run_cli(EXAMPLE + ":handle_request", "--frames", "70000") == 2
    assert "--frames must be <= 65535, got 70000" in capsys.readouterr().err


def test_leaks_through_the_main_parser(capsys):
    assert cli.main(["leaks", "no_colon"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("memhound leaks: error: TARGET must be ") and err.count("\n") == 1
    assert cli.main(["leaks", "--help"]) == 0
    out = capsys.readouterr().out
    assert out.startswith("usage: memhound leaks") and "--html FILE" in out
    assert "examples:\n  memhound leaks" in out


# --------------------------------------------------------------------------
# Targets and options as a new user meets them (issue 17, item 7)

def _command(*argv, cwd, **popen):
    """`memhound leaks ...` as the installed command runs it: the package from SRC on
    PYTHONPATH, but not the current directory on sys.path (python -P -c adds none)."""
    code = "import sys; from memhound.cli import main; sys.exit(main(sys.argv[1:]))"
    return [sys.executable, "-P", "-c", code, "leaks", *argv], dict(
        cwd=cwd, env=child_env(), **popen)


ASYNC_APP = """
    import asyncio

    _log = []
    _seen = []

    async def handler():
        await asyncio.sleep(0)
        _log.append(bytearray(64))

    async def clean():
        await asyncio.sleep(0)
        return bytearray(64)

    def steps():
        yield 1
        _seen.append(bytearray(32))
        yield 2

    def clean_steps():
        yield bytearray(32)

    async def stream():
        for i in range(2):
            await asyncio.sleep(0)
            yield i
        _log.append(bytearray(16))

    def returns_coroutine():
        return handler()
"""


@pytest.mark.parametrize("target,line", [("handler", "_log.append(bytearray(64))"),
                                         ("steps", "_seen.append(bytearray(32))"),
                                         ("stream", "_log.append(bytearray(16))"),
                                         ("returns_coroutine", "_log.append(bytearray(64))")])
def test_async_and_generator_targets_run_to_completion(tmp_path, capsys, target, line):
    path = write(tmp_path, "async_app_%s.py" % target, ASYNC_APP)
    assert run_cli(path + ":" + target, "--runs", "3", "--json", "-") == 1
    captured = capsys.readouterr()
    assert "never awaited" not in captured.err
    report = json.loads(captured.out)
    assert report["leaked"] is True and all(d >= 1 for d in report["deltas"]["blocks"])
    group = report["groups"][0]
    assert group["type"] == "bytearray" and group["cause"] == "global-collection"
    assert group["count"] == 3 and group["count_per_run"] == 1
    # The creation site is the target's line, with no asyncio loop frames under it.
    created = group["created_at"]
    with open(path) as f:
        expected = next(n for n, text in enumerate(f, 1) if text.strip() == line)
    assert created[0]["filename"] == path and created[0]["lineno"] == expected
    assert not any("asyncio" in frame["filename"] for frame in created)


@pytest.mark.parametrize("target", ["clean", "clean_steps"])
def test_clean_async_and_generator_targets(tmp_path, capsys, target):
    path = write(tmp_path, "async_clean_%s.py" % target, ASYNC_APP)
    assert run_cli(path + ":" + target, "--runs", "4", "--warmup", "1") == 0
    captured = capsys.readouterr()
    assert captured.out.startswith("no leak (1 warm-up, 4 measured runs)")
    assert "  blocks   [0, 0, 0, 0]" in captured.out and "never awaited" not in captured.err


def test_package_module_target_resolves_from_the_current_directory(tmp_path):
    pkg = tmp_path / "myapp"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    write(tmp_path, "myapp/service.py", """
        _sessions = []

        def login():
            _sessions.append(bytearray(64))
    """)
    argv, kw = _command("myapp.service:login", "--runs", "2", cwd=tmp_path)
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 1, res.stderr
    assert res.stdout.startswith("LEAK")
    assert "module myapp.service -> global _sessions (list) -> [" in res.stdout
    # A directory that is not the current one is still not searched.
    argv, kw = _command("myapp.service:login", cwd=tmp_path / "myapp")
    res = subprocess.run(argv, capture_output=True, text=True, timeout=300, **kw)
    assert res.returncode == 2
    assert res.stderr == ("memhound leaks: error: cannot import myapp.service: "
                          "ModuleNotFoundError: No module named 'myapp'\n")


@pytest.mark.parametrize("opt,value,message", [
    ("--runs", str(10 ** 20), "--runs must be <= 1000000, got 100000000000000000000"),
    ("--warmup", str(10 ** 20), "--warmup must be <= 1000000, got 100000000000000000000"),
    ("--runs", "1000001", "--runs must be <= 1000000, got 1000001"),
    ("--frames", "100000000", "--frames must be <= 65535, got 100000000"),
])
def test_out_of_range_options_are_usage_errors_naming_the_option(opt, value, message, capsys,
                                                                  tmp_path):
    path = write(tmp_path, "never_called.py", """
        def handle_request():
            raise AssertionError("the target must not run")
    """)
    assert run_cli(path + ":handle_request", opt, value) == 2
    err = capsys.readouterr().err
    assert err == "memhound leaks: error: %s\n" % message
    assert "raised" not in err


def test_ctrl_c_during_the_runs_prints_one_line_and_exits_130(tmp_path):
    write(tmp_path, "slow_app.py", """
        import asyncio
        import pathlib

        async def handle():
            pathlib.Path("started").touch()         # in the current directory
            await asyncio.sleep(0.2)
    """)
    argv, kw = _command(str(tmp_path / "slow_app.py") + ":handle", "--runs", "1000",
                        cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    proc = subprocess.Popen(argv, **kw)
    try:
        deadline = time.monotonic() + 120
        while not (tmp_path / "started").exists():
            assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
            time.sleep(0.05)
        time.sleep(0.5)                     # inside the runs, not the import
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130, err
    assert err == "memhound leaks: interrupted\n" and out == ""


def test_survivors_under_memhound_run_ignore_the_recorder(tmp_path):
    # `memhound run`'s recorder thread keeps a timeline while the block runs:
    # memhound's own objects, parked like for find_leaks().
    script = write(tmp_path, "idle.py", """
        import time
        import memhound
        with memhound.survivors() as s:
            t0 = time.monotonic()
            while time.monotonic() - t0 < 0.3:
                time.sleep(0.01)
        print("GROUPS", [(g.type, g.path_text) for g in s.report().groups])
    """)
    proc = subprocess.run([sys.executable, "-m", "memhound", "run", script], env=child_env(),
                          capture_output=True, text=True, timeout=120)
    assert proc.returncode == 0, proc.stderr[-3000:]
    groups = [line for line in proc.stdout.splitlines() if line.startswith("GROUPS")]
    assert groups, proc.stdout[-3000:]
    assert "recorder" not in groups[0], groups[0]
    assert "float" in groups[0] and "global t0" in groups[0], groups[0]
