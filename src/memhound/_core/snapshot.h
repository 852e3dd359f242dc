/* snapshot.h -- immutable snapshot data: how the tracing engine (tracer.c)
 * fills a snapshot, and how module.c registers the type.
 *
 * A snapshot is a Python object of type memhound._core.SnapshotData holding
 * compact C arrays: a string table (filenames, function names), a frame table
 * (filename, lineno, function) deduplicated, a traceback table (sequences of
 * frame indices, most recent first, plus total_nframe) deduplicated, and the
 * traces (domain, size, traceback index).  What is inside is for the
 * snapshot files only (snapshot_tables.h).
 *
 * The builder functions below are called with the GIL held.  They return an
 * index >= 0, or -1 with a Python exception set (MemoryError).
 */
#ifndef MH_SNAPSHOT_H
#define MH_SNAPSHOT_H

#include <Python.h>
#include <math.h>
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

/* Sampled tracing (tracer.h): a block of `size` bytes is recorded with
 * probability 1 - exp(-size / rate), so a recorded block stands for
 * 1 / (1 - exp(-size / rate)) blocks: its weight.  Estimates are the
 * recorded sizes and counts times the weights; rate 0 means exact (weight
 * 1).  Beyond 64 rates a block is recorded with probability 1 - 2^-92. */
static inline double
mh_sample_weight(uint64_t size, uint64_t rate)
{
    if (rate == 0 || size == 0 || size / 64 >= rate)
        return 1.0;
    return -1.0 / expm1(-(double)size / (double)rate);
}

/* The estimated bytes a recorded block of `size` stands for, rounded. */
static inline uint64_t
mh_sample_estimate(uint64_t size, uint64_t rate)
{
    if (rate == 0 || size == 0 || size / 64 >= rate)
        return size;
    return (uint64_t)llround((double)size * mh_sample_weight(size, rate));
}

/* The weight as a count in 1/MH_COUNT_ONE units, summed exactly. */
#define MH_COUNT_SHIFT 16
#define MH_COUNT_ONE ((uint64_t)1 << MH_COUNT_SHIFT)
static inline uint64_t
mh_sample_count(uint64_t size, uint64_t rate)
{
    if (rate == 0 || size == 0 || size / 64 >= rate)
        return MH_COUNT_ONE;
    return (uint64_t)llround(mh_sample_weight(size, rate) * (double)MH_COUNT_ONE);
}

/* Mark a new snapshot as taken with sampling rate `rate` (0 = exact): its
 * sizes stay the recorded ones, what it reports is weighted. */
void mh_snapshot_set_sample_every(PyObject *snap, uint64_t rate);

/* Reserve room for `n` more traces (mh_snapshot_put_trace uses only this room). */
int mh_snapshot_reserve_traces(PyObject *snap, size_t n);

/* Bulk export in two steps, for a caller that must not run Python code while
 * it reads its own tables.  mh_snapshot_put_trace appends a trace whose
 * traceback is still the caller's own id: it never calls Python, never
 * allocates and returns -1 (no exception set) when the reserved room is used
 * up.  mh_snapshot_map_tracebacks then replaces the id of every trace with
 * map(arg, id), a traceback index of this snapshot (map may call Python; -1
 * with an exception set stops it). */
int mh_snapshot_put_trace(PyObject *snap, unsigned int domain, size_t size, uint32_t id);
int mh_snapshot_map_tracebacks(PyObject *snap, int64_t (*map)(void *arg, uint32_t id),
                               void *arg);

/* Called once from module init: adds SnapshotData to the module. */
int mh_snapshot_module_init(PyObject *module);

#endif
