"""memhound's pytest plugin: leak checks and memory limits inside a test suite.

Registered through the ``pytest11`` entry point, the plugin does nothing and
traces nothing unless asked for:

* ``@pytest.mark.no_leaks(warmup=3, runs=5, frames=16)`` runs the test body
  ``warmup + runs`` times (fixtures are set up once) under
  ``memhound.find_leaks`` and fails with its report -- what survived, the path
  from a named root that keeps it alive, where it was created and why.
* ``--memhound-leaks`` applies that check to every test;
  ``@pytest.mark.allow_leaks`` opts a test out (it also wins over
  ``no_leaks``).
* ``@pytest.mark.limit_memory("24 MB")`` fails the test when the peak of the
  memory traced while its body runs exceeds the limit, and lists the biggest
  allocation sites.
* ``--memhound`` traces every test and prints the tests with the highest
  peaks and their top allocation sites at the end of the run.

Sizes: ``B``, ``KB``/``KiB``, ``MB``/``MiB``, ``GB``/``GiB``, ``TB``/``TiB``,
case-insensitive, spaces optional.  As in pytest-memray, every unit is a power
of 1024 ("1 MB" == "1 MiB" == 1048576 bytes), so limits written for
pytest-memray keep their meaning.

What is measured: memhound traces (or, if tracing is already on, measures
against the level at the start) the Python memory blocks allocated while the
test *function* runs -- not its fixtures' setup or teardown -- and reports
``peak - level at start``.

"Sites at the peak" is an approximation: the engine keeps the exact peak value
but not the set of blocks alive at that instant.  memhound snapshots the traces
when the test function returns, *before* its local variables are released
(``sys.monitoring`` PY_RETURN on the test's code object on 3.12+, a
``sys.setprofile`` hook scoped to the test on 3.11), and ranks the sites alive
then.  Memory still referenced at the end of the test body -- the usual cause
of a high peak -- is therefore attributed exactly; memory freed earlier in the
test is not, and the report says how much of the peak that is.

Under ``no_leaks`` each run of the body is measured from its own start, so
the leak check's own work between the runs never counts toward
``limit_memory`` or the ``--memhound`` peaks.  PYTEST_DONT_REWRITE: pytest
leaves this module's asserts alone (it may be imported before pytest's
import hook, e.g. by ``memhound run -m pytest``).
"""
from __future__ import annotations

import inspect
import os
import re
import sys
from dataclasses import dataclass, field

import pytest

import memhound as _mh
from memhound.leaks import MAX_RUNS
from memhound.report.terminal import format_size
from memhound.tracing import LEAK_FRAMES, PEAK_FRAMES, check_frames, pause_tracing

__all__ = ["parse_size", "format_size"]

_MARKERS = (
    f"no_leaks(warmup=3, runs=5, frames={LEAK_FRAMES}): run the test body warmup+runs times "
    "(fixtures set up once) and fail if memhound.find_leaks finds a leak.",
    "allow_leaks: exempt the test from --memhound-leaks and no_leaks.",
    "limit_memory(limit): fail the test if the peak memory traced while its body "
    "runs exceeds limit, e.g. '24 MB', '1.5 GiB' (units are powers of 1024).",
)

# ---------------------------------------------------------------------------
# Sizes

_SIZE_RE = re.compile(
    r"\s*(?P<num>\+?(?:\d+(?:\.\d*)?|\.\d+))\s*(?P<unit>[kmgt]i?b|b)\s*\Z",
    re.IGNORECASE)
_UNIT_SHIFT = {"b": 0, "k": 10, "m": 20, "g": 30, "t": 40}


def parse_size(value) -> int:
    """Return the number of bytes in a size such as ``"24 MB"``.

    Accepts a positive int (bytes) or a string: a number, optional spaces and
    a unit among B, KB, MB, GB, TB and KiB, MiB, GiB, TiB (case-insensitive).
    As in pytest-memray every unit is binary: KB == KiB == 1024 bytes.

    >>> parse_size("1.5 GiB"), parse_size("24MB"), parse_size("100 B")
    (1610612736, 25165824, 100)
    """
    if isinstance(value, bool):
        raise ValueError(f"expected a size such as '24 MB', got {value!r}")
    if isinstance(value, int):
        size = value
    elif isinstance(value, str):
        match = _SIZE_RE.match(value)
        if match is None:
            raise ValueError(
                f"cannot parse size {value!r}: expected a number and a unit, "
                "e.g. '24 MB', '1.5 GiB', '512 KiB' or '100 B'")
        unit = match["unit"].lower()
        size = int(float(match["num"]) * (1 << _UNIT_SHIFT[unit[0]]))
    else:
        raise ValueError(
            f"expected a size such as '24 MB', got {type(value).__name__} {value!r}")
    if size <= 0:
        raise ValueError(f"size must be positive, got {value!r}")
    return size


# ---------------------------------------------------------------------------
# Marker arguments


def _int_arg(marker, name, value, minimum, maximum=MAX_RUNS):
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"@pytest.mark.{marker}: {name} must be an int, "
                         f"got {type(value).__name__} {value!r}")
    if value < minimum:
        raise ValueError(f"@pytest.mark.{marker}: {name} must be >= {minimum}, got {value!r}")
    if value > maximum:
        raise ValueError(f"@pytest.mark.{marker}: {name} must be <= {maximum}, got {value!r}")
    return value


def _no_leaks_signature(warmup=3, runs=5, frames=LEAK_FRAMES):
    return warmup, runs, frames


def _limit_memory_signature(limit):
    return limit


def _bind(marker, signature):
    """Bind a marker's arguments to `signature`, with an error naming the marker."""
    try:
        bound = inspect.signature(signature).bind(*marker.args, **marker.kwargs)
    except TypeError as exc:
        params = str(inspect.signature(signature))
        raise ValueError(f"@pytest.mark.{marker.name}{params}: {exc}") from None
    bound.apply_defaults()
    return bound.arguments


def leak_options(marker):
    """(warmup, runs, frames) of a ``no_leaks`` marker, validated.

    >>> leak_options(pytest.mark.no_leaks(runs=2).mark)
    (3, 2, 16)
    """
    args = _bind(marker, _no_leaks_signature)
    try:
        frames = check_frames(args["frames"])
    except (TypeError, ValueError) as exc:
        raise ValueError(f"@pytest.mark.no_leaks: {exc}") from None
    return (_int_arg("no_leaks", "warmup", args["warmup"], 0),
            _int_arg("no_leaks", "runs", args["runs"], 1), frames)


def memory_limit(marker):
    """The byte limit of a ``limit_memory`` marker, validated.

    >>> memory_limit(pytest.mark.limit_memory("24 MB").mark)
    25165824
    """
    limit = _bind(marker, _limit_memory_signature)["limit"]
    try:
        return parse_size(limit)
    except ValueError as exc:
        raise ValueError(f"@pytest.mark.limit_memory({limit!r}): {exc}") from None


# ---------------------------------------------------------------------------
# Per-test plan and measurement


@dataclass
class _Plan:
    leaks: tuple | None = None      # (warmup, runs, frames)
    limit: int | None = None
    limit_text: object = None       # the marker's argument as written, for messages
    trace: bool = False             # measure peak and sites
    error: str | None = None


@dataclass
class _Measurement:
    peak: int = 0                   # bytes above the level at the start
    at_return: int = 0              # bytes alive at the snapshot
    sites: list = field(default_factory=list)  # [(file, line, size, count, caller)]
    note: str = ""


_PLAN = pytest.StashKey[_Plan]()
_RESULT = pytest.StashKey[_Measurement]()


class _ReturnHook:
    """Snapshot the traces while the test function's locals are still alive.

    3.12+: a local PY_RETURN event on the test's code object calls `callback`
    at each return (no cost for any other code).  3.11 has no such event: a
    profile function catches the test's frame at its first call and removes
    itself at once, so only the few calls before the test pay for it; the
    frame object, kept until `grabbed()` is consumed, takes ownership of the
    locals when the function returns.  Not used when another profiler is set
    or, on 3.11, under no_leaks (the kept locals would outlive the first run).
    """

    def __init__(self, code, callback, may_grab):
        self.code = code
        self.callback = callback
        self.may_grab = may_grab
        self.tool = None
        self.profiling = False
        self.frame = None

    def install(self):
        if self.code is None:
            return False
        monitoring = getattr(sys, "monitoring", None)
        if monitoring is not None:
            for tool in (3, 4, 5, 2):
                if monitoring.get_tool(tool) is None:
                    break
            else:
                return False
            monitoring.use_tool_id(tool, "memhound")
            self.tool = tool
            monitoring.register_callback(tool, monitoring.events.PY_RETURN, self._on_return)
            monitoring.set_local_events(tool, self.code, monitoring.events.PY_RETURN)
            return True
        if not self.may_grab or sys.getprofile() is not None:
            return False
        sys.setprofile(self._on_call)
        self.profiling = True
        return True

    def remove(self, use_frame=True):
        """Uninstall; on 3.11 first run `callback` while the grabbed frame lives."""
        if self.tool is not None:
            monitoring = sys.monitoring
            monitoring.set_local_events(self.tool, self.code, 0)
            monitoring.register_callback(self.tool, monitoring.events.PY_RETURN, None)
            monitoring.free_tool_id(self.tool)
            self.tool = None
        if self.profiling:
            sys.setprofile(None)
            self.profiling = False
        if self.frame is not None:
            if use_frame:
                self.callback()
            self.frame = None

    def _on_return(self, code, offset, retval):
        if code is self.code:
            self.callback()

    def _on_call(self, frame, event, arg):
        if event == "call" and frame.f_code is self.code:
            self.frame = frame
            sys.setprofile(None)
            self.profiling = False


def _test_code(func):
    func = inspect.unwrap(getattr(func, "__func__", func))
    return getattr(func, "__code__", None)


class _Tracker:
    """Measure the peak traced memory of one call and snapshot its biggest sites.

    Under no_leaks (`repeated`) the body runs many times inside find_leaks,
    whose own work between the runs (collections, the census, the analysis)
    is not the test's memory: each run is measured from its own start
    (`run_begin`/`run_end`) and the peak is the highest of the runs.
    """

    def __init__(self, code, nframe, top, rootdir, repeated):
        self.nframe = nframe
        self.repeated = repeated
        # Under no_leaks, snapshot only at the first return: a snapshot kept
        # from a measured run would itself look like a survivor.
        self.max_snapshots = 1 if repeated else sys.maxsize
        self.top = top
        self.rootdir = rootdir
        self.hook = _ReturnHook(code, self._snapshot_if_higher, may_grab=not repeated)
        self.snapshot = None
        self.snapshot_level = -1
        self.snapshots_taken = 0
        self.before = None
        self.owner = False
        self.base = 0
        self.hooked = False
        self.run_base = 0
        self.run_peak = 0           # repeated: highest peak of a run, above its start
        self.snapshot_base = 0      # the level the snapshot is measured against
        self.note = ""

    def begin(self):
        """Start tracing (unless already on), note the level, reset the peak."""
        self.owner = not _mh.is_tracing()
        if self.owner:
            _mh.start(self.nframe)
        else:
            with pause_tracing():
                self.before = _mh.take_snapshot()
        self.base = self.snapshot_base = _mh.get_traced_memory()[0]
        self.hooked = self.hook.install()
        _mh.reset_peak()

    def run_begin(self):
        """Repeated: one run of the body starts; measure it from here."""
        self.run_base = _mh.get_traced_memory()[0]
        if self.snapshot is None:       # the snapshot is taken in the first run
            self.snapshot_base = self.run_base
        _mh.reset_peak()

    def run_end(self):
        """Repeated: one run of the body ended (its locals released)."""
        if not _mh.is_tracing():
            return
        current, peak = _mh.get_traced_memory()
        if peak - self.run_base > self.run_peak:
            self.run_peak = peak - self.run_base
        if self.snapshot is None and not self.hooked:
            # No return hook: the first run's sites, taken right after it.
            with pause_tracing():
                self.snapshot_level = current
                self.snapshot = _mh.take_snapshot()
                self.snapshots_taken = self.max_snapshots
            self.note = "alive after the test function returned (its locals already released)"

    def _snapshot_if_higher(self):
        if self.snapshots_taken >= self.max_snapshots or not _mh.is_tracing():
            return
        with pause_tracing():
            current = _mh.get_traced_memory()[0]
            if current > self.snapshot_level:
                self.snapshots_taken += 1
                self.snapshot = None      # release the previous one first
                self.snapshot = _mh.take_snapshot()
                self.snapshot_level = current

    def finish(self) -> _Measurement:
        """Stop measuring; return the peak and the biggest sites."""
        if self.hooked:
            self.hook.remove()
            self.hooked = False
        if not _mh.is_tracing():       # the test stopped memhound itself
            return _Measurement(note="memhound tracing was stopped by the test")
        current, peak = _mh.get_traced_memory()
        if self.repeated:
            result = _Measurement(peak=self.run_peak, note=self.note)
        else:
            result = _Measurement(peak=max(peak - self.base, 0))
        with pause_tracing():
            if self.snapshot is None:
                self.snapshot_level = current
                self.snapshot = _mh.take_snapshot()
                result.note = ("alive after the test function returned "
                               "(its locals already released)")
            result.at_return = max(self.snapshot_level - self.snapshot_base, 0)
            result.sites = self._sites()
        return result

    def close(self):
        """Undo begin(): remove the hook, stop tracing if we started it."""
        if self.hooked:
            self.hook.remove(use_frame=False)
            self.hooked = False
        if self.owner and _mh.is_tracing():
            _mh.stop()
        self.snapshot = self.before = None

    def _sites(self):
        snapshot = self.snapshot
        own = os.path.dirname(os.path.abspath(_mh.__file__))
        snapshot = snapshot.filter_traces([_mh.Filter(False, os.path.join(own, "*"))])
        if self.before is not None:
            stats = [(s.size_diff, s.count_diff, s.traceback)
                     for s in snapshot.compare_to(self.before, "traceback")]
        else:
            stats = [(s.size, s.count, s.traceback) for s in snapshot.statistics("traceback")]
        by_line = {}
        for size, count, traceback in stats:
            if size <= 0 or not len(traceback):
                continue
            frame = traceback[-1]       # tracemalloc order: oldest first
            key = (frame.filename, frame.lineno)
            entry = by_line.setdefault(key, [0, 0, None, 0])
            entry[0] += size
            entry[1] += count
            if size > entry[3]:
                entry[2], entry[3] = self._caller(traceback), size
        ranked = sorted(by_line.items(), key=lambda kv: -kv[1][0])[: self.top]
        return [(self._relative(f), line, size, count, caller)
                for (f, line), (size, count, caller, _) in ranked]

    def _caller(self, traceback):
        """The most recent frame inside the project, when the site itself is not."""
        frames = list(traceback)[::-1]            # most recent first
        if _inside(frames[0].filename, self.rootdir):
            return None
        for frame in frames[1:]:
            if _inside(frame.filename, self.rootdir):
                return f"{self._relative(frame.filename)}:{frame.lineno}"
        return None

    def _relative(self, filename):
        if _inside(filename, self.rootdir):
            return os.path.relpath(filename, self.rootdir)
        return filename


def _inside(filename, root):
    return bool(root) and os.path.abspath(filename).startswith(root + os.sep)


def _format_sites(measurement, indent="    "):
    lines = []
    for filename, lineno, size, count, caller in measurement.sites:
        blocks = "block" if count == 1 else "blocks"
        line = f"{indent}{format_size(size):>10}  {filename}:{lineno}  ({count} {blocks})"
        if caller:
            line += f"  called from {caller}"
        lines.append(line)
    if not lines:
        lines.append(f"{indent}(no traced allocation alive then)")
    return lines


class MemhoundFailure(pytest.fail.Exception):
    """A test failed memhound's leak check or memory limit."""


# As pytest does for its own outcomes: "MemhoundFailure: ..." in summaries,
# not "memhound.pytest_plugin.MemhoundFailure: ...".
MemhoundFailure.__module__ = "builtins"


def _limit_message(plan, m: _Measurement):
    lines = [f"memhound: peak traced memory {format_size(m.peak)} ({m.peak} bytes) exceeds "
             f"limit_memory({plan.limit_text!r}) = {format_size(plan.limit)} "
             f"({plan.limit} bytes)"]
    if m.note and not m.sites:
        lines.append(f"memhound: {m.note}")
        return "\n".join(lines)
    if m.note:
        lines.append(f"Biggest allocation sites, {m.note}:")
    else:
        lines.append(f"Biggest allocation sites alive when the test function returned "
                     f"({format_size(m.at_return)} of the peak):")
    lines += _format_sites(m)
    freed = m.peak - m.at_return
    if freed > 0:
        lines.append(f"    {format_size(freed)} of the peak was freed before the test "
                     "returned and is not attributed above.")
    return "\n".join(lines)


def _instrument(item, original, plan, config):
    """The test function wrapped with the leak check and/or measurement."""
    rootdir = str(config.rootpath)
    top = config.getoption("memhound_top_sites")
    nframe = config.getoption("memhound_frames")

    def run_checked(*args, **kwargs):
        def body():
            original(*args, **kwargs)

        def measured_body():
            tracker.run_begin()
            try:
                original(*args, **kwargs)
            finally:
                tracker.run_end()

        tracker = None
        report = None
        measurement = None
        try:
            if plan.trace:
                if plan.leaks is None:
                    tracker = _Tracker(_test_code(original), nframe, top, rootdir, False)
                else:
                    tracker = _Tracker(_test_code(original), max(nframe, plan.leaks[2]),
                                       top, rootdir, True)
                tracker.begin()
            if plan.leaks is not None:
                warmup, runs, frames = plan.leaks
                report = _mh.find_leaks(body if tracker is None else measured_body,
                                        warmup=warmup, runs=runs, frames=frames)
            else:
                body()
            if tracker is not None:
                measurement = tracker.finish()
        finally:
            if tracker is not None:
                tracker.close()
        if measurement is not None:
            item.stash[_RESULT] = measurement
        problems = []
        if report is not None and report.leaked:
            warmup, runs, _ = plan.leaks
            problems.append(f"memhound: leak found in {item.nodeid} "
                            f"(warmup={warmup}, runs={runs})\n{report}")
        if plan.limit is not None and measurement is not None and measurement.peak > plan.limit:
            problems.append(_limit_message(plan, measurement))
        if problems:
            raise MemhoundFailure("\n\n".join(problems), pytrace=False)

    return run_checked


def _instrumentable(item):
    """True for test functions that pytest calls through pytest_pyfunc_call.

    Not: doctests and other non-function items, unittest.TestCase methods
    (run by unittest itself).  Async tests are decided at call time: a plugin
    such as pytest-asyncio has made them sync by then, or pytest rejects them.
    """
    return isinstance(item, pytest.Function) and not any(
        cls.__name__ == "TestCaseFunction" for cls in type(item).__mro__)


def _make_plan(item, config) -> _Plan:
    plan = _Plan()
    explicit = any(item.get_closest_marker(name) for name in ("no_leaks", "limit_memory"))
    if not _instrumentable(item):
        # --memhound / --memhound-leaks skip such items silently; a marker
        # asking for a check that cannot run must not pass silently.
        if explicit:
            plan.error = (f"{item.nodeid}: no_leaks and limit_memory apply to pytest test "
                          "functions and methods, not to unittest.TestCase tests")
        return plan
    try:
        allow = item.get_closest_marker("allow_leaks") is not None
        marker = item.get_closest_marker("no_leaks")
        if not allow:
            if marker is not None:
                plan.leaks = leak_options(marker)
            elif config.getoption("memhound_leaks"):
                plan.leaks = (config.getoption("memhound_warmup"),
                              config.getoption("memhound_runs"), LEAK_FRAMES)
        marker = item.get_closest_marker("limit_memory")
        if marker is not None:
            plan.limit = memory_limit(marker)
            plan.limit_text = marker.args[0] if marker.args else marker.kwargs["limit"]
            plan.trace = True
        if config.getoption("memhound"):
            plan.trace = True
    except ValueError as exc:
        plan.error = str(exc)
    return plan


# ---------------------------------------------------------------------------
# Hooks.  Only pytest_addoption, pytest_configure and
# pytest_collection_modifyitems are always active; _Manager's hooks are
# registered only when an option or a marker asks for memhound.


class _Manager:
    def __init__(self, config):
        self.config = config
        self.results = {}            # nodeid -> (peak, sites)

    @pytest.hookimpl(tryfirst=True)
    def pytest_runtest_setup(self, item):
        plan = _make_plan(item, self.config)
        item.stash[_PLAN] = plan
        if plan.error:
            raise MemhoundFailure(f"memhound: {plan.error}", pytrace=False)

    @pytest.hookimpl(hookwrapper=True)
    def pytest_pyfunc_call(self, pyfuncitem):
        plan = pyfuncitem.stash.get(_PLAN, None)
        original = pyfuncitem.obj
        if (plan is None or (plan.leaks is None and not plan.trace)
                or inspect.iscoroutinefunction(original)
                or inspect.isasyncgenfunction(original)):
            yield                 # pytest reports unsupported async tests itself
            return
        pyfuncitem.obj = _instrument(pyfuncitem, original, plan, self.config)
        try:
            yield
        finally:
            pyfuncitem.obj = original

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item, call):
        outcome = yield
        if call.when != "call":
            return
        measurement = item.stash.get(_RESULT, None)
        if measurement is not None and self.config.getoption("memhound"):
            report = outcome.get_result()
            # Plain attributes survive pytest-xdist's report serialization.
            report.memhound_peak = measurement.peak
            report.memhound_sites = [list(site) for site in measurement.sites]

    def pytest_runtest_logreport(self, report):
        peak = getattr(report, "memhound_peak", None)
        if report.when == "call" and peak is not None:
            self.results[report.nodeid] = (peak, report.memhound_sites)

    def pytest_terminal_summary(self, terminalreporter):
        if not self.config.getoption("memhound"):
            return
        tr = terminalreporter
        tr.write_sep("=", "memhound: peak traced memory per test")
        if not self.results:
            tr.write_line("no test was measured")
            return
        top = self.config.getoption("memhound_top_tests")
        ranked = sorted(self.results.items(), key=lambda kv: -kv[1][0])
        shown = ranked if top == 0 else ranked[:top]
        tr.write_line(f"{len(shown)} of {len(ranked)} tests, highest peak first "
                      "(sites: biggest alive when the test function returned)")
        for nodeid, (peak, sites) in shown:
            tr.write_line(f"{format_size(peak):>10}  {nodeid}")
            measurement = _Measurement(sites=[tuple(s) for s in sites])
            for line in _format_sites(measurement, indent="            "):
                tr.write_line(line)


def pytest_addoption(parser):
    """pytest hook: memhound's command-line options.

    Example::

        $ pytest --memhound --memhound-frames 16 --memhound-top-tests 10
        $ pytest --memhound-leaks --memhound-runs 3
    """
    group = parser.getgroup("memhound", "memhound memory checks")
    group.addoption("--memhound", action="store_true", default=False,
                    help="trace every test and print the tests with the highest "
                         "peak memory and their top allocation sites")
    group.addoption("--memhound-leaks", action="store_true", default=False,
                    help="run every test body repeatedly and fail it if it leaks "
                         "(opt out with @pytest.mark.allow_leaks)")
    group.addoption("--memhound-warmup", type=int, default=3, metavar="N",
                    help="warm-up runs for --memhound-leaks (default 3)")
    group.addoption("--memhound-runs", type=int, default=5, metavar="N",
                    help="measured runs for --memhound-leaks (default 5)")
    group.addoption("--memhound-frames", type=int, default=PEAK_FRAMES, metavar="N",
                    help=f"frames stored per allocation when measuring peaks (default {PEAK_FRAMES})")
    group.addoption("--memhound-top-tests", type=int, default=5, metavar="N",
                    help="tests shown in the --memhound summary (0 = all; default 5)")
    group.addoption("--memhound-top-sites", type=int, default=3, metavar="N",
                    help="allocation sites shown per test (default 3)")


def pytest_configure(config):
    """pytest hook: register the markers, check the options, and activate the
    checks when ``--memhound`` or ``--memhound-leaks`` asks for them.

    Example::

        $ pytest --memhound-frames 0
        ERROR: --memhound-frames must be >= 1, got 0
    """
    for line in _MARKERS:
        config.addinivalue_line("markers", line)
    for name, minimum in (("memhound_warmup", 0), ("memhound_runs", 1),
                          ("memhound_top_tests", 0), ("memhound_top_sites", 1)):
        value = config.getoption(name)
        if value < minimum:
            option = "--" + name.replace("_", "-")
            raise pytest.UsageError(f"{option} must be >= {minimum}, got {value}")
        if name in ("memhound_warmup", "memhound_runs") and value > MAX_RUNS:
            option = "--" + name.replace("_", "-")
            raise pytest.UsageError(f"{option} must be <= {MAX_RUNS}, got {value}")
    try:
        check_frames(config.getoption("memhound_frames"), "--memhound-frames")
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    if config.getoption("memhound") or config.getoption("memhound_leaks"):
        config.pluginmanager.register(_Manager(config), "memhound-manager")


_OUR_MARKERS = ("no_leaks", "limit_memory")      # allow_leaks alone asks for nothing


def pytest_collection_modifyitems(config, items):
    """pytest hook: activate the checks when a collected test carries a
    ``no_leaks`` or ``limit_memory`` marker (no option needed).

    Example::

        @pytest.mark.limit_memory("24 MB")
        def test_load():
            load_everything()
    """
    if config.pluginmanager.has_plugin("memhound-manager"):
        return
    for item in items:
        if any(item.get_closest_marker(name) for name in _OUR_MARKERS):
            config.pluginmanager.register(_Manager(config), "memhound-manager")
            return
