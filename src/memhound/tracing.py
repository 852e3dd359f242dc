"""Tracing API: a drop-in superset of the stdlib ``tracemalloc`` module.

Placeholder: the engine functions only; the snapshot classes land next.
"""
from . import _core

__all__ = ["start", "stop", "is_tracing", "clear_traces", "get_traced_memory",
           "reset_peak", "get_traceback_limit", "get_tracemalloc_memory"]

start = _core.start
stop = _core.stop
is_tracing = _core.is_tracing
clear_traces = _core.clear_traces
get_traced_memory = _core.get_traced_memory
reset_peak = _core.reset_peak
get_traceback_limit = _core.get_traceback_limit
get_tracemalloc_memory = _core.get_tracemalloc_memory
