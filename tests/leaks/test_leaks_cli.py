"""memhound leaks TARGET: exit codes and messages (in-process), and the real command."""
import argparse
import json
import os
import re
import subprocess
import sys
import textwrap

import pytest

from memhound import cli, cli_leaks

from conftest import ROOT

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
    out = capsys.readouterr().out
    assert json.loads(out[out.index("{"):])["leaked"] is False


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
    report = json.loads(captured.out[captured.out.index("\n{") + 1:])
    assert report["groups"][0]["cause"] == "global-collection"
    assert captured.err == f"memhound: wrote {out_html}\n"
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
