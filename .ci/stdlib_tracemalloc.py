#!/usr/bin/env python3
"""Run CPython's own test_tracemalloc against memhound (drop-in check).

    python .ci/stdlib_tracemalloc.py [--expect-fail Class.test_name ...] [--stdlib] [-v]

Run it with the Python under test, with memhound importable (installed, or
PYTHONPATH=src after an in-place build).  It loads that interpreter's
``test.test_tracemalloc``, replaces the module's global ``tracemalloc`` with
``memhound`` (what ``import memhound as tracemalloc`` gives), and runs the
classes TestTraceback, TestTracemallocEnabled, TestSnapshot and TestFilters
with unittest.  The other classes (TestCommandLine, TestCAPI) test the
interpreter's -X tracemalloc / PYTHONTRACEMALLOC start-up and its C API
(PyTraceMalloc_Track & co.), which belong to the stdlib module: they are not
run.

Checks that memhound is what ran: the test module's ``tracemalloc`` is
memhound before and after the run, memhound.start() was called by the
tests, and the stdlib tracer (``_tracemalloc``) was never started (its
``start`` is replaced by a function that records the call and raises).

The tests run at the stack depth they have under CPython's test runner
(``python -m test``: a test method is the 24th frame on 3.11-3.15):
TestTracemallocEnabled.test_snapshot asserts that the second trace of a
snapshot has more than 10 frames in its stack ("This can vary"), which
holds there but not under a bare unittest runner, with stdlib tracemalloc
too (``--stdlib`` runs the same harness on the stdlib module, as a control).

Every test of the four classes must pass.  A test that skips counts as a
failure, except the few listed in NOT_APPLICABLE (each with its reason).
``--expect-fail NAME`` (``Class.test``) names a known failure: it is
reported, does not fail the run, and an expected failure that passes fails
the run (so the option is removed once the fix lands).

Prints counts per class, one summary line ``N passed, N failed`` (plus
expected failures), lists failures and errors, and exits non-zero on any
failure, error, unexpected skip or unexpected success.
"""
import argparse
import sys
import unittest

CLASSES = ("TestTraceback", "TestTracemallocEnabled", "TestSnapshot", "TestFilters")

# Tests of the four classes that cannot apply to memhound, with the reason.
# Keep this short: every name here is reviewed.  (Empty: all of them apply.)
NOT_APPLICABLE = {
}


class _StdlibStarted(AssertionError):
    pass


def _guard_stdlib(calls):
    """Make any start of the stdlib tracer visible (recorded, and raising)."""
    import _tracemalloc
    import tracemalloc as std

    def forbidden_start(*args, **kwargs):
        calls.append(args)
        raise _StdlibStarted("stdlib tracemalloc.start() called during the memhound run")

    saved = [(mod, mod.start) for mod in (_tracemalloc, std)]
    for mod, _ in saved:
        mod.start = forbidden_start
    return saved, _tracemalloc


def _count_starts(module, counter):
    original = module.start

    def start(*args, **kwargs):
        counter.append(args)
        return original(*args, **kwargs)

    start.__wrapped__ = original
    module.start = start
    return original


# Depth of a test method's frame (outermost frame = 1) under CPython's test
# runner, the same on 3.11, 3.12, 3.13, 3.14 and 3.15: measured as
# len(traceback.extract_stack()) in a wrapper of
# TestTracemallocEnabled.test_snapshot, run in-process with
#   python -c "...; from test.libregrtest.main import main; main(['test_tracemalloc'])"
REGRTEST_DEPTH = 24


def _frame_depth():
    """Depth of the caller's frame (the outermost frame is 1)."""
    frame, depth = sys._getframe(1), 0
    while frame is not None:
        depth += 1
        frame = frame.f_back
    return depth


def _at_depth(depth, fn):
    """Call fn() from a frame at `depth` (or deeper, if already deeper)."""
    if _frame_depth() < depth:
        return _at_depth(depth, fn)
    return fn()


class _Probe(unittest.TestCase):
    depth = None

    def test_depth(self):
        type(self).depth = _frame_depth()


def _run(runner, suite, method_depth):
    """runner.run(suite) with each test method at `method_depth`."""
    probe = unittest.TestSuite([unittest.defaultTestLoader.loadTestsFromTestCase(_Probe)])
    base = _frame_depth() + 1
    # The probe has the nesting of the real suite (a suite of class suites),
    # so it gives how many frames unittest puts between run() and a test.
    _at_depth(base, lambda: unittest.TextTestRunner(stream=runner.stream).run(probe))
    offset = _Probe.depth - base
    result = _at_depth(method_depth - offset, lambda: runner.run(suite))
    return result, _Probe.depth - base + max(base, method_depth - offset)


def _name(test):
    # "test.test_tracemalloc.TestSnapshot.test_slices" -> "TestSnapshot.test_slices"
    return ".".join(test.id().split(".")[-2:])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--expect-fail", action="append", default=[], metavar="CLASS.TEST",
                    help="a known failing test (reported, not counted as a failure; "
                         "passing it fails the run)")
    ap.add_argument("--stdlib", action="store_true",
                    help="control run: the same harness on stdlib tracemalloc (no substitution)")
    ap.add_argument("-v", "--verbose", action="store_true")
    args = ap.parse_args(argv)

    try:
        from test import test_tracemalloc
    except ImportError as exc:
        print(f"stdlib_tracemalloc: no test.test_tracemalloc in {sys.executable}: {exc}")
        return 2
    import tracemalloc as std
    if args.stdlib:
        memhound = None
    else:
        import memhound

    # The substitution: the test module's global `tracemalloc` is memhound.
    # It is the only name the four classes use to reach the tracer (the
    # module's _testcapi/_testinternalcapi are used only by TestCAPI and
    # TestCommandLine, not run here); patch.object(tracemalloc, ...) in the
    # tests then patches memhound, as it would for user code.
    tracer = std if args.stdlib else memhound
    replaced = []
    if not args.stdlib:
        for name in ("tracemalloc", "_tracemalloc"):
            if hasattr(test_tracemalloc, name):
                setattr(test_tracemalloc, name, memhound)
                replaced.append(name)

    stdlib_calls, tracer_starts = [], []
    saved, _tracemalloc = _guard_stdlib(stdlib_calls) if not args.stdlib else ([], None)
    original_start = _count_starts(tracer, tracer_starts)

    unknown = [n for n in args.expect_fail
               if n.split(".")[0] not in CLASSES
               or not hasattr(getattr(test_tracemalloc, n.split(".")[0]),
                              n.split(".", 1)[-1])]
    if unknown:
        print("stdlib_tracemalloc: --expect-fail names no test of the four classes: "
              + ", ".join(unknown))
        return 2

    loader = unittest.defaultTestLoader
    suite = unittest.TestSuite(loader.loadTestsFromTestCase(getattr(test_tracemalloc, c))
                               for c in CLASSES)
    # (unittest drops each test from its suite once run: collect names now)
    outcome = {_name(t): "passed" for cls_suite in suite for t in cls_suite}
    stream = sys.stdout if args.verbose else open("/dev/null", "w")
    try:
        runner = unittest.TextTestRunner(stream=stream, verbosity=2 if args.verbose else 0)
        result, depth = _run(runner, suite, REGRTEST_DEPTH)
    finally:
        tracer.start = original_start
        for mod, start in saved:
            mod.start = start
        if stream is not sys.stdout:
            stream.close()

    problems = []
    if args.stdlib:
        if test_tracemalloc.tracemalloc is not std:
            problems.append("test_tracemalloc.tracemalloc is not the stdlib module")
    else:
        # Memhound really is what ran.
        for name in replaced:
            if getattr(test_tracemalloc, name) is not memhound:
                problems.append(f"test_tracemalloc.{name} is no longer memhound after the run")
        if "tracemalloc" not in replaced:
            problems.append("test_tracemalloc has no global 'tracemalloc' to replace")
        if stdlib_calls or _tracemalloc.is_tracing():
            problems.append("the stdlib tracemalloc was started during the run")
    if not tracer_starts:
        problems.append(f"{tracer.__name__}.start() was never called by the tests")
    if tracer.is_tracing():
        problems.append(f"{tracer.__name__} is still tracing after the run")
    if depth != REGRTEST_DEPTH:
        problems.append(f"test methods ran at stack depth {depth}, not {REGRTEST_DEPTH}")

    # outcome: name -> "passed" | "failed" | "error" | "skipped" | ...
    details = {}
    for t, tb in result.failures:
        outcome[_name(t)] = "failed"
        details[_name(t)] = tb
    for t, tb in result.errors:
        outcome[_name(t)] = "error"
        details[_name(t)] = tb
    # @unittest.expectedFailure in the test file itself (none today): as unittest
    for t, tb in result.expectedFailures:
        outcome[_name(t)] = "expected failure"
        details[_name(t)] = "marked expectedFailure in the test file\n" + tb
    for t in result.unexpectedSuccesses:
        outcome[_name(t)] = "unexpected success"
        details[_name(t)] = "marked expectedFailure in the test file, but passed\n"
    for t, reason in result.skipped:
        name = _name(t)
        if name in NOT_APPLICABLE:
            outcome[name] = "not applicable"
        else:
            outcome[name] = "skipped"
            details[name] = f"skipped: {reason}"
    expected = set(args.expect_fail)
    for name in expected:
        if outcome.get(name) in ("failed", "error"):
            outcome[name] = "expected failure"
        elif outcome.get(name) == "passed":
            outcome[name] = "unexpected success"
            details[name] = ("passed although given with --expect-fail: "
                             "remove the option\n")
    for name, why in NOT_APPLICABLE.items():
        if outcome.get(name) == "passed":
            outcome[name] = "unexpected success"
            details[name] = f"listed as not applicable ({why}) but ran and passed\n"

    bad = ("failed", "error", "skipped", "unexpected success")
    print(f"CPython {sys.version.split()[0]} test.test_tracemalloc "
          f"({test_tracemalloc.__file__}) with {tracer.__name__} ({tracer.__file__}), "
          f"{len(tracer_starts)} start() calls, test methods at stack depth {depth}")
    for cls in CLASSES:
        names = [n for n in outcome if n.split(".")[0] == cls]
        counts = {}
        for n in names:
            counts[outcome[n]] = counts.get(outcome[n], 0) + 1
        print(f"  {cls}: " + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())))
    n_pass = sum(1 for v in outcome.values() if v == "passed")
    n_fail = sum(1 for v in outcome.values() if v in bad)
    summary = f"{n_pass} passed, {n_fail} failed"
    n_xfail = sum(1 for v in outcome.values() if v == "expected failure")
    if n_xfail:
        summary += f", {n_xfail} expected failure{'s' if n_xfail > 1 else ''}"
    n_na = sum(1 for v in outcome.values() if v == "not applicable")
    if n_na:
        summary += f", {n_na} not applicable"
    print(summary)
    for name in sorted(outcome):
        state = outcome[name]
        if state in bad or state == "expected failure":
            print(f"{state.upper()}: {name}")
            if name in details and (state in bad or args.verbose):
                print("    " + details[name].rstrip().replace("\n", "\n    "))
            elif name in details:
                print("    " + details[name].rstrip().splitlines()[-1])
        elif state == "not applicable":
            print(f"NOT APPLICABLE: {name}: {NOT_APPLICABLE[name]}")
    for p in problems:
        print(f"PROBLEM: {p}")
    return 1 if n_fail or problems else 0


if __name__ == "__main__":
    sys.exit(main())
