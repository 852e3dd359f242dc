"""Leak-finder targets that return before their work is done: coroutine
functions, generator functions and async generator functions.

``memhound.find_leaks(func)`` and ``memhound leaks FILE:func`` call
``func`` through :class:`Target`, which runs each call to completion:

* a call that returns a coroutine (``async def``) is run in an event loop
  until it finishes, as ``asyncio.run`` would; an async generator is
  iterated to its end in that loop;
* a call that returns a generator is exhausted.

One event loop (``asyncio.Runner``) serves every call and is closed at the
end.  It is created before the first call when ``func`` is an ``async def``
function, so the loop's own objects exist before the leak finder's census
and never count as a leak, and the measured calls do not each build and
tear down a loop -- which would be noise in the counts.  Each call runs in
a fresh copy of the caller's ``contextvars`` context, like a new task.

Example::

    >>> import asyncio
    >>> async def fetch(x):
    ...     await asyncio.sleep(0)
    ...     return x * 2
    >>> with Target(fetch) as call:
    ...     call(21)
    42
"""
import contextvars
import inspect
import types

__all__ = ["Target"]


def _is_async(func):
    return inspect.iscoroutinefunction(func) or inspect.isasyncgenfunction(func)


async def _await(coro):
    # Run the target's coroutine below a frame of memhound's: creation
    # tracebacks are cut at memhound's first frame, so they end at the
    # target's own code instead of going on through asyncio's loop.
    return await coro


async def _drain(agen):
    async for _ in agen:
        pass


class Target:
    """Call ``func`` so that every call runs to completion (see the module).

    Use it as a context manager (or call ``close()``): it closes the event
    loop it may have opened.  A coroutine cannot be run from inside a running
    event loop: that is a RuntimeError naming the target.

    Example::

        >>> def numbers():
        ...     yield 1
        ...     yield 2
        >>> with Target(numbers) as call:
        ...     print(call())                  # the generator was exhausted
        None
    """

    def __init__(self, func):
        self.func = func
        self._runner = None
        if _is_async(func):
            self._loop()        # before the census: the loop is not a survivor

    def _loop(self):
        if self._runner is None:
            import asyncio
            if asyncio._get_running_loop() is not None:
                raise RuntimeError(
                    "%s is a coroutine function: memhound must run it in its own event loop, "
                    "which cannot be done from inside a running one (call find_leaks() from "
                    "synchronous code, e.g. in a thread)" % _name(self.func))
            runner = asyncio.Runner()
            runner.get_loop()
            self._runner = runner
        return self._runner

    def __call__(self, *args, **kwargs):
        result = self.func(*args, **kwargs)
        if isinstance(result, types.CoroutineType):
            try:
                runner = self._loop()
            except RuntimeError:
                result.close()          # no "coroutine was never awaited" warning
                raise
            return runner.run(_await(result), context=contextvars.copy_context())
        if isinstance(result, types.AsyncGeneratorType):
            return self._loop().run(_drain(result), context=contextvars.copy_context())
        if isinstance(result, types.GeneratorType):
            for _ in result:
                pass
            return None
        return result

    def close(self):
        """Close the event loop, if one was opened (idempotent).

        Example::

            >>> t = Target(print)
            >>> t.close()
        """
        runner, self._runner = self._runner, None
        if runner is not None:
            runner.close()

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
        return False


def _name(func):
    return getattr(func, "__qualname__", None) or repr(func)
