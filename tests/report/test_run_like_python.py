"""`memhound run` is `python`: each case runs under both, and the exit
status, stdout and the program's stderr must be the same; memhound's report
(if the program ran) comes after python's stderr, and only then."""
import os
import signal
import subprocess
import sys
import textwrap
import zipfile

import pytest

from conftest import child_env

REPORT = "memhound: live memory at exit: "


def _run(argv, cwd):
    return subprocess.run([sys.executable] + argv, cwd=cwd, capture_output=True, text=True,
                          env=child_env(NO_COLOR=None, PYTHON_COLORS="0"), timeout=120)


def both(cwd, *program):
    """(plain python, memhound run) on the same program arguments."""
    return _run(list(program), cwd), _run(["-m", "memhound", "run"] + list(program), cwd)


def assert_like_python(plain, under, ran=True):
    assert under.returncode == plain.returncode, (plain.stderr, under.stderr)
    assert under.stdout == plain.stdout
    assert under.stderr.startswith(plain.stderr), (plain.stderr, under.stderr)
    rest = under.stderr[len(plain.stderr):]
    if ran:
        assert rest.startswith(REPORT), rest
    else:
        assert rest == "", rest          # no report for a program that never ran


@pytest.mark.parametrize("argv", [
    ["--frames", "100000000"], ["--frames", "0"], ["--frames", "many"], ["--top", "0"],
    ["--interval", "inf"], ["--interval", "nan"], ["--interval", "-1"],
    ["--signal", "9"], ["--signal", "KILL"], ["--signal", "SIGSTOP"], ["--signal", "0"],
    ["--signal", "999"], ["--signal", "NOPE"], ["--html"],
])
def test_bad_options_are_usage_errors(tmp_path, argv):
    (tmp_path / "ok.py").write_text("print('ran')\n")
    res = _run(["-m", "memhound", "run"] + argv + ["ok.py"], tmp_path)
    assert res.returncode == 2
    assert res.stdout == ""              # the program never ran
    assert len(res.stderr.splitlines()) == 1 and res.stderr.startswith("memhound: error: ")
    assert argv[0] in res.stderr or "expected a script" in res.stderr


@pytest.mark.parametrize("variable, value, options", [
    ("MEMHOUND_EXACT_DEPTH", "yes", []),
    ("MEMHOUND_SAMPLE_SEED", "-3", ["--sample", "64KiB"]),
])
def test_bad_environment_is_one_line(tmp_path, variable, value, options):
    (tmp_path / "ok.py").write_text("print('ran')\n")
    res = subprocess.run([sys.executable, "-m", "memhound", "run"] + options + ["ok.py"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=120,
                         env=child_env(**{variable: value}))
    assert res.returncode == 2
    assert res.stdout == ""              # the program never ran
    assert res.stderr.splitlines() == [f"memhound: {variable} must be "
                                       + res.stderr.split(" must be ", 1)[1].rstrip("\n")]
    assert repr(value) in res.stderr or f"'{value}'" in res.stderr


def test_directory_without_main(tmp_path):
    (tmp_path / "pkgdir").mkdir()
    plain, under = both(tmp_path, "pkgdir")
    assert plain.returncode == 1 and len(plain.stderr.splitlines()) == 1
    assert_like_python(plain, under, ran=False)


def test_missing_module(tmp_path):
    plain, under = both(tmp_path, "-m", "no_such_module_xyz")
    assert plain.returncode == 1
    assert_like_python(plain, under, ran=False)


def test_syntax_error_script_never_runs(tmp_path):
    (tmp_path / "bad.py").write_text("print('top')\ndef (\n")
    plain, under = both(tmp_path, "bad.py")
    assert plain.returncode == 1 and "SyntaxError" in plain.stderr
    assert_like_python(plain, under, ran=False)


def test_script_that_closes_stderr(tmp_path):
    (tmp_path / "close2.py").write_text("import os\nx = bytearray(10000)\nos.close(2)\n")
    plain, under = both(tmp_path, "close2.py")
    assert plain.returncode == under.returncode == 0
    assert under.stdout == plain.stdout == ""


@pytest.mark.parametrize("code", ["None", "0", "3", "256", "-1", "2**40", "True",
                                  "'bye now'", "[1, 2]"])
def test_system_exit_codes(tmp_path, code):
    (tmp_path / "ex.py").write_text(f"import sys\nprint('out')\nsys.exit({code})\n")
    plain, under = both(tmp_path, "ex.py")
    assert_like_python(plain, under)


PROGRAMS = {
    "chained.py": """\
        def inner():
            raise ValueError("inner")
        try:
            inner()
        except ValueError as exc:
            raise RuntimeError("outer") from exc
        """,
    "context.py": """\
        try:
            {}["k"]
        except KeyError:
            1 / 0
        """,
    "interrupt.py": """\
        print("before")
        raise KeyboardInterrupt
        """,
    "thread_error.py": """\
        import threading
        def work():
            raise OSError("in a thread")
        t = threading.Thread(target=work)
        t.start(); t.join()
        print("main goes on")
        """,
    "group.py": """\
        raise ExceptionGroup("many", [ValueError(1), TypeError(2)])
        """,
}


@pytest.mark.parametrize("name", sorted(PROGRAMS))
def test_uncaught_exceptions(tmp_path, name):
    (tmp_path / name).write_text(textwrap.dedent(PROGRAMS[name]))
    plain, under = both(tmp_path, name)
    if name == "interrupt.py":
        assert plain.returncode == -signal.SIGINT
    assert_like_python(plain, under)
    assert "memhound" not in under.stderr[:len(plain.stderr)]


MAIN = textwrap.dedent("""\
    import sys
    print(sys.argv, sys.path[0], __name__, __spec__ is not None)
    if sys.argv[-1] == "fail":
        raise ValueError("in __main__")
    """)


@pytest.mark.parametrize("kind", ["directory", "zip", "module"])
@pytest.mark.parametrize("mode", ["", "fail"])
def test_directory_zip_and_module(tmp_path, kind, mode):
    # python shows runpy's frames in these tracebacks: so must run
    if kind == "directory":
        (tmp_path / "app").mkdir()
        (tmp_path / "app" / "__main__.py").write_text(MAIN)
        target = ["app"]
    elif kind == "zip":
        with zipfile.ZipFile(tmp_path / "app.zip", "w") as zf:
            zf.writestr("__main__.py", MAIN)
        target = ["app.zip"]
    else:
        (tmp_path / "pkg").mkdir()
        (tmp_path / "pkg" / "__init__.py").write_text("")
        (tmp_path / "pkg" / "__main__.py").write_text(MAIN)
        target = ["-m", "pkg"]
    plain, under = both(tmp_path, *target, "arg", *([mode] if mode else []))
    assert plain.returncode == (1 if mode else 0)
    if mode:
        assert "<frozen runpy>" in plain.stderr
    assert_like_python(plain, under)


def test_script_path_and_file(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "where.py").write_text(
        "import sys\nprint(__file__, sys.path[0], sys.argv, __name__)\n")
    plain, under = both(tmp_path, "./sub/../sub/where.py", "x")
    assert_like_python(plain, under)
    assert os.sep + "sub" in plain.stdout


GLOBALS = textwrap.dedent("""\
    import re
    names = {k: repr(v) for k, v in globals().items() if k != "re"}
    print(re.sub(r" at 0x[0-9a-f]+", "", repr(sorted(names.items()))))
    print(__annotations__ if "__annotations__" in names else "no annotations")
    """)


@pytest.mark.parametrize("kind", ["script", "directory", "module"])
def test_main_module_globals(tmp_path, kind):
    # the same names and values in __main__ (__annotations__ until 3.13,
    # __cached__ until 3.14 for a script) as the interpreter's own
    (tmp_path / "g").mkdir()
    (tmp_path / "g" / "__main__.py").write_text(GLOBALS)
    (tmp_path / "g.py").write_text(GLOBALS)
    target = {"script": ["g.py"], "directory": ["g"], "module": ["-m", "g"]}[kind]
    plain, under = both(tmp_path, *target)
    assert plain.returncode == 0 and "__name__" in plain.stdout
    assert_like_python(plain, under)
