/* snapshot_tables.h -- the inside of a SnapshotData, for the files that work
 * on it: snapshot.c (builds it, the Python type), snapshot_group.c,
 * snapshot_filter.c, flame.c and fileformat.c.
 *
 * A snapshot is four arrays: strings (str objects), frames (filename index,
 * lineno, function index), tracebacks (runs of frame indices, most recent
 * first, plus total_nframe) and traces, stored by column (domain[], size[],
 * traceback[]).  Strings, frames and tracebacks are interned while building,
 * so the traces cost 16 bytes each and everything else scales with the
 * number of distinct call sites.
 *
 * Invariants:
 * - Every index stored in a table is in range: builders check what they
 *   intern, the loader checks what it reads.
 * - The string, frame and traceback tables are immutable once the snapshot
 *   that built them is complete, so filter_traces() shares them between
 *   snapshots (reference counted, GIL held) and copies only the trace
 *   columns.
 * - A string's hash is mh_index_hash32(PyObject_Hash(s)) everywhere, so
 *   tables built, filtered and loaded can be matched by value.
 * - The three trace columns always share one capacity.
 */
#ifndef MH_SNAPSHOT_TABLES_H
#define MH_SNAPSHOT_TABLES_H

#include <Python.h>
#include <stdint.h>
#include <string.h>

#include "index.h"
#include "snapshot.h"

#define MH_NO_STRING UINT32_MAX
/* total_nframe of a traceback built from raw traces whose total is None. */
#define MH_TOTAL_NONE (-1)
/* "No such index" in the per-table scratch arrays of the analyses. */
#define MH_NONE32 UINT32_MAX

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

/* The hashes of frames and tracebacks are kept only while building: a
 * loaded table has 0 there and is never interned into. */
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
    mh_index string_idx, frame_idx, tb_idx;   /* build-time only */
    PyObject **tb_tuple;          /* lazily built ((filename, lineno), ...) */
    PyObject **frame_tuple;       /* lazily built (filename, lineno) */
} mh_snapshot_tables;

typedef struct {
    PyObject_HEAD
    mh_snapshot_tables *t;
    int traceback_limit;
    /* 0 = exact.  Else taken with sampled tracing: size[] holds the
     * recorded sizes and every reader of a size or count goes through
     * mh_snapshot_size() / mh_sample_count() (snapshot.h). */
    uint64_t sample_every;
    size_t ntraces, cap_traces;
    uint32_t *domain;
    uint64_t *size;
    uint32_t *tb;
} mh_snapshot_object;

/* The size trace i reports: the recorded one, or its estimate when sampled. */
static inline uint64_t
mh_snapshot_size(const mh_snapshot_object *s, size_t i)
{
    return s->sample_every ? mh_sample_estimate(s->size[i], s->sample_every) : s->size[i];
}

extern PyTypeObject mh_snapshot_type;

/* Grow *p (elsize bytes per entry, *cap entries) to hold `need` entries,
 * doubling.  0, or -1 with MemoryError set (*p unchanged). */
int mh_snapshot_grow(void **p, size_t elsize, size_t *cap, size_t need);

#define MH_GROW(arr, capfield, need)                                            \
    ({ size_t _cap = (capfield);                                                 \
       int _r = mh_snapshot_grow((void **)&(arr), sizeof(*(arr)), &_cap, (need));\
       (capfield) = _cap; _r; })

/* Room for that many more entries in each table, appended by the caller
 * without deduplication (the loader, which validates every index). */
int mh_snapshot_tables_reserve(mh_snapshot_tables *t, uint32_t nstrings, uint32_t nframes,
                               uint32_t ntbs, uint64_t ntb_frames);
/* Room for `need` traces in all three columns. */
int mh_snapshot_grow_traces(mh_snapshot_object *s, size_t need);
/* A new, empty SnapshotData sharing the tables of `s` (filter_traces()). */
mh_snapshot_object *mh_snapshot_new_sharing(mh_snapshot_object *s);

/* A per-entry cache of Python objects, allocated on first use: 0, or -1
 * with MemoryError set. */
int mh_snapshot_cache_init(PyObject ***cache, size_t n);
/* New reference to the tuple (filename, lineno), as tracemalloc's frames. */
PyObject *mh_snapshot_location(PyObject *filename, int32_t lineno);

static inline int
mh_snapshot_str_eq(PyObject *a, PyObject *b)
{
    if (a == b)
        return 1;
    if (PyUnicode_GET_LENGTH(a) != PyUnicode_GET_LENGTH(b)
        || PyUnicode_KIND(a) != PyUnicode_KIND(b))
        return 0;
    return memcmp(PyUnicode_DATA(a), PyUnicode_DATA(b),
                  (size_t)PyUnicode_GET_LENGTH(a) * PyUnicode_KIND(a)) == 0;
}

/* str's own hash even for a subclass: no user __hash__ runs while a raw
 * trace list is being read (it could mutate the list under us). */
static inline int
mh_snapshot_str_hash(PyObject *s, uint32_t *out)
{
    Py_hash_t h = PyUnicode_Type.tp_hash(s);
    if (h == -1 && PyErr_Occurred())
        return -1;
    *out = mh_index_hash32((uint64_t)h);
    return 0;
}

#endif
