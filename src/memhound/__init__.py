"""memhound: find what leaks in a Python program, who holds it, where it was
created and why.

``import memhound as tracemalloc`` works: the tracing API is a drop-in
superset of the standard library's ``tracemalloc``, backed by a C engine.
"""
from .tracing import *  # noqa: F401,F403
from .tracing import __all__ as _tracing_all
from .tracing import _compare_grouped_stats, _format_size, _get_object_traceback, _get_traces, _normalize_filename, _Traces, linecache  # noqa: F401,E501  (tracemalloc compat)

__version__ = "0.1.0"
__all__ = list(_tracing_all)
from .leaks import find_leaks, survivors, LeakReport  # noqa: F401
__all__ += ["find_leaks", "survivors", "LeakReport"]
