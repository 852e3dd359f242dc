/* snapshot.h -- immutable snapshot data: the contract between the tracing
 * engine (tracer.c, which fills a snapshot) and the analysis code
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

/* ---- Internals shared with fileformat.c -------------------------------- */

#define MH_NO_STRING UINT32_MAX
/* total_nframe of a traceback built from raw traces whose total is None. */
#define MH_TOTAL_NONE (-1)

/* 64-bit finalizer (murmur3) folded to the 32-bit hashes the tables keep.
 * A string's hash is mh_snapshot_mix(PyObject_Hash(s)) everywhere, so
 * tables built, filtered and loaded can be matched by value. */
static inline uint32_t
mh_snapshot_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ULL;
    x ^= x >> 33;
    return (uint32_t)x;
}

typedef struct {
    uint32_t filename;   /* string index */
    int32_t lineno;
    uint32_t function;   /* string index or MH_NO_STRING */
} mh_snapshot_frame;

typedef struct {
    uint64_t start;      /* first entry in tb_frames */
    uint32_t nframe;
    int32_t total_nframe;   /* >= 0, or MH_TOTAL_NONE */
} mh_snapshot_tb;

/* Open-addressing index of entry numbers (slot = index + 1, 0 = empty);
 * the entries' hashes live beside the entries so that growing never
 * re-hashes Python objects. */
typedef struct {
    uint32_t *slots;
    size_t mask;        /* size - 1; size is a power of two, 0 when unused */
    size_t used;
} mh_snapshot_idx;

/* The string, frame and traceback tables.  They are immutable once the
 * snapshot that built them is complete, so filter_traces() shares them
 * between snapshots (reference counted, GIL held) and copies only the
 * trace arrays. */
typedef struct {
    Py_ssize_t refcnt;
    PyObject **strings;          /* owned references to str objects */
    uint32_t *string_hash;
    uint32_t nstrings, cap_strings;
    mh_snapshot_frame *frames;
    uint32_t *frame_hash;
    uint32_t nframes, cap_frames;
    mh_snapshot_tb *tbs;
    uint32_t *tb_hash;
    uint32_t ntbs, cap_tbs;
    uint32_t *tb_frames;          /* pool of frame indices */
    uint64_t ntb_frames, cap_tb_frames;
    mh_snapshot_idx string_idx, frame_idx, tb_idx;   /* build-time only */
    PyObject **tb_tuple;          /* lazily built ((filename, lineno), ...) */
    PyObject **frame_tuple;       /* lazily built (filename, lineno) */
} mh_snapshot_tables;

typedef struct {
    PyObject_HEAD
    mh_snapshot_tables *t;
    int traceback_limit;
    size_t ntraces, cap_traces;
    uint32_t *domain;
    uint64_t *size;
    uint32_t *tb;
} mh_snapshot_object;

extern PyTypeObject mh_snapshot_type;

mh_snapshot_tables *mh_snapshot_tables_new(void);
/* Append without deduplication (loader; indices are validated by it). */
int mh_snapshot_tables_reserve(mh_snapshot_tables *t, uint32_t nstrings, uint32_t nframes,
                               uint32_t ntbs, uint64_t ntb_frames);
int mh_snapshot_grow_traces(mh_snapshot_object *s, size_t need);
/* Wrap `t` (reference stolen) into a new SnapshotData. */
PyObject *mh_snapshot_wrap(mh_snapshot_tables *t, int traceback_limit);

/* fileformat.c */
PyObject *mh_fileformat_dump(mh_snapshot_object *s, PyObject *path, PyObject *metadata);
PyObject *mh_fileformat_load(PyObject *path);
uint32_t mh_fileformat_crc32(uint32_t crc, const void *data, size_t len);
PyObject *mh_fileformat_py_crc32c(PyObject *cls, PyObject *args);

#endif
