/* snapshot.h -- immutable snapshot data: the contract between the tracing
 * engine (hooks.c, which fills a snapshot) and the analysis code
 * (snapshot.c: statistics, compare_to, filter_traces; fileformat.c: dump/load).
 *
 * A snapshot is a Python object of type memhound._core.SnapshotData holding
 * compact C arrays: a string table (filenames, function names), a frame table
 * (filename, lineno, function) deduplicated, a traceback table (sequences of
 * frame indices, most recent first, plus total_nframe) deduplicated, and the
 * traces (domain, size, traceback index).
 *
 * The builder functions below are called with the GIL held.  They return an
 * index >= 0, or -1 with a Python exception set (MemoryError).
 */
#ifndef MH_SNAPSHOT_H
#define MH_SNAPSHOT_H

#include <Python.h>
#include <stdint.h>

/* New, empty SnapshotData object (new reference) or NULL with an exception. */
PyObject *mh_snapshot_new(int traceback_limit);

/* Intern a frame: filename and function are str objects (function may be
 * NULL when unknown).  Identical (filename, lineno, function) give the same
 * index. */
int64_t mh_snapshot_add_frame(PyObject *snap, PyObject *filename, int lineno,
                              PyObject *function);

/* Intern a traceback: `frames` holds `nframe` indices returned by
 * mh_snapshot_add_frame, most recent first.  nframe may be 0 (no Python
 * frame: exported as the single frame ("<unknown>", 0) like tracemalloc). */
int64_t mh_snapshot_add_traceback(PyObject *snap, const uint32_t *frames,
                                  int nframe, int total_nframe);

/* Append one trace. */
int mh_snapshot_add_trace(PyObject *snap, unsigned int domain, size_t size,
                          uint32_t traceback);

/* Reserve room for `n` more traces (optional; speeds up bulk export). */
int mh_snapshot_reserve_traces(PyObject *snap, size_t n);

/* Called once from module init: adds SnapshotData to the module. */
int mh_snapshot_module_init(PyObject *module);

#endif
