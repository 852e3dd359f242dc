"""find_leaks() on targets that return before their work is done (issue 17, item 7):
coroutine functions run to completion in one event loop, generators are exhausted."""
import asyncio
import gc
import warnings

import pytest

import memhound
from memhound.targets import Target

_kept = []


def _line_of(func, needle):
    import inspect
    lines, first = inspect.getsourcelines(func)
    return first + next(i for i, text in enumerate(lines) if needle in text)


async def leaky_handler():
    await asyncio.sleep(0)
    _kept.append(bytearray(48))


async def clean_handler():
    await asyncio.sleep(0)
    return [bytearray(48) for _ in range(3)]


def leaky_steps():
    yield 1
    _kept.append(bytearray(40))
    yield 2


async def leaky_stream():
    yield 1
    await asyncio.sleep(0)
    _kept.append(bytearray(24))


@pytest.fixture(autouse=True)
def _empty():
    del _kept[:]
    yield
    del _kept[:]


@pytest.mark.parametrize("target,needle", [(leaky_handler, "bytearray(48)"),
                                           (leaky_steps, "bytearray(40)"),
                                           (leaky_stream, "bytearray(24)")])
def test_async_generator_and_async_generator_leaks_are_found(target, needle):
    with warnings.catch_warnings():
        warnings.simplefilter("error")          # no "coroutine ... was never awaited"
        report = memhound.find_leaks(target, warmup=2, runs=4)
    assert report.leaked, report
    # every call ran to its end, the extra runs (is the growth bounded?) too
    assert len(_kept) == 6 + report.extra_runs
    group = report.groups[0]
    assert (group.type, group.cause, group.count, group.count_per_run) == \
        ("bytearray", "global-collection", 4, 1)
    filename, lineno, function = group.created_at[0]
    assert (filename, lineno, function) == (__file__, _line_of(target, needle), target.__name__)
    # The creation traceback ends at the target: no asyncio loop or memhound frames.
    assert all(f == __file__ for f, _, _ in group.created_at), group.created_at


def test_clean_coroutine_function_is_no_leak():
    report = memhound.find_leaks(clean_handler, warmup=1, runs=5)
    assert not report.leaked, report
    assert report.deltas["blocks"] == [0] * 5 and report.deltas["objects"] == [0] * 5


def test_one_loop_for_every_call_closed_at_the_end():
    loops = set()

    async def handler():
        loops.add(asyncio.get_running_loop())

    memhound.find_leaks(handler, warmup=1, runs=3)
    (loop,) = loops
    assert loop.is_closed()
    assert asyncio._get_running_loop() is None
    loops.clear()


def test_each_call_gets_a_fresh_context():
    import contextvars
    var = contextvars.ContextVar("calls", default=0)
    seen = []

    async def handler():
        seen.append(var.get())
        var.set(var.get() + 1)

    memhound.find_leaks(handler, warmup=1, runs=2)
    assert seen == [0, 0, 0] and var.get() == 0


def test_exception_from_a_coroutine_propagates_and_the_loop_is_closed():
    loops = []

    async def failing():
        loops.append(asyncio.get_running_loop())
        raise KeyError("boom")

    with pytest.raises(KeyError, match="boom"):
        memhound.find_leaks(failing)
    assert len(loops) == 1 and loops[0].is_closed()
    assert not memhound.is_tracing()


def test_arguments_are_passed_to_the_coroutine_function():
    got = []

    async def handler(a, *, b):
        got.append((a, b))

    report = memhound.find_leaks(handler, 1, b=2, warmup=0, runs=2)
    assert got == [(1, 2)] * (2 + report.extra_runs)     # the extra runs get them too


def test_a_function_returning_a_coroutine_is_run_too():
    report = memhound.find_leaks(lambda: leaky_handler(), warmup=1, runs=3)
    assert report.leaked and len(_kept) == 4 + report.extra_runs


def test_inside_a_running_loop_is_a_clear_error():
    async def main():
        with pytest.raises(RuntimeError, match="clean_handler is a coroutine function: "
                                               "memhound must run it in its own event loop"):
            memhound.find_leaks(clean_handler)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            with pytest.raises(RuntimeError, match="inside a running one"):
                memhound.find_leaks(lambda: clean_handler())
            gc.collect()                        # a coroutine never awaited would warn here

    asyncio.run(main())
    assert not memhound.is_tracing()


def test_target_leaves_plain_results_alone():
    with Target(lambda x: [x]) as call:
        assert call(3) == [3]
    with Target(leaky_steps) as call:
        assert call() is None and len(_kept) == 1


def test_out_of_range_runs_and_warmup():
    for name in ("runs", "warmup"):
        with pytest.raises(ValueError, match=r"%s must be <= 1000000, got 10000000000" % name):
            memhound.find_leaks(clean_handler, **{name: 10 ** 10})
