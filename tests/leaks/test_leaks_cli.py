"""memhound leaks TARGET: exit codes and messages (run in-process)."""
import argparse
import json
import os
import textwrap

import pytest

from memhound import cli_leaks

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
