"""Tests of memhound's pytest plugin, run through pytester in subprocesses.

Each scenario runs a small generated test suite in a fresh interpreter
(``runpytest_subprocess``) so that tracing state never crosses runs.
"""
import importlib.metadata
import os
import re
import sys
import textwrap

import pytest

import memhound
from memhound import pytest_plugin
from memhound.pytest_plugin import parse_size

pytest_plugins = ["pytester"]

MIB = 1024 * 1024


def _entry_point_installed():
    eps = importlib.metadata.entry_points(group="pytest11")
    return any(ep.name == "memhound" for ep in eps)


PLUGIN_ARGS = () if _entry_point_installed() else ("-p", "memhound.pytest_plugin")



@pytest.fixture
def run(pytester, monkeypatch):
    """Run pytest on `source` (written as test_sample.py) in a subprocess."""
    # A relative PYTHONPATH (e.g. "src") would not survive pytester's chdir.
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(memhound.__file__)))
    path = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))

    def run(source, *args):
        pytester.makepyfile(test_sample=textwrap.dedent(source))
        # Unrelated plugins installed in the interpreter only slow each run down.
        quiet = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")
        return pytester.runpytest_subprocess(*PLUGIN_ARGS, *quiet, *args)

    return run


def line_of(source, needle):
    """1-based line number of the first line of `source` containing `needle`."""
    # pytester's makepyfile strips the leading newline.
    for number, line in enumerate(textwrap.dedent(source).strip().splitlines(), 1):
        if needle in line:
            return number
    raise AssertionError(needle)


# --------------------------------------------------------------------------
# Sizes

@pytest.mark.parametrize("text, expected", [
    ("24 MB", 24 * MIB), ("24MB", 24 * MIB), ("24 MiB", 24 * MIB), ("24 mb", 24 * MIB),
    ("1.5 GiB", 3 * 512 * MIB), ("1.5 GB", 3 * 512 * MIB), ("512 KiB", 512 * 1024),
    ("512 KB", 512 * 1024), ("100 B", 100), ("100B", 100), ("  7 b ", 7), (".5 KiB", 512),
    ("2 TiB", 2 << 40), (4096, 4096),
])
def test_parse_size_accepts(text, expected):
    assert parse_size(text) == expected


@pytest.mark.parametrize("value, message", [
    ("lots", "cannot parse size 'lots'"),
    ("24", "cannot parse size '24'"),
    ("24 XB", "cannot parse size '24 XB'"),
    ("-1 MB", "cannot parse size '-1 MB'"),
    ("0 MB", "size must be positive, got '0 MB'"),
    (0, "size must be positive, got 0"),
    (-5, "size must be positive, got -5"),
    (True, "got True"),
    (1.5, "got float 1.5"),
    (None, "got NoneType None"),
])
def test_parse_size_rejects(value, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        parse_size(value)


def test_format_size():
    assert pytest_plugin.format_size(100) == "100 B"
    assert pytest_plugin.format_size(1536) == "1.5 KiB"
    assert pytest_plugin.format_size(3 * MIB) == "3.0 MiB"


# --------------------------------------------------------------------------
# Inactive unless asked for

def test_inactive_without_options_or_markers(run):
    result = run("""
        import memhound
        import pytest

        def test_nothing_traced(request):
            assert not memhound.is_tracing()
            assert not request.config.pluginmanager.has_plugin("memhound-manager")

        @pytest.mark.allow_leaks
        def test_allow_leaks_alone_asks_for_nothing(request):
            assert not request.config.pluginmanager.has_plugin("memhound-manager")
    """, "--strict-markers")
    result.assert_outcomes(passed=2)


def test_markers_are_registered(run):
    result = run("def test_x(): pass", "--markers")
    out = result.stdout.str()
    for name in ("no_leaks(warmup=3, runs=5, frames=16)", "allow_leaks", "limit_memory(limit)"):
        assert f"@pytest.mark.{name}" in out


# --------------------------------------------------------------------------
# no_leaks / --memhound-leaks

LEAKY = """
    import pytest

    _seen = []

    class Record:
        pass

    @pytest.mark.no_leaks(warmup=2, runs=3)
    def test_leaky():
        _seen.append(Record())

    @pytest.mark.no_leaks(warmup=2, runs=3)
    def test_clean():
        scratch = [Record() for _ in range(50)]
        assert len(scratch) == 50
"""


def test_leaking_test_fails_with_holder_and_creation_line(run):
    result = run(LEAKY)
    result.assert_outcomes(failed=1, passed=1)
    out = result.stdout.str()
    assert "memhound: leak found in test_sample.py::test_leaky (warmup=2, runs=3)" in out
    assert "test_clean" not in out.split("short test summary")[-1]
    assert "Record" in out
    assert "_seen" in out                                  # the holder
    created = line_of(LEAKY, "_seen.append(Record())")
    assert re.search(rf"test_sample\.py\D{{1,3}}{created}\b", out), out   # creation line
    assert "Traceback" not in out                          # the report only, no plugin frames


def test_body_runs_warmup_plus_runs_times_fixtures_once(run):
    result = run("""
        import pytest

        calls = {"body": 0, "fixture": 0}

        @pytest.fixture
        def thing():
            calls["fixture"] += 1
            return object()

        @pytest.mark.no_leaks(warmup=2, runs=4)
        def test_repeated(thing):
            calls["body"] += 1

        def test_counts():
            assert calls == {"body": 6, "fixture": 1}
    """)
    result.assert_outcomes(passed=2)


def test_memhound_leaks_option_and_allow_leaks(run):
    source = """
        import pytest

        _kept = []

        def test_unmarked_leak():
            _kept.append(bytearray(10))

        @pytest.mark.allow_leaks
        def test_allowed_leak():
            _kept.append(bytearray(10))

        @pytest.mark.allow_leaks
        @pytest.mark.no_leaks
        def test_allow_wins_over_no_leaks():
            _kept.append(bytearray(10))

        def test_fine():
            assert sum(range(10)) == 45
    """
    result = run(source, "--memhound-leaks", "--memhound-warmup=1", "--memhound-runs=3")
    result.assert_outcomes(failed=1, passed=3)
    result.stdout.fnmatch_lines(["*memhound: leak found in test_sample.py::test_unmarked_leak "
                                 "(warmup=1, runs=3)*"])
    # Without the option nothing is checked.
    result = run(source)
    result.assert_outcomes(passed=4)


def test_failing_body_reports_its_own_error(run):
    result = run("""
        import pytest

        @pytest.mark.no_leaks
        def test_broken():
            assert 1 + 1 == 3, "arithmetic"
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*AssertionError: arithmetic*"])
    assert "leak found" not in result.stdout.str()


# --------------------------------------------------------------------------
# limit_memory

LIMITS = """
    import pytest

    @pytest.mark.limit_memory("1 MB")
    def test_over():
        big = bytearray(4 * 1024 * 1024)
        assert len(big) == 4 * 1024 * 1024

    @pytest.mark.limit_memory("64 MB")
    def test_under():
        big = bytearray(4 * 1024 * 1024)
        assert len(big) == 4 * 1024 * 1024

    @pytest.mark.limit_memory("1 MB")
    def test_temporary():
        for _ in range(3):
            chunk = bytes(3 * 1024 * 1024)
            del chunk
"""


def test_limit_memory_trips_and_passes(run):
    result = run(LIMITS)
    result.assert_outcomes(failed=2, passed=1)
    out = result.stdout.str()
    assert "FAILED test_sample.py::test_over" in out
    assert "FAILED test_sample.py::test_temporary" in out
    assert "exceeds limit_memory('1 MB') = 1.0 MiB (1048576 bytes)" in out
    # test_over: the buffer is still referenced when the body returns, so its
    # site is attributed (to the line that created it).
    site = line_of(LIMITS, "big = bytearray(4 * 1024 * 1024)")
    match = re.search(rf"(\d+\.\d) MiB  test_sample\.py:{site}  \(\d+ blocks?\)", out)
    assert match and float(match.group(1)) >= 4.0, out
    # test_temporary: freed before the return; the report says so.
    assert "freed before the test returned and is not attributed above" in out


def test_limit_memory_restores_tracing_state(run):
    result = run("""
        import memhound
        import pytest

        @pytest.mark.limit_memory("64 MB")
        def test_limited():
            assert memhound.is_tracing()

        def test_after():
            assert not memhound.is_tracing()
    """)
    result.assert_outcomes(passed=2)


# --------------------------------------------------------------------------
# Bad marker arguments and options

BAD_MARKERS = [
    ('limit_memory("lots")', "@pytest.mark.limit_memory('lots'): cannot parse size 'lots'"),
    ('limit_memory("0 MB")', "@pytest.mark.limit_memory('0 MB'): size must be positive"),
    ("limit_memory()", "@pytest.mark.limit_memory(limit): missing a required argument: 'limit'"),
    ("no_leaks(runs=0)", "@pytest.mark.no_leaks: runs must be >= 1, got 0"),
    ("no_leaks(runs=-3)", "@pytest.mark.no_leaks: runs must be >= 1, got -3"),
    ("no_leaks(runs=10**20)", "@pytest.mark.no_leaks: runs must be <= 1000000, "
                              "got 100000000000000000000"),
    ("no_leaks(warmup=-1)", "@pytest.mark.no_leaks: warmup must be >= 0, got -1"),
    ("no_leaks(warmup=1.5)", "@pytest.mark.no_leaks: warmup must be an int, got float 1.5"),
    ('no_leaks(runs="5")', "@pytest.mark.no_leaks: runs must be an int, got str '5'"),
    ("no_leaks(frames=0)", "@pytest.mark.no_leaks: frames must be >= 1, got 0"),
    ("no_leaks(repeat=3)", "@pytest.mark.no_leaks(warmup=3, runs=5, frames=16): "
                           "got an unexpected keyword argument 'repeat'"),
]


def test_bad_marker_arguments(run):
    """Each bad marker errors its test at setup, before any fixture, naming marker and value."""
    tests = "".join(f"""
        @pytest.mark.{marker}
        def test_bad_{i}(never):
            pass
    """ for i, (marker, _) in enumerate(BAD_MARKERS))
    result = run("""
        import pytest

        @pytest.fixture
        def never():
            raise AssertionError("fixtures must not be set up")
    """ + tests)
    result.assert_outcomes(errors=len(BAD_MARKERS))
    out = result.stdout.str()
    assert "fixtures must not be set up" not in out
    for i, (_, message) in enumerate(BAD_MARKERS):
        section = out.split(f"ERROR at setup of test_bad_{i} ")[1].split("ERROR at setup")[0]
        assert f"memhound: {message}" in section, section


@pytest.mark.parametrize("option, message", [
    ("--memhound-runs=0", "--memhound-runs must be >= 1, got 0"),
    ("--memhound-warmup=-1", "--memhound-warmup must be >= 0, got -1"),
    ("--memhound-frames=0", "--memhound-frames must be >= 1, got 0"),
    ("--memhound-runs=10000000", "--memhound-runs must be <= 1000000, got 10000000"),
])
def test_bad_options(run, option, message):
    result = run("def test_x(): pass", option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{message}*"])


# --------------------------------------------------------------------------
# pytest features: parametrize, fixture scopes, xfail, -x, xdist

def test_parametrize(run):
    result = run("""
        import pytest

        _kept = []

        @pytest.mark.no_leaks(warmup=1, runs=3)
        @pytest.mark.parametrize("keep", [False, True, False])
        def test_param(keep):
            item = {"keep": keep}
            if keep:
                _kept.append(item)

        @pytest.mark.limit_memory("1 MB")
        @pytest.mark.parametrize("size", [1024, 8 * 1024 * 1024])
        def test_sized(size):
            data = bytearray(size)
            assert len(data) == size
    """, "-v")
    result.assert_outcomes(passed=3, failed=2)
    result.stdout.fnmatch_lines([
        "*test_param?False0? PASSED*", "*test_param?True? FAILED*", "*test_param?False1? PASSED*",
        "*test_sized?1024? PASSED*", "*test_sized?8388608? FAILED*",
    ])


def test_fixtures_of_every_scope(run):
    result = run("""
        import pytest

        log = []

        @pytest.fixture(scope="session")
        def sess():
            log.append("session")
            yield []
            log.append("~session")

        @pytest.fixture(scope="module")
        def mod():
            log.append("module")
            return {}

        @pytest.fixture(scope="class")
        def klass():
            log.append("class")
            return set()

        @pytest.fixture
        def func():
            log.append("function")
            yield [1, 2, 3]
            log.append("~function")

        class TestScopes:
            @pytest.mark.no_leaks(warmup=1, runs=2)
            @pytest.mark.limit_memory("8 MB")
            def test_uses_all(self, sess, mod, klass, func):
                assert func == [1, 2, 3]
                scratch = list(range(100))

            @pytest.mark.no_leaks(warmup=1, runs=2)
            def test_leaks_into_session_fixture(self, sess):
                sess.append(object())

        def test_log():
            assert log == ["session", "module", "class", "function", "~function"], log
    """)
    result.assert_outcomes(passed=2, failed=1)
    result.stdout.fnmatch_lines(["*leak found in *test_leaks_into_session_fixture*"])


def test_xfail(run):
    result = run("""
        import pytest

        _kept = []

        @pytest.mark.xfail(reason="known leak", strict=True)
        @pytest.mark.no_leaks(warmup=1, runs=2)
        def test_known_leak():
            _kept.append(object())

        @pytest.mark.xfail(reason="broken", raises=ZeroDivisionError)
        @pytest.mark.no_leaks
        def test_raises():
            1 / 0

        @pytest.mark.xfail(reason="not leaking after all", strict=True)
        @pytest.mark.no_leaks(warmup=1, runs=2)
        def test_xpass():
            pass

        @pytest.mark.xfail(reason="too big", strict=True)
        @pytest.mark.limit_memory("100 KB")
        def test_too_big():
            data = bytes(1024 * 1024)

        @pytest.mark.no_leaks
        @pytest.mark.limit_memory("1 MB")
        def test_skips_itself():
            pytest.skip("not here")

        def test_tracing_restored():
            import memhound
            assert not memhound.is_tracing()
    """)
    result.assert_outcomes(xfailed=3, failed=1, skipped=1, passed=1)
    result.stdout.fnmatch_lines(["*XPASS(strict)*not leaking after all*"])


def test_exitfirst(run):
    result = run("""
        import pytest

        _kept = []

        @pytest.mark.no_leaks(warmup=1, runs=2)
        def test_a_leaks():
            _kept.append(object())

        def test_b_not_run():
            pass
    """, "-x")
    result.assert_outcomes(failed=1)
    assert "test_b_not_run" not in result.stdout.str()


def test_xdist(run):
    pytest.importorskip("xdist")
    result = run("""
        import pytest

        _kept = []

        @pytest.mark.no_leaks(warmup=1, runs=2)
        def test_leaks():
            _kept.append(object())

        @pytest.mark.limit_memory("1 MB")
        def test_big():
            data = bytearray(3 * 1024 * 1024)

        @pytest.mark.limit_memory("64 MB")
        def test_small():
            data = bytearray(1024)

        @pytest.mark.parametrize("n", range(4))
        def test_plain(n):
            assert n < 4
    """, "-n", "2", "--memhound")
    result.assert_outcomes(passed=5, failed=2)
    out = result.stdout.str()
    assert "leak found in test_sample.py::test_leaks" in out
    assert "exceeds limit_memory('1 MB')" in out
    # The summary is printed once, by the controller, with workers' results.
    assert out.count("memhound: peak traced memory per test") == 1
    assert re.search(r"\d+\.\d MiB  test_sample\.py::test_big", out), out


# --------------------------------------------------------------------------
# --memhound summary

def test_memhound_summary(run):
    source = """
        import pytest

        def test_big():
            data = bytearray(6 * 1024 * 1024)
            assert data

        def test_medium():
            data = bytearray(2 * 1024 * 1024)
            assert data

        def test_tiny():
            assert 1
    """
    result = run(source, "--memhound", "--memhound-top-tests=2")
    result.assert_outcomes(passed=3)
    lines = result.stdout.lines
    start = next(i for i, line in enumerate(lines)
                 if "memhound: peak traced memory per test" in line)
    summary = "\n".join(lines[start:])
    assert "2 of 3 tests, highest peak first" in summary
    big = summary.index("test_sample.py::test_big")
    medium = summary.index("test_sample.py::test_medium")
    assert big < medium and "test_tiny" not in summary
    site = line_of(source, "bytearray(6 * 1024 * 1024)")
    assert re.search(rf"\d+\.\d MiB  test_sample\.py:{site}  \(\d+ blocks?\)", summary), summary


def test_limit_memory_when_already_tracing(run):
    """Tracing started by the suite itself: measured against the level at the start, left on."""
    source = """
        import memhound
        import pytest

        @pytest.fixture(scope="module", autouse=True)
        def tracing():
            memhound.start(4)
            keep = bytearray(8 * 1024 * 1024)      # allocated before the test: not counted
            yield
            assert memhound.is_tracing()
            memhound.stop()

        @pytest.mark.limit_memory("4 MB")
        def test_small_increase():
            data = bytearray(1024 * 1024)

        @pytest.mark.limit_memory("1 MB")
        def test_big_increase():
            data = bytearray(2 * 1024 * 1024)
    """
    result = run(source)
    result.assert_outcomes(passed=1, failed=1)
    out = result.stdout.str()
    assert "FAILED test_sample.py::test_big_increase" in out
    site = line_of(source, "bytearray(2 * 1024 * 1024)")
    assert re.search(rf"2\.0 MiB  test_sample\.py:{site}  \(\d+ blocks?\)", out), out
    other = line_of(source, "bytearray(8 * 1024 * 1024)")
    assert f"test_sample.py:{other} " not in out


def test_limit_memory_without_return_hook(run):
    """No free sys.monitoring tool id (3.12+) / another profiler (3.11): sites after return."""
    source = """
        import sys
        import pytest

        @pytest.fixture
        def hook_taken():
            if hasattr(sys, "monitoring"):
                taken = [t for t in range(6) if sys.monitoring.get_tool(t) is None]
                for tool in taken:
                    sys.monitoring.use_tool_id(tool, "busy")
                yield
                for tool in taken:
                    sys.monitoring.free_tool_id(tool)
            else:
                sys.setprofile(lambda *args: None)
                yield
                sys.setprofile(None)

        _kept = []

        @pytest.mark.limit_memory("1 MB")
        def test_over(hook_taken):
            _kept.append(bytearray(2 * 1024 * 1024))
            local = bytearray(3 * 1024 * 1024)
    """
    result = run(source)
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "Biggest allocation sites, alive after the test function returned " \
           "(its locals already released):" in out
    held = line_of(source, "_kept.append(")
    assert re.search(rf"2\.0 MiB  test_sample\.py:{held} ", out), out      # still held by _kept
    released = line_of(source, "local = bytearray")
    assert f"test_sample.py:{released} " not in out                     # the released local
    assert "3.0 MiB of the peak was freed" in out


def test_unittest_testcase_is_reported_not_ignored(run):
    result = run("""
        import unittest
        import pytest

        class Case(unittest.TestCase):
            @pytest.mark.limit_memory("1 MB")
            def test_marked(self):
                pass

            def test_unmarked(self):
                pass
    """, "--memhound-leaks", "--memhound")
    result.assert_outcomes(passed=1, errors=1)
    result.stdout.fnmatch_lines([
        "*memhound: test_sample.py::Case::test_marked: no_leaks and limit_memory apply to "
        "pytest test functions and methods, not to unittest.TestCase tests*"])


def test_integer_limit_in_bytes(run):
    result = run("""
        import pytest

        @pytest.mark.limit_memory(100_000)
        def test_over():
            data = bytearray(1024 * 1024)
    """)
    result.assert_outcomes(failed=1)
    result.stdout.fnmatch_lines(["*exceeds limit_memory(100000) = 97.7 KiB (100000 bytes)*"])


# --------------------------------------------------------------------------
# The leak check's own work is not the test's memory (issue 17, item 8)

CHECKED_AND_LIMITED = """
    import pytest

    # A big heap makes the leak check's census and analysis big too.
    _heap = [(i, str(i)) for i in range(200_000)]

    @pytest.mark.no_leaks
    @pytest.mark.limit_memory("100 KB")
    def test_small():
        data = bytearray(32)
        assert len(data) == 32

    @pytest.mark.no_leaks(warmup=1, runs=2)
    def test_tiny_checked():
        assert [1, 2]

    @pytest.mark.no_leaks(warmup=1, runs=2)
    @pytest.mark.limit_memory("1 MB")
    def test_big_checked():
        data = bytearray(3 * 1024 * 1024)
        assert data
"""


def test_no_leaks_work_does_not_count_toward_limit_memory_or_peaks(run):
    result = run(CHECKED_AND_LIMITED, "--memhound", "--memhound-top-tests=0")
    result.assert_outcomes(passed=2, failed=1)
    out = result.stdout.str()
    assert "FAILED test_sample.py::test_big_checked" in out
    assert "test_small" not in out.split("short test summary")[-1]
    # The failing one is charged its own 3 MiB buffer, not the analysis of the heap.
    match = re.search(r"peak traced memory (\d+\.\d) MiB \((\d+) bytes\) exceeds "
                      r"limit_memory\('1 MB'\)", out)
    assert match and 3 * MIB <= int(match.group(2)) < 3 * MIB + 64 * 1024, out
    if hasattr(sys, "monitoring"):     # 3.12+: sites at the body's first return
        site = line_of(CHECKED_AND_LIMITED, "bytearray(3 * 1024 * 1024)")
        assert re.search(rf"3\.0 MiB  test_sample\.py:{site}  \(\d+ blocks?\)", out), out
    else:                               # 3.11 under no_leaks: after the first run, and says so
        assert "memhound: alive after the test function returned" in out, out
    # In the summary, the small tests show a few hundred bytes (before: hundreds of KiB).
    summary = out[out.index("memhound: peak traced memory per test"):]
    for name in ("test_small", "test_tiny_checked"):
        match = re.search(rf"^\s*(\d+) B  test_sample\.py::{name}$", summary, re.M)
        assert match and int(match.group(1)) < 4096, summary


# --------------------------------------------------------------------------
# No PytestAssertRewriteWarning (issue 17, item 8)

def test_no_assert_rewrite_warning_under_memhound_run_or_plain_pytest(pytester, monkeypatch):
    package_parent = os.path.dirname(os.path.dirname(os.path.abspath(memhound.__file__)))
    path = [package_parent] + [p for p in os.environ.get("PYTHONPATH", "").split(os.pathsep) if p]
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(path))
    pytester.makepyprojecttoml('[tool.pytest.ini_options]\nfilterwarnings = ["error"]\n')
    pytester.makepyfile(test_strict="""
        import pytest

        @pytest.mark.no_leaks(warmup=1, runs=2)
        def test_checked():
            assert [1] == [1]
    """)
    quiet = ("-p", "no:cacheprovider", "-p", "no:benchmark", "-p", "no:hypothesispytest")
    for launcher in (("-m", "memhound", "run", "--top", "1", "-m", "pytest"), ("-m", "pytest")):
        result = pytester.run(sys.executable, *launcher, *PLUGIN_ARGS, *quiet, timeout=300)
        out = result.stdout.str() + result.stderr.str()
        assert result.ret == 0, out
        assert "PytestAssertRewriteWarning" not in out and "1 passed" in out, out
