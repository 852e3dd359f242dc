"""memhound: find what leaks in a Python program, who holds it, where it was
created and why.

``import memhound as tracemalloc`` works: the tracing API is a drop-in
superset of the standard library's ``tracemalloc``, backed by a C engine
(``memhound.tracing``).  The leak finder (``memhound.leaks``) runs a function
repeatedly and reports what every run left alive, who holds it and where it
was created:

>>> import memhound
>>> handled = []
>>> def handle_request():
...     handled.append(bytearray(64))
>>> report = memhound.find_leaks(handle_request, warmup=1, runs=3)
>>> report.leaked, report.groups[0].type, report.groups[0].count_per_run
(True, 'bytearray', 1)

What is using memory right now, by allocation site:

>>> memhound.start()
>>> blobs = [bytes(1000) for _ in range(100)]
>>> top = memhound.take_snapshot().statistics("lineno")[0]
>>> memhound.stop()
>>> top.count >= 100, top.traceback[0].lineno
(True, 1)

PYTEST_DONT_REWRITE: memhound is a pytest plugin that ``memhound run -m pytest``
imports before pytest starts; these words ask pytest to leave its modules
as they are instead of warning that it cannot rewrite their asserts.
"""
import sys

try:
    from ._core import MAX_NFRAME as _MAX_NFRAME  # noqa: F401  (the engine is built)
except ImportError:
    # Without the extension, memhound/_core/ (its C sources) imports as an
    # empty namespace package.  name="memhound" lets `python -m memhound`
    # report this as one line instead of a traceback.
    raise ImportError(
        "memhound's C extension memhound._core is not built for Python %d.%d; build it with "
        "'pip install .' (or 'python setup.py build_ext --inplace' in a source tree)"
        % sys.version_info[:2], name="memhound") from None

from .tracing import *  # noqa: E402,F401,F403
from .tracing import __all__ as _tracing_all  # noqa: E402
from .tracing import _compare_grouped_stats, _format_size, _get_object_traceback, _get_traces, _normalize_filename, _Traces, linecache  # noqa: F401,E402,E501  (tracemalloc compat)
from .tracing import pause_tracing  # noqa: E402

__version__ = "0.1.0"
__all__ = list(_tracing_all) + ["pause_tracing"]
from .leaks import find_leaks, survivors, LeakReport  # noqa: F401,E402
__all__ += ["find_leaks", "survivors", "LeakReport"]
from .watch import watch, Watch  # noqa: F401,E402  (memhound.watch is the function)
__all__ += ["watch", "Watch"]
