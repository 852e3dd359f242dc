/* snapshot.c -- SnapshotData: compact snapshot tables and the analyses
 * behind Snapshot.statistics(), compare_to() and filter_traces().
 *
 * Design.  A snapshot is four arrays: strings (str objects), frames
 * (filename index, lineno, function index), tracebacks (runs of frame
 * indices, most recent first, plus total_nframe) and traces, stored by
 * column (domain[], size[], traceback[]).  Strings, frames and tracebacks
 * are interned while building, so the traces cost 16 bytes each and
 * everything else scales with the number of distinct call sites.  The
 * three tables are immutable once built and reference counted, so
 * filter_traces() copies only the trace columns.
 *
 * Analyses never look at a trace twice: one pass sums size and count per
 * traceback, and all grouping happens on those per-traceback totals.  A
 * grouping context (mh_group) gives every (filename, lineno) a "location"
 * id and every group key (a run of locations) a key id; strings are
 * unified by value, so keys from two snapshots (compare_to) or from tables
 * holding duplicate strings (a loaded file) meet in the same id space.
 * Sorting uses string ranks computed once, so the order is exactly
 * tracemalloc's: (size, count, traceback) descending, where tracebacks
 * compare as tuples of (filename, lineno) from the oldest frame.  Keys are
 * sorted as compact records (criteria plus packed ranks of the first four
 * locations), so a million distinct tracebacks rarely reach the full
 * comparison.
 *
 * flame_tree() reuses a traceback grouping to build the HTML report's call
 * tree (a prefix tree over locations, root = oldest frame) level by level,
 * returning flat lists: no Python object per trace or per traceback.
 *
 * Filters run the fnmatch subset CPython uses, compiled once per filter;
 * the match result is cached per distinct string and per traceback, so a
 * million traces cost a million byte loads.
 *
 * Costs: interning hashes every frame of every raw traceback once; group
 * contexts allocate O(strings + frames + tracebacks) temporaries.  Python
 * objects are created only for what is returned (and cached per
 * traceback for Snapshot.traces, which stdlib code expects to share
 * identical traceback tuples).
 */
#include "snapshot.h"
#include "memory.h"

#include <stdlib.h>
#include <string.h>

#define MH_NONE32 UINT32_MAX

/* ---- small helpers ----------------------------------------------------- */

/* Grow *p (elsize bytes per entry, *cap entries) to hold `need` entries. */
static int
mh_snapshot_grow(void **p, size_t elsize, size_t *cap, size_t need)
{
    if (need <= *cap)
        return 0;
    size_t ncap = *cap ? *cap : 16;
    while (ncap < need) {
        if (ncap > ((size_t)-1 / 2) / elsize) {
            PyErr_NoMemory();
            return -1;
        }
        ncap *= 2;
    }
    void *np = mh_mem_realloc(*p, *cap * elsize, ncap * elsize);
    if (np == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    *p = np;
    *cap = ncap;
    return 0;
}

#define MH_GROW(arr, capfield, need)                                            \
    ({ size_t _cap = (capfield);                                                 \
       int _r = mh_snapshot_grow((void **)&(arr), sizeof(*(arr)), &_cap, (need));\
       (capfield) = _cap; _r; })

/* ---- open-addressing index --------------------------------------------- */

static void
mh_snapshot_idx_free(mh_snapshot_idx *ix)
{
    if (ix->slots)
        mh_mem_free(ix->slots, (ix->mask + 1) * sizeof(uint32_t));
    ix->slots = NULL;
    ix->mask = 0;
    ix->used = 0;
}

/* Make room for one more entry; `hashes` holds the hash of entries 0..n-1. */
static int
mh_snapshot_idx_prepare(mh_snapshot_idx *ix, const uint32_t *hashes, size_t n)
{
    size_t size = ix->slots ? ix->mask + 1 : 0;
    if ((n + 1) * 2 <= size)
        return 0;
    size_t nsize = size ? size * 2 : 64;
    while ((n + 1) * 2 > nsize)
        nsize *= 2;
    uint32_t *slots = mh_mem_calloc(nsize, sizeof(uint32_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    size_t mask = nsize - 1;
    for (size_t e = 0; e < n; e++) {
        size_t i = hashes[e] & mask;
        while (slots[i])
            i = (i + 1) & mask;
        slots[i] = (uint32_t)(e + 1);
    }
    mh_snapshot_idx_free(ix);
    ix->slots = slots;
    ix->mask = mask;
    ix->used = n;
    return 0;
}

typedef int (*mh_snapshot_eq_fn)(const void *ctx, uint32_t entry);

/* Entry equal to the probe, or MH_NONE32 with *slot = where to insert.
 * The index must have been prepared (non-empty). */
static inline uint32_t
mh_snapshot_idx_find(const mh_snapshot_idx *ix, uint32_t h, const uint32_t *hashes,
                     mh_snapshot_eq_fn eq, const void *ctx, size_t *slot)
{
    size_t i = h & ix->mask;
    uint32_t s;
    while ((s = ix->slots[i]) != 0) {
        if (hashes[s - 1] == h && eq(ctx, s - 1))
            return s - 1;
        i = (i + 1) & ix->mask;
    }
    *slot = i;
    return MH_NONE32;
}

static inline void
mh_snapshot_idx_insert(mh_snapshot_idx *ix, size_t slot, uint32_t entry)
{
    ix->slots[slot] = entry + 1;
    ix->used++;
}

static int
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
static int
mh_snapshot_str_hash(PyObject *s, uint32_t *out)
{
    Py_hash_t h = PyUnicode_Type.tp_hash(s);
    if (h == -1 && PyErr_Occurred())
        return -1;
    *out = mh_snapshot_mix((uint64_t)h);
    return 0;
}

/* ---- tables ------------------------------------------------------------ */

mh_snapshot_tables *
mh_snapshot_tables_new(void)
{
    mh_snapshot_tables *t = mh_mem_calloc(1, sizeof(*t));
    if (t == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    t->refcnt = 1;
    return t;
}

static void
mh_snapshot_tables_caches_free(mh_snapshot_tables *t)
{
    if (t->tb_tuple) {
        for (uint32_t i = 0; i < t->ntbs; i++)
            Py_XDECREF(t->tb_tuple[i]);
        mh_mem_free(t->tb_tuple, (size_t)t->ntbs * sizeof(PyObject *));
        t->tb_tuple = NULL;
    }
    if (t->frame_tuple) {
        for (uint32_t i = 0; i < t->nframes; i++)
            Py_XDECREF(t->frame_tuple[i]);
        mh_mem_free(t->frame_tuple, (size_t)t->nframes * sizeof(PyObject *));
        t->frame_tuple = NULL;
    }
}

static void
mh_snapshot_tables_decref(mh_snapshot_tables *t)
{
    if (t == NULL || --t->refcnt > 0)
        return;
    mh_snapshot_tables_caches_free(t);
    for (uint32_t i = 0; i < t->nstrings; i++)
        Py_DECREF(t->strings[i]);
    mh_mem_free(t->strings, t->cap_strings * sizeof(PyObject *));
    mh_mem_free(t->string_hash, t->cap_strings * sizeof(uint32_t));
    mh_mem_free(t->frames, t->cap_frames * sizeof(mh_snapshot_frame));
    mh_mem_free(t->frame_hash, t->cap_frames * sizeof(uint32_t));
    mh_mem_free(t->tbs, t->cap_tbs * sizeof(mh_snapshot_tb));
    mh_mem_free(t->tb_hash, t->cap_tbs * sizeof(uint32_t));
    mh_mem_free(t->tb_frames, t->cap_tb_frames * sizeof(uint32_t));
    mh_snapshot_idx_free(&t->string_idx);
    mh_snapshot_idx_free(&t->frame_idx);
    mh_snapshot_idx_free(&t->tb_idx);
    mh_mem_free(t, sizeof(*t));
}

int
mh_snapshot_tables_reserve(mh_snapshot_tables *t, uint32_t nstrings, uint32_t nframes,
                           uint32_t ntbs, uint64_t ntb_frames)
{
    size_t need, cap;
    /* The tuple caches are sized by the tables: drop them on growth. */
    mh_snapshot_tables_caches_free(t);
    need = (size_t)t->nstrings + nstrings;
    cap = t->cap_strings;
    if (MH_GROW(t->strings, cap, need) < 0)
        return -1;
    if (MH_GROW(t->string_hash, t->cap_strings, need) < 0)
        return -1;
    need = (size_t)t->nframes + nframes;
    cap = t->cap_frames;
    if (MH_GROW(t->frames, cap, need) < 0)
        return -1;
    if (MH_GROW(t->frame_hash, t->cap_frames, need) < 0)
        return -1;
    need = (size_t)t->ntbs + ntbs;
    cap = t->cap_tbs;
    if (MH_GROW(t->tbs, cap, need) < 0)
        return -1;
    if (MH_GROW(t->tb_hash, t->cap_tbs, need) < 0)
        return -1;
    if (MH_GROW(t->tb_frames, t->cap_tb_frames, t->ntb_frames + ntb_frames + 1) < 0)
        return -1;
    return 0;
}

static int
mh_snapshot_string_eq(const void *ctx, uint32_t e)
{
    const void *const *c = ctx;
    const mh_snapshot_tables *t = c[0];
    return mh_snapshot_str_eq(t->strings[e], (PyObject *)c[1]);
}

/* Index of the string equal to `s` (a str), interning it if new. */
static int64_t
mh_snapshot_intern_string(mh_snapshot_tables *t, PyObject *s)
{
    uint32_t h;
    size_t slot;
    if (!PyUnicode_Check(s)) {
        PyErr_Format(PyExc_TypeError, "frame filename and function must be str, not %.200s",
                     Py_TYPE(s)->tp_name);
        return -1;
    }
    if (mh_snapshot_str_hash(s, &h) < 0)
        return -1;
    if (t->nstrings == MH_NONE32 - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct strings in a snapshot");
        return -1;
    }
    if (mh_snapshot_idx_prepare(&t->string_idx, t->string_hash, t->nstrings) < 0)
        return -1;
    const void *ctx[2] = {t, s};
    uint32_t e = mh_snapshot_idx_find(&t->string_idx, h, t->string_hash,
                                      mh_snapshot_string_eq, ctx, &slot);
    if (e != MH_NONE32)
        return e;
    if (mh_snapshot_tables_reserve(t, 1, 0, 0, 0) < 0)
        return -1;
    e = t->nstrings++;
    t->strings[e] = Py_NewRef(s);
    t->string_hash[e] = h;
    mh_snapshot_idx_insert(&t->string_idx, slot, e);
    return e;
}

static int
mh_snapshot_frame_eq(const void *ctx, uint32_t e)
{
    const void *const *c = ctx;
    const mh_snapshot_tables *t = c[0];
    const mh_snapshot_frame *f = c[1];
    const mh_snapshot_frame *g = &t->frames[e];
    return f->filename == g->filename && f->lineno == g->lineno && f->function == g->function;
}

static int64_t
mh_snapshot_intern_frame(mh_snapshot_tables *t, uint32_t filename, int32_t lineno,
                         uint32_t function)
{
    mh_snapshot_frame f = {filename, lineno, function};
    uint32_t h = mh_snapshot_mix(((uint64_t)filename << 32 | (uint32_t)lineno)
                                 ^ ((uint64_t)function * 0x9e3779b97f4a7c15ULL));
    size_t slot;
    if (t->nframes == MH_NONE32 - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct frames in a snapshot");
        return -1;
    }
    if (mh_snapshot_idx_prepare(&t->frame_idx, t->frame_hash, t->nframes) < 0)
        return -1;
    const void *ctx[2] = {t, &f};
    uint32_t e = mh_snapshot_idx_find(&t->frame_idx, h, t->frame_hash,
                                      mh_snapshot_frame_eq, ctx, &slot);
    if (e != MH_NONE32)
        return e;
    if (mh_snapshot_tables_reserve(t, 0, 1, 0, 0) < 0)
        return -1;
    e = t->nframes++;
    t->frames[e] = f;
    t->frame_hash[e] = h;
    mh_snapshot_idx_insert(&t->frame_idx, slot, e);
    return e;
}

typedef struct {
    const mh_snapshot_tables *t;
    const uint32_t *frames;
    uint32_t nframe;
    int32_t total;
} mh_snapshot_tbprobe;

static int
mh_snapshot_tb_eq(const void *ctx, uint32_t e)
{
    const mh_snapshot_tbprobe *p = ctx;
    const mh_snapshot_tb *tb = &p->t->tbs[e];
    return tb->nframe == p->nframe && tb->total_nframe == p->total
        && memcmp(p->t->tb_frames + tb->start, p->frames, p->nframe * sizeof(uint32_t)) == 0;
}

static int64_t
mh_snapshot_intern_tb(mh_snapshot_tables *t, const uint32_t *frames, uint32_t nframe,
                      int32_t total)
{
    uint64_t acc = ((uint64_t)nframe << 32) ^ (uint32_t)total;
    for (uint32_t i = 0; i < nframe; i++)
        acc = (acc ^ frames[i]) * 0x100000001b3ULL + i;
    uint32_t h = mh_snapshot_mix(acc);
    size_t slot;
    for (uint32_t i = 0; i < nframe; i++) {
        if (frames[i] >= t->nframes) {
            PyErr_Format(PyExc_ValueError, "frame index %u out of range (%u frames)",
                         frames[i], t->nframes);
            return -1;
        }
    }
    if (t->ntbs == MH_NONE32 - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct tracebacks in a snapshot");
        return -1;
    }
    if (mh_snapshot_idx_prepare(&t->tb_idx, t->tb_hash, t->ntbs) < 0)
        return -1;
    mh_snapshot_tbprobe probe = {t, frames, nframe, total};
    uint32_t e = mh_snapshot_idx_find(&t->tb_idx, h, t->tb_hash, mh_snapshot_tb_eq,
                                      &probe, &slot);
    if (e != MH_NONE32)
        return e;
    if (mh_snapshot_tables_reserve(t, 0, 0, 1, nframe) < 0)
        return -1;
    e = t->ntbs++;
    t->tbs[e].start = t->ntb_frames;
    t->tbs[e].nframe = nframe;
    t->tbs[e].total_nframe = total;
    memcpy(t->tb_frames + t->ntb_frames, frames, nframe * sizeof(uint32_t));
    t->ntb_frames += nframe;
    t->tb_hash[e] = h;
    mh_snapshot_idx_insert(&t->tb_idx, slot, e);
    return e;
}

/* ---- the SnapshotData object and the builder API ----------------------- */

PyObject *
mh_snapshot_wrap(mh_snapshot_tables *t, int traceback_limit)
{
    mh_snapshot_object *s = PyObject_New(mh_snapshot_object, &mh_snapshot_type);
    if (s == NULL) {
        mh_snapshot_tables_decref(t);
        return NULL;
    }
    s->t = t;
    s->traceback_limit = traceback_limit;
    s->ntraces = s->cap_traces = 0;
    s->domain = NULL;
    s->size = NULL;
    s->tb = NULL;
    return (PyObject *)s;
}

PyObject *
mh_snapshot_new(int traceback_limit)
{
    mh_snapshot_tables *t = mh_snapshot_tables_new();
    if (t == NULL)
        return NULL;
    return mh_snapshot_wrap(t, traceback_limit);
}

static void
mh_snapshot_free_traces(mh_snapshot_object *s)
{
    mh_mem_free(s->domain, s->cap_traces * sizeof(uint32_t));
    mh_mem_free(s->size, s->cap_traces * sizeof(uint64_t));
    mh_mem_free(s->tb, s->cap_traces * sizeof(uint32_t));
    s->domain = NULL;
    s->size = NULL;
    s->tb = NULL;
    s->ntraces = s->cap_traces = 0;
}

static void
mh_snapshot_dealloc(mh_snapshot_object *s)
{
    mh_snapshot_free_traces(s);
    mh_snapshot_tables_decref(s->t);
    PyObject_Free(s);
}

int
mh_snapshot_grow_traces(mh_snapshot_object *s, size_t need)
{
    if (need <= s->cap_traces)
        return 0;
    size_t ncap = s->cap_traces ? s->cap_traces : 64;
    while (ncap < need) {
        if (ncap > ((size_t)-1 / 32)) {
            PyErr_NoMemory();
            return -1;
        }
        ncap *= 2;
    }
    /* All three columns or none: they always share one capacity. */
    uint32_t *d = mh_mem_malloc(ncap * sizeof(uint32_t));
    uint64_t *z = mh_mem_malloc(ncap * sizeof(uint64_t));
    uint32_t *b = mh_mem_malloc(ncap * sizeof(uint32_t));
    if (d == NULL || z == NULL || b == NULL) {
        mh_mem_free(d, ncap * sizeof(uint32_t));
        mh_mem_free(z, ncap * sizeof(uint64_t));
        mh_mem_free(b, ncap * sizeof(uint32_t));
        PyErr_NoMemory();
        return -1;
    }
    if (s->ntraces) {
        memcpy(d, s->domain, s->ntraces * sizeof(uint32_t));
        memcpy(z, s->size, s->ntraces * sizeof(uint64_t));
        memcpy(b, s->tb, s->ntraces * sizeof(uint32_t));
    }
    size_t n = s->ntraces;
    mh_snapshot_free_traces(s);
    s->domain = d;
    s->size = z;
    s->tb = b;
    s->ntraces = n;
    s->cap_traces = ncap;
    return 0;
}

static int
mh_snapshot_check(PyObject *snap)
{
    if (!PyObject_TypeCheck(snap, &mh_snapshot_type)) {
        PyErr_SetString(PyExc_TypeError, "expected a memhound._core.SnapshotData");
        return -1;
    }
    return 0;
}

int64_t
mh_snapshot_add_frame(PyObject *snap, PyObject *filename, int lineno, PyObject *function)
{
    if (mh_snapshot_check(snap) < 0)
        return -1;
    mh_snapshot_tables *t = ((mh_snapshot_object *)snap)->t;
    int64_t fn = mh_snapshot_intern_string(t, filename);
    if (fn < 0)
        return -1;
    int64_t fu = MH_NO_STRING;
    if (function != NULL && function != Py_None) {
        fu = mh_snapshot_intern_string(t, function);
        if (fu < 0)
            return -1;
    }
    return mh_snapshot_intern_frame(t, (uint32_t)fn, lineno, (uint32_t)fu);
}

int64_t
mh_snapshot_add_traceback(PyObject *snap, const uint32_t *frames, int nframe,
                          int total_nframe)
{
    if (mh_snapshot_check(snap) < 0)
        return -1;
    mh_snapshot_tables *t = ((mh_snapshot_object *)snap)->t;
    uint32_t unknown;
    if (nframe < 0 || total_nframe < 0) {
        PyErr_SetString(PyExc_ValueError, "negative frame count");
        return -1;
    }
    if (nframe == 0) {
        /* tracemalloc exports a stack without Python frames as this. */
        PyObject *name = PyUnicode_InternFromString("<unknown>");
        if (name == NULL)
            return -1;
        int64_t f = mh_snapshot_add_frame(snap, name, 0, NULL);
        Py_DECREF(name);
        if (f < 0)
            return -1;
        unknown = (uint32_t)f;
        frames = &unknown;
        nframe = 1;
        if (total_nframe == 0)
            total_nframe = 1;
    }
    return mh_snapshot_intern_tb(t, frames, (uint32_t)nframe, total_nframe);
}

int
mh_snapshot_reserve_traces(PyObject *snap, size_t n)
{
    if (mh_snapshot_check(snap) < 0)
        return -1;
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    return mh_snapshot_grow_traces(s, s->ntraces + n);
}

int
mh_snapshot_put_trace(PyObject *snap, unsigned int domain, size_t size, uint32_t id)
{
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    if (s->ntraces == s->cap_traces)
        return -1;
    s->domain[s->ntraces] = domain;
    s->size[s->ntraces] = size;
    s->tb[s->ntraces] = id;
    s->ntraces++;
    return 0;
}

int
mh_snapshot_map_tracebacks(PyObject *snap, int64_t (*map)(void *, uint32_t), void *arg)
{
    if (mh_snapshot_check(snap) < 0)
        return -1;
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    for (size_t i = 0; i < s->ntraces; i++) {
        int64_t tb = map(arg, s->tb[i]);
        if (tb < 0)
            return -1;
        if ((uint64_t)tb >= s->t->ntbs) {
            PyErr_Format(PyExc_ValueError, "traceback index %lld out of range (%u tracebacks)",
                         (long long)tb, s->t->ntbs);
            return -1;
        }
        s->tb[i] = (uint32_t)tb;
    }
    return 0;
}

/* ---- building from tracemalloc raw traces ------------------------------ */

/* Cache keyed by the identity of a raw frames tuple: stdlib _get_traces()
 * shares one tuple per traceback, so most traces skip interning. */
typedef struct {
    PyObject *key;
    int64_t total;
    uint32_t tb;
} mh_snapshot_ptrslot;

typedef struct {
    mh_snapshot_ptrslot *slots;
    size_t mask, used;
} mh_snapshot_ptrcache;

static void
mh_snapshot_ptrcache_free(mh_snapshot_ptrcache *c)
{
    if (c->slots)
        mh_mem_free(c->slots, (c->mask + 1) * sizeof(mh_snapshot_ptrslot));
    c->slots = NULL;
}

static inline size_t
mh_snapshot_ptrhash(PyObject *key, int64_t total)
{
    return mh_snapshot_mix((uint64_t)(uintptr_t)key ^ ((uint64_t)total << 40));
}

static mh_snapshot_ptrslot *
mh_snapshot_ptrcache_find(mh_snapshot_ptrcache *c, PyObject *key, int64_t total)
{
    if (c->slots == NULL)
        return NULL;
    size_t i = mh_snapshot_ptrhash(key, total) & c->mask;
    while (c->slots[i].key) {
        if (c->slots[i].key == key && c->slots[i].total == total)
            return &c->slots[i];
        i = (i + 1) & c->mask;
    }
    return NULL;
}

static int
mh_snapshot_ptrcache_add(mh_snapshot_ptrcache *c, PyObject *key, int64_t total, uint32_t tb)
{
    size_t size = c->slots ? c->mask + 1 : 0;
    if ((c->used + 1) * 2 > size) {
        size_t nsize = size ? size * 2 : 256;
        mh_snapshot_ptrslot *ns = mh_mem_calloc(nsize, sizeof(*ns));
        if (ns == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t j = 0; j < size; j++) {
            if (c->slots[j].key == NULL)
                continue;
            size_t i = mh_snapshot_ptrhash(c->slots[j].key, c->slots[j].total) & (nsize - 1);
            while (ns[i].key)
                i = (i + 1) & (nsize - 1);
            ns[i] = c->slots[j];
        }
        mh_snapshot_ptrcache_free(c);
        c->slots = ns;
        c->mask = nsize - 1;
    }
    size_t i = mh_snapshot_ptrhash(key, total) & c->mask;
    while (c->slots[i].key)
        i = (i + 1) & c->mask;
    c->slots[i].key = key;
    c->slots[i].total = total;
    c->slots[i].tb = tb;
    c->used++;
    return 0;
}

static int
mh_snapshot_raw_error(Py_ssize_t index, const char *what, PyObject *obj)
{
    PyErr_Format(PyExc_TypeError, "raw trace %zd: %s, not %.200s", index, what,
                 Py_TYPE(obj)->tp_name);
    return -1;
}

/* Intern one raw frames sequence ((filename, lineno[, function]), ...). */
static int64_t
mh_snapshot_raw_tb(mh_snapshot_tables *t, Py_ssize_t index, PyObject *frames, int32_t total,
                   uint32_t **buf, size_t *bufcap)
{
    if (!PyTuple_Check(frames) && !PyList_Check(frames))
        return mh_snapshot_raw_error(index, "frames must be a tuple", frames);
    Py_ssize_t n = PySequence_Fast_GET_SIZE(frames);
    if (n > (Py_ssize_t)UINT32_MAX / 2) {
        PyErr_Format(PyExc_ValueError, "raw trace %zd: too many frames", index);
        return -1;
    }
    if (mh_snapshot_grow((void **)buf, sizeof(uint32_t), bufcap, (size_t)n + 1) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < n; i++) {
        PyObject *fr = PySequence_Fast_GET_ITEM(frames, i);
        if ((!PyTuple_Check(fr) && !PyList_Check(fr))
            || PySequence_Fast_GET_SIZE(fr) < 2 || PySequence_Fast_GET_SIZE(fr) > 3)
            return mh_snapshot_raw_error(index, "frame must be a (filename, lineno) tuple", fr);
        PyObject *fname = PySequence_Fast_GET_ITEM(fr, 0);
        PyObject *lineo = PySequence_Fast_GET_ITEM(fr, 1);
        PyObject *func = PySequence_Fast_GET_SIZE(fr) == 3 ? PySequence_Fast_GET_ITEM(fr, 2)
                                                           : Py_None;
        if (!PyUnicode_Check(fname))
            return mh_snapshot_raw_error(index, "frame filename must be str", fname);
        if (!PyLong_Check(lineo))
            return mh_snapshot_raw_error(index, "frame lineno must be int", lineo);
        if (func != Py_None && !PyUnicode_Check(func))
            return mh_snapshot_raw_error(index, "frame function must be str or None", func);
        int overflow;
        long lineno = PyLong_AsLongAndOverflow(lineo, &overflow);
        if (overflow || lineno < INT32_MIN || lineno > INT32_MAX) {
            PyErr_Format(PyExc_OverflowError, "raw trace %zd: frame lineno out of range", index);
            return -1;
        }
        int64_t fn = mh_snapshot_intern_string(t, fname);
        if (fn < 0)
            return -1;
        int64_t fu = MH_NO_STRING;
        if (func != Py_None && (fu = mh_snapshot_intern_string(t, func)) < 0)
            return -1;
        int64_t f = mh_snapshot_intern_frame(t, (uint32_t)fn, (int32_t)lineno, (uint32_t)fu);
        if (f < 0)
            return -1;
        (*buf)[i] = (uint32_t)f;
    }
    return mh_snapshot_intern_tb(t, *buf, (uint32_t)n, total);
}

static int
mh_snapshot_raw_trace(mh_snapshot_object *s, Py_ssize_t index, PyObject *item,
                      mh_snapshot_ptrcache *cache, uint32_t **buf, size_t *bufcap)
{
    if (!PyTuple_Check(item) && !PyList_Check(item))
        return mh_snapshot_raw_error(
            index, "trace must be a (domain, size, frames, total_nframe) tuple", item);
    if (PySequence_Fast_GET_SIZE(item) != 4) {
        PyErr_Format(PyExc_ValueError, "raw trace %zd: expected 4 items (domain, size, frames, "
                     "total_nframe), got %zd", index, PySequence_Fast_GET_SIZE(item));
        return -1;
    }
    PyObject **items = PySequence_Fast_ITEMS(item);
    PyObject *odom = items[0], *osize = items[1], *oframes = items[2], *ototal = items[3];
    if (!PyLong_Check(odom))
        return mh_snapshot_raw_error(index, "domain must be int", odom);
    if (!PyLong_Check(osize))
        return mh_snapshot_raw_error(index, "size must be int", osize);
    unsigned long domain = PyLong_AsUnsignedLong(odom);
    if ((domain == (unsigned long)-1 && PyErr_Occurred()) || domain > UINT32_MAX) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "raw trace %zd: domain out of range", index);
        return -1;
    }
    unsigned long long size = PyLong_AsUnsignedLongLong(osize);
    if (size == (unsigned long long)-1 && PyErr_Occurred()) {
        PyErr_Clear();
        PyErr_Format(PyExc_OverflowError, "raw trace %zd: size out of range", index);
        return -1;
    }
    int32_t total = MH_TOTAL_NONE;
    if (ototal != Py_None) {
        if (!PyLong_Check(ototal))
            return mh_snapshot_raw_error(index, "total_nframe must be int or None", ototal);
        int overflow;
        long v = PyLong_AsLongAndOverflow(ototal, &overflow);
        if (overflow || v < 0 || v > INT32_MAX) {
            PyErr_Format(PyExc_OverflowError, "raw trace %zd: total_nframe out of range", index);
            return -1;
        }
        total = (int32_t)v;
    }
    uint32_t tb;
    mh_snapshot_ptrslot *hit = mh_snapshot_ptrcache_find(cache, oframes, total);
    if (hit != NULL) {
        tb = hit->tb;
    }
    else {
        int64_t r = mh_snapshot_raw_tb(s->t, index, oframes, total, buf, bufcap);
        if (r < 0 || mh_snapshot_ptrcache_add(cache, oframes, total, (uint32_t)r) < 0)
            return -1;
        tb = (uint32_t)r;
    }
    if (s->ntraces == s->cap_traces && mh_snapshot_grow_traces(s, s->ntraces + 1) < 0)
        return -1;
    s->domain[s->ntraces] = (uint32_t)domain;
    s->size[s->ntraces] = size;
    s->tb[s->ntraces] = tb;
    s->ntraces++;
    return 0;
}

static PyObject *
mh_snapshot_from_raw(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"traces", "traceback_limit", NULL};
    PyObject *traces;
    int limit;
    (void)type;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi:SnapshotData", kwlist, &traces, &limit))
        return NULL;
    PyObject *seq = PySequence_Fast(traces, "traces must be a sequence of raw trace tuples");
    if (seq == NULL)
        return NULL;
    mh_snapshot_object *s = (mh_snapshot_object *)mh_snapshot_new(limit);
    mh_snapshot_ptrcache cache = {NULL, 0, 0};
    uint32_t *buf = NULL;
    size_t bufcap = 0;
    if (s == NULL)
        goto error;
    Py_ssize_t n = PySequence_Fast_GET_SIZE(seq);
    if (mh_snapshot_grow_traces(s, (size_t)n) < 0)
        goto error;
    for (Py_ssize_t i = 0; i < n; i++) {
        /* The list may be mutated by nothing here: we never call Python code. */
        if (mh_snapshot_raw_trace(s, i, PySequence_Fast_GET_ITEM(seq, i), &cache, &buf,
                                  &bufcap) < 0)
            goto error;
    }
    mh_snapshot_ptrcache_free(&cache);
    mh_mem_free(buf, bufcap * sizeof(uint32_t));
    Py_DECREF(seq);
    return (PyObject *)s;
error:
    mh_snapshot_ptrcache_free(&cache);
    mh_mem_free(buf, bufcap * sizeof(uint32_t));
    Py_DECREF(seq);
    Py_XDECREF(s);
    return NULL;
}

/* ---- exporting traces as tracemalloc raw tuples ------------------------ */

static PyObject *
mh_snapshot_frame_tuple(mh_snapshot_tables *t, uint32_t f)
{
    if (t->frame_tuple == NULL) {
        t->frame_tuple = mh_mem_calloc(t->nframes ? t->nframes : 1, sizeof(PyObject *));
        if (t->frame_tuple == NULL)
            return PyErr_NoMemory();
    }
    if (t->frame_tuple[f] == NULL) {
        const mh_snapshot_frame *fr = &t->frames[f];
        PyObject *lineno = PyLong_FromLong(fr->lineno);
        if (lineno == NULL)
            return NULL;
        t->frame_tuple[f] = PyTuple_Pack(2, t->strings[fr->filename], lineno);
        Py_DECREF(lineno);
        if (t->frame_tuple[f] == NULL)
            return NULL;
    }
    return t->frame_tuple[f];
}

/* Borrowed ((filename, lineno), ...) of traceback `i`, cached so identical
 * tracebacks share one tuple, as with tracemalloc._get_traces(). */
static PyObject *
mh_snapshot_tb_tuple(mh_snapshot_tables *t, uint32_t i)
{
    if (t->tb_tuple == NULL) {
        t->tb_tuple = mh_mem_calloc(t->ntbs ? t->ntbs : 1, sizeof(PyObject *));
        if (t->tb_tuple == NULL)
            return PyErr_NoMemory();
    }
    if (t->tb_tuple[i] == NULL) {
        const mh_snapshot_tb *tb = &t->tbs[i];
        PyObject *tup = PyTuple_New(tb->nframe);
        if (tup == NULL)
            return NULL;
        for (uint32_t k = 0; k < tb->nframe; k++) {
            PyObject *fr = mh_snapshot_frame_tuple(t, t->tb_frames[tb->start + k]);
            if (fr == NULL) {
                Py_DECREF(tup);
                return NULL;
            }
            PyTuple_SET_ITEM(tup, k, Py_NewRef(fr));
        }
        t->tb_tuple[i] = tup;
    }
    return t->tb_tuple[i];
}

static PyObject *
mh_snapshot_total_obj(int32_t total)
{
    if (total == MH_TOTAL_NONE)
        Py_RETURN_NONE;
    return PyLong_FromLong(total);
}

static PyObject *
mh_snapshot_trace_tuple(mh_snapshot_object *s, size_t i)
{
    PyObject *frames = mh_snapshot_tb_tuple(s->t, s->tb[i]);
    if (frames == NULL)
        return NULL;
    return Py_BuildValue("(kKON)", (unsigned long)s->domain[i], (unsigned long long)s->size[i],
                         frames, mh_snapshot_total_obj(s->t->tbs[s->tb[i]].total_nframe));
}

static Py_ssize_t
mh_snapshot_len(mh_snapshot_object *s)
{
    return (Py_ssize_t)s->ntraces;
}

static int
mh_snapshot_index(mh_snapshot_object *s, PyObject *arg, size_t *out)
{
    Py_ssize_t i = PyNumber_AsSsize_t(arg, PyExc_IndexError);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0)
        i += (Py_ssize_t)s->ntraces;
    if (i < 0 || (size_t)i >= s->ntraces) {
        PyErr_SetString(PyExc_IndexError, "trace index out of range");
        return -1;
    }
    *out = (size_t)i;
    return 0;
}

static PyObject *
mh_snapshot_py_trace(mh_snapshot_object *s, PyObject *arg)
{
    size_t i;
    if (mh_snapshot_index(s, arg, &i) < 0)
        return NULL;
    return mh_snapshot_trace_tuple(s, i);
}

/* Function names of trace i's traceback, most recent first; None when no
 * frame knows its function (raw traces from tracemalloc). */
static PyObject *
mh_snapshot_py_functions(mh_snapshot_object *s, PyObject *arg)
{
    size_t i;
    if (mh_snapshot_index(s, arg, &i) < 0)
        return NULL;
    const mh_snapshot_tables *t = s->t;
    const mh_snapshot_tb *tb = &t->tbs[s->tb[i]];
    int any = 0;
    for (uint32_t k = 0; k < tb->nframe; k++)
        any |= t->frames[t->tb_frames[tb->start + k]].function != MH_NO_STRING;
    if (!any)
        Py_RETURN_NONE;
    PyObject *tup = PyTuple_New(tb->nframe);
    if (tup == NULL)
        return NULL;
    for (uint32_t k = 0; k < tb->nframe; k++) {
        uint32_t fu = t->frames[t->tb_frames[tb->start + k]].function;
        PyTuple_SET_ITEM(tup, k, Py_NewRef(fu == MH_NO_STRING ? Py_None : t->strings[fu]));
    }
    return tup;
}

static PyObject *
mh_snapshot_py_to_raw(mh_snapshot_object *s, PyObject *noargs)
{
    (void)noargs;
    PyObject *list = PyList_New((Py_ssize_t)s->ntraces);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < s->ntraces; i++) {
        PyObject *tr = mh_snapshot_trace_tuple(s, i);
        if (tr == NULL) {
            Py_DECREF(list);
            return NULL;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)i, tr);
    }
    return list;
}

static int
mh_snapshot_tb_equal(const mh_snapshot_tables *a, uint32_t ia, const mh_snapshot_tables *b,
                     uint32_t ib)
{
    if (a == b && ia == ib)
        return 1;
    const mh_snapshot_tb *x = &a->tbs[ia], *y = &b->tbs[ib];
    if (x->nframe != y->nframe || x->total_nframe != y->total_nframe)
        return 0;
    for (uint32_t k = 0; k < x->nframe; k++) {
        const mh_snapshot_frame *f = &a->frames[a->tb_frames[x->start + k]];
        const mh_snapshot_frame *g = &b->frames[b->tb_frames[y->start + k]];
        if (f->lineno != g->lineno
            || !mh_snapshot_str_eq(a->strings[f->filename], b->strings[g->filename]))
            return 0;
    }
    return 1;
}

/* Same traces, compared like tracemalloc's raw tuples (functions ignored). */
static PyObject *
mh_snapshot_py_equals(mh_snapshot_object *s, PyObject *other)
{
    if (mh_snapshot_check(other) < 0)
        return NULL;
    mh_snapshot_object *o = (mh_snapshot_object *)other;
    if (s->ntraces != o->ntraces)
        Py_RETURN_FALSE;
    for (size_t i = 0; i < s->ntraces; i++) {
        if (s->domain[i] != o->domain[i] || s->size[i] != o->size[i]
            || !mh_snapshot_tb_equal(s->t, s->tb[i], o->t, o->tb[i]))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
}

/* ---- grouping: statistics() and compare_to() --------------------------- */

enum { MH_KEY_LINENO = 0, MH_KEY_FILENAME = 1, MH_KEY_TRACEBACK = 2 };

typedef struct {
    uint32_t uid;          /* unified string id */
    int32_t lineno;
    PyObject *function;    /* borrowed from a snapshot's tables, or NULL */
} mh_group_loc;

typedef struct {
    int mode, cumulative;
    /* strings unified by value */
    PyObject **ustr;
    uint32_t *uhash;
    size_t nu, capu, capuh;
    mh_snapshot_idx uidx;
    uint32_t *urank;
    /* locations: (uid, lineno) */
    mh_group_loc *loc;
    uint32_t *lhash;
    size_t nloc, caploc, caplh;
    mh_snapshot_idx lidx;
    PyObject **ltuple;
    /* keys: runs of locations, oldest first */
    uint32_t *kpool;
    size_t nkpool, capkpool;
    uint64_t *kstart;
    uint32_t *klen, *khash;
    size_t nkey, capks, capkl, capkh;
    mh_snapshot_idx kidx;
    uint64_t *ksize[2], *kcount[2];
    size_t capsz[2], capct[2];
    /* scratch */
    uint32_t *seq;
    size_t capseq;
} mh_group;

static void
mh_group_free(mh_group *g)
{
    mh_mem_free(g->ustr, g->capu * sizeof(PyObject *));
    mh_mem_free(g->uhash, g->capuh * sizeof(uint32_t));
    mh_snapshot_idx_free(&g->uidx);
    mh_mem_free(g->urank, (g->nu ? g->nu : 1) * sizeof(uint32_t));
    mh_mem_free(g->loc, g->caploc * sizeof(mh_group_loc));
    mh_mem_free(g->lhash, g->caplh * sizeof(uint32_t));
    mh_snapshot_idx_free(&g->lidx);
    if (g->ltuple) {
        for (size_t i = 0; i < g->nloc; i++)
            Py_XDECREF(g->ltuple[i]);
        mh_mem_free(g->ltuple, (g->nloc ? g->nloc : 1) * sizeof(PyObject *));
    }
    mh_mem_free(g->kpool, g->capkpool * sizeof(uint32_t));
    mh_mem_free(g->kstart, g->capks * sizeof(uint64_t));
    mh_mem_free(g->klen, g->capkl * sizeof(uint32_t));
    mh_mem_free(g->khash, g->capkh * sizeof(uint32_t));
    mh_snapshot_idx_free(&g->kidx);
    for (int k = 0; k < 2; k++) {
        mh_mem_free(g->ksize[k], g->capsz[k] * sizeof(uint64_t));
        mh_mem_free(g->kcount[k], g->capct[k] * sizeof(uint64_t));
    }
    mh_mem_free(g->seq, g->capseq * sizeof(uint32_t));
}

static int
mh_group_ustr_eq(const void *ctx, uint32_t e)
{
    const void *const *c = ctx;
    const mh_group *g = c[0];
    return mh_snapshot_str_eq(g->ustr[e], (PyObject *)c[1]);
}

static int64_t
mh_group_uid(mh_group *g, PyObject *s, uint32_t h)
{
    size_t slot;
    if (mh_snapshot_idx_prepare(&g->uidx, g->uhash, g->nu) < 0)
        return -1;
    const void *ctx[2] = {g, s};
    uint32_t e = mh_snapshot_idx_find(&g->uidx, h, g->uhash, mh_group_ustr_eq, ctx, &slot);
    if (e != MH_NONE32)
        return e;
    if (MH_GROW(g->ustr, g->capu, g->nu + 1) < 0 || MH_GROW(g->uhash, g->capuh, g->nu + 1) < 0)
        return -1;
    e = (uint32_t)g->nu++;
    g->ustr[e] = s;   /* borrowed: the snapshots outlive the group */
    g->uhash[e] = h;
    mh_snapshot_idx_insert(&g->uidx, slot, e);
    return e;
}

static int
mh_group_loc_eq(const void *ctx, uint32_t e)
{
    const void *const *c = ctx;
    const mh_group *g = c[0];
    const mh_group_loc *l = c[1];
    return g->loc[e].uid == l->uid && g->loc[e].lineno == l->lineno;
}

static int64_t
mh_group_loc_id(mh_group *g, uint32_t uid, int32_t lineno, PyObject *function)
{
    mh_group_loc l = {uid, lineno, function};
    uint32_t h = mh_snapshot_mix(((uint64_t)uid << 32) | (uint32_t)lineno);
    size_t slot;
    if (mh_snapshot_idx_prepare(&g->lidx, g->lhash, g->nloc) < 0)
        return -1;
    const void *ctx[2] = {g, &l};
    uint32_t e = mh_snapshot_idx_find(&g->lidx, h, g->lhash, mh_group_loc_eq, ctx, &slot);
    if (e != MH_NONE32)
        return e;
    if (MH_GROW(g->loc, g->caploc, g->nloc + 1) < 0 || MH_GROW(g->lhash, g->caplh, g->nloc + 1) < 0)
        return -1;
    e = (uint32_t)g->nloc++;
    g->loc[e] = l;
    g->lhash[e] = h;
    mh_snapshot_idx_insert(&g->lidx, slot, e);
    return e;
}

typedef struct {
    const mh_group *g;
    const uint32_t *seq;
    uint32_t len;
} mh_group_keyprobe;

static int
mh_group_key_eq(const void *ctx, uint32_t e)
{
    const mh_group_keyprobe *p = ctx;
    return p->g->klen[e] == p->len
        && memcmp(p->g->kpool + p->g->kstart[e], p->seq, p->len * sizeof(uint32_t)) == 0;
}

static int64_t
mh_group_key_id(mh_group *g, const uint32_t *seq, uint32_t len)
{
    uint64_t acc = 0xcbf29ce484222325ULL ^ len;
    for (uint32_t i = 0; i < len; i++)
        acc = (acc ^ seq[i]) * 0x100000001b3ULL;
    uint32_t h = mh_snapshot_mix(acc);
    size_t slot;
    if (mh_snapshot_idx_prepare(&g->kidx, g->khash, g->nkey) < 0)
        return -1;
    mh_group_keyprobe p = {g, seq, len};
    uint32_t e = mh_snapshot_idx_find(&g->kidx, h, g->khash, mh_group_key_eq, &p, &slot);
    if (e != MH_NONE32)
        return e;
    size_t n = g->nkey + 1;
    if (MH_GROW(g->kstart, g->capks, n) < 0 || MH_GROW(g->klen, g->capkl, n) < 0
        || MH_GROW(g->khash, g->capkh, n) < 0
        || MH_GROW(g->kpool, g->capkpool, g->nkpool + len + 1) < 0)
        return -1;
    for (int k = 0; k < 2; k++) {
        size_t old = g->capsz[k];
        if (MH_GROW(g->ksize[k], g->capsz[k], n) < 0)
            return -1;
        memset(g->ksize[k] + old, 0, (g->capsz[k] - old) * sizeof(uint64_t));
        old = g->capct[k];
        if (MH_GROW(g->kcount[k], g->capct[k], n) < 0)
            return -1;
        memset(g->kcount[k] + old, 0, (g->capct[k] - old) * sizeof(uint64_t));
    }
    e = (uint32_t)g->nkey++;
    g->kstart[e] = g->nkpool;
    g->klen[e] = len;
    g->khash[e] = h;
    memcpy(g->kpool + g->nkpool, seq, len * sizeof(uint32_t));
    g->nkpool += len;
    mh_snapshot_idx_insert(&g->kidx, slot, e);
    return e;
}

/* Per-snapshot scratch: unified ids of its strings, location and
 * single-location key of each of its frames, totals per traceback. */
typedef struct {
    uint32_t *smap, *floc, *fkey;
    uint64_t *tbsize, *tbcount;
    size_t ns, nf, nt;
} mh_group_side;

static void
mh_group_side_free(mh_group_side *sd)
{
    mh_mem_free(sd->smap, sd->ns * sizeof(uint32_t));
    mh_mem_free(sd->floc, sd->nf * sizeof(uint32_t));
    mh_mem_free(sd->fkey, sd->nf * sizeof(uint32_t));
    mh_mem_free(sd->tbsize, sd->nt * sizeof(uint64_t));
    mh_mem_free(sd->tbcount, sd->nt * sizeof(uint64_t));
}

static int64_t
mh_group_frame_loc(mh_group *g, mh_group_side *sd, const mh_snapshot_tables *t, uint32_t f)
{
    if (sd->floc[f] != MH_NONE32)
        return sd->floc[f];
    const mh_snapshot_frame *fr = &t->frames[f];
    uint32_t sid = fr->filename;
    if (sd->smap[sid] == MH_NONE32) {
        int64_t u = mh_group_uid(g, t->strings[sid], t->string_hash[sid]);
        if (u < 0)
            return -1;
        sd->smap[sid] = (uint32_t)u;
    }
    PyObject *fn = NULL;
    int32_t lineno = 0;
    if (g->mode != MH_KEY_FILENAME) {
        lineno = fr->lineno;
        fn = fr->function == MH_NO_STRING ? NULL : t->strings[fr->function];
    }
    int64_t l = mh_group_loc_id(g, sd->smap[sid], lineno, fn);
    if (l < 0)
        return -1;
    sd->floc[f] = (uint32_t)l;
    return l;
}

static int64_t
mh_group_frame_key(mh_group *g, mh_group_side *sd, const mh_snapshot_tables *t, uint32_t f)
{
    if (sd->fkey[f] != MH_NONE32)
        return sd->fkey[f];
    int64_t l = mh_group_frame_loc(g, sd, t, f);
    if (l < 0)
        return -1;
    uint32_t seq = (uint32_t)l;
    int64_t k = mh_group_key_id(g, &seq, 1);
    if (k < 0)
        return -1;
    sd->fkey[f] = (uint32_t)k;
    return k;
}

static int64_t
mh_group_tb_key(mh_group *g, mh_group_side *sd, const mh_snapshot_tables *t, uint32_t i)
{
    const mh_snapshot_tb *tb = &t->tbs[i];
    const uint32_t *frames = t->tb_frames + tb->start;
    if (tb->nframe == 0) {
        if (g->mode == MH_KEY_FILENAME) {
            /* tracemalloc indexes trace_traceback[0] */
            PyErr_SetString(PyExc_IndexError, "tuple index out of range");
            return -1;
        }
        return mh_group_key_id(g, frames, 0);
    }
    if (g->mode != MH_KEY_TRACEBACK)
        return mh_group_frame_key(g, sd, t, frames[0]);
    if (MH_GROW(g->seq, g->capseq, tb->nframe) < 0)
        return -1;
    for (uint32_t k = 0; k < tb->nframe; k++) {
        int64_t l = mh_group_frame_loc(g, sd, t, frames[tb->nframe - 1 - k]);
        if (l < 0)
            return -1;
        g->seq[k] = (uint32_t)l;
    }
    return mh_group_key_id(g, g->seq, tb->nframe);
}

static int
mh_group_add(mh_group *g, const mh_snapshot_object *s, int side)
{
    const mh_snapshot_tables *t = s->t;
    mh_group_side sd = {0};
    int rc = -1;
    sd.ns = t->nstrings;
    sd.nf = t->nframes;
    sd.nt = t->ntbs;
    sd.smap = mh_mem_malloc(sd.ns * sizeof(uint32_t));
    sd.floc = mh_mem_malloc(sd.nf * sizeof(uint32_t));
    sd.fkey = mh_mem_malloc(sd.nf * sizeof(uint32_t));
    sd.tbsize = mh_mem_calloc(sd.nt ? sd.nt : 1, sizeof(uint64_t));
    sd.tbcount = mh_mem_calloc(sd.nt ? sd.nt : 1, sizeof(uint64_t));
    if (!sd.smap || !sd.floc || !sd.fkey || !sd.tbsize || !sd.tbcount) {
        PyErr_NoMemory();
        goto done;
    }
    memset(sd.smap, 0xff, sd.ns * sizeof(uint32_t));
    memset(sd.floc, 0xff, sd.nf * sizeof(uint32_t));
    memset(sd.fkey, 0xff, sd.nf * sizeof(uint32_t));

    /* The only pass over the traces. */
    const uint32_t *tbi = s->tb;
    const uint64_t *sz = s->size;
    for (size_t i = 0; i < s->ntraces; i++) {
        sd.tbsize[tbi[i]] += sz[i];
        sd.tbcount[tbi[i]]++;
    }
    for (uint32_t i = 0; i < t->ntbs; i++) {
        uint64_t count = sd.tbcount[i], size = sd.tbsize[i];
        if (count == 0)
            continue;
        if (!g->cumulative) {
            int64_t k = mh_group_tb_key(g, &sd, t, i);
            if (k < 0)
                goto done;
            g->ksize[side][k] += size;
            g->kcount[side][k] += count;
            continue;
        }
        const mh_snapshot_tb *tb = &t->tbs[i];
        for (uint32_t f = 0; f < tb->nframe; f++) {
            /* A frame repeated in one traceback counts twice, as in
             * tracemalloc. */
            int64_t k = mh_group_frame_key(g, &sd, t, t->tb_frames[tb->start + f]);
            if (k < 0)
                goto done;
            g->ksize[side][k] += size;
            g->kcount[side][k] += count;
        }
    }
    rc = 0;
done:
    mh_group_side_free(&sd);
    return rc;
}

static int
mh_group_str_cmp(const void *a, const void *b, void *ctx)
{
    const mh_group *g = ctx;
    PyObject *x = g->ustr[*(const uint32_t *)a], *y = g->ustr[*(const uint32_t *)b];
    /* Cannot fail: both are str. */
    return PyUnicode_Compare(x, y);
}

static int
mh_group_rank(mh_group *g)
{
    uint32_t *order = mh_mem_malloc((g->nu ? g->nu : 1) * sizeof(uint32_t));
    g->urank = mh_mem_malloc((g->nu ? g->nu : 1) * sizeof(uint32_t));
    if (order == NULL || g->urank == NULL) {
        mh_mem_free(order, (g->nu ? g->nu : 1) * sizeof(uint32_t));
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < g->nu; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, g->nu, sizeof(uint32_t), mh_group_str_cmp, g);
    for (size_t i = 0; i < g->nu; i++)
        g->urank[order[i]] = (uint32_t)i;
    mh_mem_free(order, (g->nu ? g->nu : 1) * sizeof(uint32_t));
    return 0;
}

/* Traceback order: tuples of (filename, lineno) from the oldest frame. */
static int
mh_group_key_cmp(const mh_group *g, uint32_t a, uint32_t b)
{
    const uint32_t *x = g->kpool + g->kstart[a], *y = g->kpool + g->kstart[b];
    uint32_t n = g->klen[a] < g->klen[b] ? g->klen[a] : g->klen[b];
    for (uint32_t i = 0; i < n; i++) {
        const mh_group_loc *p = &g->loc[x[i]], *q = &g->loc[y[i]];
        uint32_t rp = g->urank[p->uid], rq = g->urank[q->uid];
        if (rp != rq)
            return rp < rq ? -1 : 1;
        if (p->lineno != q->lineno)
            return p->lineno < q->lineno ? -1 : 1;
    }
    return (g->klen[a] > g->klen[b]) - (g->klen[a] < g->klen[b]);
}

#define MH_CMP_DESC(x, y) do { if ((x) != (y)) return (x) > (y) ? -1 : 1; } while (0)

static inline uint64_t
mh_absdiff(uint64_t a, uint64_t b)
{
    return a >= b ? a - b : b - a;
}

/* Result tuples hold only exact str, int, None and such tuples: they can
 * never be part of a cycle, so take them off the GC's lists at once (as
 * CPython's own collector would on its first pass).  A million tracked
 * result tuples otherwise make every full collection walk them all. */
static void
mh_group_untrack(PyObject *tuple)
{
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(tuple); i++) {
        PyObject *x = PyTuple_GET_ITEM(tuple, i);
        if (x == Py_None || PyUnicode_CheckExact(x) || PyLong_CheckExact(x))
            continue;
        if (PyTuple_CheckExact(x) && !PyObject_GC_IsTracked(x))
            continue;
        return;
    }
    if (PyObject_GC_IsTracked(tuple))
        PyObject_GC_UnTrack(tuple);
}

static PyObject *
mh_group_loc_tuple(mh_group *g, uint32_t l)
{
    if (g->ltuple == NULL) {
        g->ltuple = mh_mem_calloc(g->nloc ? g->nloc : 1, sizeof(PyObject *));
        if (g->ltuple == NULL)
            return PyErr_NoMemory();
    }
    if (g->ltuple[l] == NULL) {
        PyObject *lineno = PyLong_FromLong(g->loc[l].lineno);
        if (lineno == NULL)
            return NULL;
        g->ltuple[l] = PyTuple_Pack(2, g->ustr[g->loc[l].uid], lineno);
        Py_DECREF(lineno);
        if (g->ltuple[l] != NULL)
            mh_group_untrack(g->ltuple[l]);
    }
    return g->ltuple[l];
}

/* (frames oldest first, functions or None) of key k. */
static int
mh_group_key_objects(mh_group *g, uint32_t k, PyObject **frames, PyObject **functions)
{
    uint32_t n = g->klen[k];
    const uint32_t *seq = g->kpool + g->kstart[k];
    int any = 0;
    *functions = NULL;
    *frames = PyTuple_New(n);
    if (*frames == NULL)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *lt = mh_group_loc_tuple(g, seq[i]);
        if (lt == NULL)
            goto error;
        PyTuple_SET_ITEM(*frames, i, Py_NewRef(lt));
        any |= g->loc[seq[i]].function != NULL;
    }
    mh_group_untrack(*frames);
    if (!any) {
        *functions = Py_NewRef(Py_None);
        return 0;
    }
    *functions = PyTuple_New(n);
    if (*functions == NULL)
        goto error;
    for (uint32_t i = 0; i < n; i++) {
        PyObject *fn = g->loc[seq[i]].function;
        PyTuple_SET_ITEM(*functions, i, Py_NewRef(fn ? fn : Py_None));
    }
    mh_group_untrack(*functions);
    return 0;
error:
    Py_CLEAR(*frames);
    return -1;
}

static int
mh_group_parse_mode(PyObject *args, PyObject **other, int *mode, int *cumulative)
{
    if (other != NULL)
        return PyArg_ParseTuple(args, "O!ip", &mh_snapshot_type, other, mode, cumulative) ? 0 : -1;
    return PyArg_ParseTuple(args, "ip", mode, cumulative) ? 0 : -1;
}

/* A sort record: the numeric criteria (descending) and the ranks of the
 * first four locations of the traceback, packed two to a word, are copied
 * next to the key, so most comparisons of a million distinct tracebacks
 * touch only this array; the full traceback comparison (random reads of
 * the key pool) runs only when those tie. */
typedef struct {
    uint64_t crit[4];
    uint64_t pre[2];
    uint32_t key;
} mh_group_rec;

static int
mh_group_loc_cmp(const void *a, const void *b, void *ctx)
{
    const mh_group *g = ctx;
    const mh_group_loc *p = &g->loc[*(const uint32_t *)a], *q = &g->loc[*(const uint32_t *)b];
    uint32_t rp = g->urank[p->uid], rq = g->urank[q->uid];
    if (rp != rq)
        return rp < rq ? -1 : 1;
    return (p->lineno > q->lineno) - (p->lineno < q->lineno);
}

/* lrank[l] + 1 orders locations as (filename, lineno) tuples; 0 is left
 * for "no frame", which sorts first like a shorter tuple. */
static uint32_t *
mh_group_loc_ranks(mh_group *g)
{
    size_t n = g->nloc ? g->nloc : 1;
    uint32_t *order = mh_mem_malloc(n * sizeof(uint32_t));
    uint32_t *lrank = mh_mem_malloc(n * sizeof(uint32_t));
    if (order == NULL || lrank == NULL) {
        mh_mem_free(order, n * sizeof(uint32_t));
        mh_mem_free(lrank, n * sizeof(uint32_t));
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t i = 0; i < g->nloc; i++)
        order[i] = (uint32_t)i;
    qsort_r(order, g->nloc, sizeof(uint32_t), mh_group_loc_cmp, g);
    for (size_t i = 0; i < g->nloc; i++)
        lrank[order[i]] = (uint32_t)i + 1;
    mh_mem_free(order, n * sizeof(uint32_t));
    return lrank;
}

static inline void
mh_group_prefix(const mh_group *g, const uint32_t *lrank, uint32_t k, uint64_t pre[2])
{
    uint64_t r[4] = {0, 0, 0, 0};
    const uint32_t *seq = g->kpool + g->kstart[k];
    for (uint32_t i = 0; i < 4 && i < g->klen[k]; i++)
        r[i] = lrank[seq[i]];
    pre[0] = r[0] << 32 | r[1];
    pre[1] = r[2] << 32 | r[3];
}

static int
mh_group_rec_cmp(const void *a, const void *b, void *ctx)
{
    const mh_group_rec *x = a, *y = b;
    for (int i = 0; i < 4; i++)
        MH_CMP_DESC(x->crit[i], y->crit[i]);
    MH_CMP_DESC(x->pre[0], y->pre[0]);
    MH_CMP_DESC(x->pre[1], y->pre[1]);
    return -mh_group_key_cmp(ctx, x->key, y->key);
}

/* Sorted keys of a grouping context: statistics() order, or compare_to()
 * order when `old` is given. */
static int
mh_group_order(mh_group *g, const mh_snapshot_object *old, uint32_t **order, size_t *norder)
{
    size_t n = 0, cap = g->nkey ? g->nkey : 1;
    *norder = 0;
    *order = mh_mem_malloc(cap * sizeof(uint32_t));
    mh_group_rec *rec = mh_mem_malloc(cap * sizeof(mh_group_rec));
    uint32_t *lrank = NULL;
    if (*order == NULL || rec == NULL || (lrank = mh_group_loc_ranks(g)) == NULL) {
        mh_mem_free(rec, cap * sizeof(mh_group_rec));
        if (!PyErr_Occurred())
            PyErr_NoMemory();
        return -1;
    }
    for (size_t k = 0; k < g->nkey; k++) {
        uint64_t size = g->ksize[0][k], count = g->kcount[0][k];
        if (!count && !(old && g->kcount[1][k]))
            continue;
        mh_group_rec *r = &rec[n++];
        if (old) {
            r->crit[0] = mh_absdiff(size, g->ksize[1][k]);
            r->crit[1] = size;
            r->crit[2] = mh_absdiff(count, g->kcount[1][k]);
            r->crit[3] = count;
        }
        else {
            r->crit[0] = size;
            r->crit[1] = count;
            r->crit[2] = r->crit[3] = 0;
        }
        mh_group_prefix(g, lrank, (uint32_t)k, r->pre);
        r->key = (uint32_t)k;
    }
    qsort_r(rec, n, sizeof(mh_group_rec), mh_group_rec_cmp, g);
    for (size_t i = 0; i < n; i++)
        (*order)[i] = rec[i].key;
    *norder = n;
    mh_mem_free(rec, cap * sizeof(mh_group_rec));
    mh_mem_free(lrank, (g->nloc ? g->nloc : 1) * sizeof(uint32_t));
    return 0;
}

static PyObject *
mh_group_run(mh_snapshot_object *s, mh_snapshot_object *old, int mode, int cumulative)
{
    mh_group g = {0};
    uint32_t *order = NULL;
    size_t norder = 0;
    PyObject *result = NULL;
    if (mode < MH_KEY_LINENO || mode > MH_KEY_TRACEBACK || (cumulative && mode == MH_KEY_TRACEBACK)) {
        PyErr_SetString(PyExc_ValueError, "bad grouping mode");
        return NULL;
    }
    g.mode = mode;
    g.cumulative = cumulative;
    if (mh_group_add(&g, s, 0) < 0 || (old && mh_group_add(&g, old, 1) < 0))
        goto done;
    if (mh_group_rank(&g) < 0)
        goto done;
    if (mh_group_order(&g, old, &order, &norder) < 0)
        goto done;
    result = PyList_New((Py_ssize_t)norder);
    if (result == NULL)
        goto done;
    for (size_t i = 0; i < norder; i++) {
        uint32_t k = order[i];
        PyObject *frames, *functions, *item;
        if (mh_group_key_objects(&g, k, &frames, &functions) < 0) {
            Py_CLEAR(result);
            goto done;
        }
        if (old == NULL) {
            item = Py_BuildValue("(NNKK)", frames, functions, (unsigned long long)g.ksize[0][k],
                                 (unsigned long long)g.kcount[0][k]);
        }
        else {
            item = Py_BuildValue("(NNKLKL)", frames, functions,
                                 (unsigned long long)g.ksize[0][k],
                                 (long long)(g.ksize[0][k] - g.ksize[1][k]),
                                 (unsigned long long)g.kcount[0][k],
                                 (long long)(g.kcount[0][k] - g.kcount[1][k]));
        }
        if (item == NULL) {
            Py_CLEAR(result);
            goto done;
        }
        mh_group_untrack(item);
        PyList_SET_ITEM(result, (Py_ssize_t)i, item);
    }
done:
    mh_mem_free(order, (g.nkey ? g.nkey : 1) * sizeof(uint32_t));
    mh_group_free(&g);
    return result;
}

static PyObject *
mh_snapshot_py_statistics(mh_snapshot_object *s, PyObject *args)
{
    int mode, cumulative;
    if (mh_group_parse_mode(args, NULL, &mode, &cumulative) < 0)
        return NULL;
    return mh_group_run(s, NULL, mode, cumulative);
}

static PyObject *
mh_snapshot_py_compare_to(mh_snapshot_object *s, PyObject *args)
{
    PyObject *old;
    int mode, cumulative;
    if (mh_group_parse_mode(args, &old, &mode, &cumulative) < 0)
        return NULL;
    return mh_group_run(s, (mh_snapshot_object *)old, mode, cumulative);
}

/* ---- flame tree: report call tree ---------------------------------------
 *
 * The HTML report's flame graph is the per-traceback totals merged into a
 * prefix tree keyed by location, root = oldest frame.  It is built one
 * level at a time (no recursion on traceback depth): each node owns a
 * contiguous run of a member permutation, split by the member's location
 * at the current depth in first-seen order (a stable counting sort), so
 * node and frame numbering is exactly that of the Python builder it
 * replaces.  Groups smaller than `threshold` are folded into their parent
 * and never walked deeper.  Locations are dense ids, so the split needs
 * no hash table: a stamp per location says whether the current node has
 * seen it.  Costs: O(sum of walked depths) time, ~40 bytes per distinct
 * traceback of temporaries, Python objects only for the results. */

typedef struct {
    const uint32_t **seq;       /* per member: locations, oldest first */
    uint32_t *len;
    uint64_t *size, *count;
    size_t n;
} mh_tree_members;

typedef struct {
    uint32_t *parent, *fid;     /* MH_NONE32 for the root */
    uint64_t *size, *count;
    size_t n, cap_p, cap_f, cap_s, cap_c;
} mh_tree_nodes;

typedef struct {
    uint32_t node;
    size_t start, n;            /* run of the member permutation */
} mh_tree_run;

static void
mh_tree_nodes_free(mh_tree_nodes *t)
{
    mh_mem_free(t->parent, t->cap_p * sizeof(uint32_t));
    mh_mem_free(t->fid, t->cap_f * sizeof(uint32_t));
    mh_mem_free(t->size, t->cap_s * sizeof(uint64_t));
    mh_mem_free(t->count, t->cap_c * sizeof(uint64_t));
}

static int64_t
mh_tree_node_add(mh_tree_nodes *t, uint32_t parent, uint32_t fid, uint64_t size, uint64_t count)
{
    size_t n = t->n + 1;
    if (n >= MH_NONE32) {
        PyErr_NoMemory();
        return -1;
    }
    if (MH_GROW(t->parent, t->cap_p, n) < 0 || MH_GROW(t->fid, t->cap_f, n) < 0
        || MH_GROW(t->size, t->cap_s, n) < 0 || MH_GROW(t->count, t->cap_c, n) < 0)
        return -1;
    t->parent[t->n] = parent;
    t->fid[t->n] = fid;
    t->size[t->n] = size;
    t->count[t->n] = count;
    return (int64_t)t->n++;
}

/* Scratch of one level split, all indexed by location or group. */
typedef struct {
    uint32_t *stamp, *gidx, *fid_of;     /* per location */
    uint32_t *gloc, *gn, *gnode;         /* per group of the current node */
    size_t *goff;
    uint64_t *gsize, *gcount;
    uint32_t *floc;                      /* per tree frame: its location */
    size_t nloc, nframes;
} mh_tree_split;

static void
mh_tree_split_free(mh_tree_split *sp)
{
    size_t n = sp->nloc ? sp->nloc : 1;
    mh_mem_free(sp->stamp, n * sizeof(uint32_t));
    mh_mem_free(sp->gidx, n * sizeof(uint32_t));
    mh_mem_free(sp->fid_of, n * sizeof(uint32_t));
    mh_mem_free(sp->gloc, n * sizeof(uint32_t));
    mh_mem_free(sp->gn, n * sizeof(uint32_t));
    mh_mem_free(sp->gnode, n * sizeof(uint32_t));
    mh_mem_free(sp->goff, n * sizeof(size_t));
    mh_mem_free(sp->gsize, n * sizeof(uint64_t));
    mh_mem_free(sp->gcount, n * sizeof(uint64_t));
    mh_mem_free(sp->floc, n * sizeof(uint32_t));
}

static int
mh_tree_split_init(mh_tree_split *sp, size_t nloc)
{
    size_t n = nloc ? nloc : 1;
    sp->nloc = nloc;
    sp->stamp = mh_mem_calloc(n, sizeof(uint32_t));
    sp->gidx = mh_mem_malloc(n * sizeof(uint32_t));
    sp->fid_of = mh_mem_malloc(n * sizeof(uint32_t));
    sp->gloc = mh_mem_malloc(n * sizeof(uint32_t));
    sp->gn = mh_mem_malloc(n * sizeof(uint32_t));
    sp->gnode = mh_mem_malloc(n * sizeof(uint32_t));
    sp->goff = mh_mem_malloc(n * sizeof(size_t));
    sp->gsize = mh_mem_malloc(n * sizeof(uint64_t));
    sp->gcount = mh_mem_malloc(n * sizeof(uint64_t));
    sp->floc = mh_mem_malloc(n * sizeof(uint32_t));
    if (!sp->stamp || !sp->gidx || !sp->fid_of || !sp->gloc || !sp->gn || !sp->gnode
        || !sp->goff || !sp->gsize || !sp->gcount || !sp->floc) {
        PyErr_NoMemory();
        return -1;
    }
    memset(sp->fid_of, 0xff, n * sizeof(uint32_t));
    return 0;
}

/* Split one node's run at `depth` into children, appending the kept
 * children's runs to *next (members placed in `out`). */
static int
mh_tree_split_run(mh_tree_split *sp, const mh_tree_members *m, mh_tree_nodes *t,
                  const mh_tree_run *run, const uint32_t *in, uint32_t *out, size_t *nout,
                  mh_tree_run *next, size_t *nnext, uint32_t depth, double threshold,
                  uint64_t *folded)
{
    size_t ngroup = 0;
    uint32_t stamp = run->node + 1;
    for (size_t i = run->start; i < run->start + run->n; i++) {
        uint32_t mi = in[i];
        if (m->len[mi] <= depth)
            continue;
        uint32_t loc = m->seq[mi][depth];
        uint32_t gi;
        if (sp->stamp[loc] != stamp) {
            sp->stamp[loc] = stamp;
            gi = sp->gidx[loc] = (uint32_t)ngroup++;
            sp->gloc[gi] = loc;
            sp->gn[gi] = 0;
            sp->gsize[gi] = sp->gcount[gi] = 0;
        }
        else
            gi = sp->gidx[loc];
        sp->gn[gi]++;
        sp->gsize[gi] += m->size[mi];
        sp->gcount[gi] += m->count[mi];
    }
    for (size_t gi = 0; gi < ngroup; gi++) {
        if (sp->gsize[gi] == 0 || (double)sp->gsize[gi] < threshold) {
            (*folded)++;
            sp->gnode[gi] = MH_NONE32;
            continue;
        }
        uint32_t loc = sp->gloc[gi];
        if (sp->fid_of[loc] == MH_NONE32) {
            sp->fid_of[loc] = (uint32_t)sp->nframes;
            sp->floc[sp->nframes++] = loc;
        }
        int64_t node = mh_tree_node_add(t, run->node, sp->fid_of[loc], sp->gsize[gi],
                                        sp->gcount[gi]);
        if (node < 0)
            return -1;
        sp->gnode[gi] = (uint32_t)node;
        sp->goff[gi] = *nout;
        next[*nnext].node = (uint32_t)node;
        next[*nnext].start = *nout;
        next[*nnext].n = sp->gn[gi];
        (*nnext)++;
        *nout += sp->gn[gi];
    }
    for (size_t i = run->start; i < run->start + run->n; i++) {
        uint32_t mi = in[i];
        if (m->len[mi] <= depth)
            continue;
        uint32_t gi = sp->gidx[m->seq[mi][depth]];
        if (sp->gnode[gi] != MH_NONE32)
            out[sp->goff[gi]++] = mi;
    }
    return 0;
}

/* Breadth-first build: level after level until no run goes deeper. */
static int
mh_tree_build(mh_tree_split *sp, const mh_tree_members *m, mh_tree_nodes *t,
              double threshold, uint64_t *folded)
{
    size_t n = m->n ? m->n : 1;
    uint32_t *in = mh_mem_malloc(n * sizeof(uint32_t));
    uint32_t *out = mh_mem_malloc(n * sizeof(uint32_t));
    mh_tree_run *cur = mh_mem_malloc(n * sizeof(mh_tree_run));
    mh_tree_run *next = mh_mem_malloc(n * sizeof(mh_tree_run));
    int rc = -1;
    if (!in || !out || !cur || !next) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < m->n; i++)
        in[i] = (uint32_t)i;
    size_t ncur = 1;
    cur[0].node = 0;
    cur[0].start = 0;
    cur[0].n = m->n;
    for (uint32_t depth = 0; ncur; depth++) {
        size_t nnext = 0, nout = 0;
        for (size_t r = 0; r < ncur; r++) {
            if (mh_tree_split_run(sp, m, t, &cur[r], in, out, &nout, next, &nnext, depth,
                                  threshold, folded) < 0)
                goto done;
        }
        uint32_t *tp = in; in = out; out = tp;
        mh_tree_run *rp = cur; cur = next; next = rp;
        ncur = nnext;
    }
    rc = 0;
done:
    mh_mem_free(in, n * sizeof(uint32_t));
    mh_mem_free(out, n * sizeof(uint32_t));
    mh_mem_free(cur, n * sizeof(mh_tree_run));
    mh_mem_free(next, n * sizeof(mh_tree_run));
    return rc;
}

/* The launcher frames at the root of a `memhound run` traceback: the last
 * `cli` frame among the first `ldepth`, then any `runpy` frames. */
static uint32_t
mh_tree_strip(const uint8_t *flag, const mh_group *g, const uint32_t *seq, uint32_t len,
              uint32_t ldepth)
{
    uint32_t start = 0;
    for (uint32_t i = 0; i < len && i < ldepth; i++) {
        if (flag[g->loc[seq[i]].uid] & 1)
            start = i + 1;
    }
    while (start && start < len && (flag[g->loc[seq[start]].uid] & 2))
        start++;
    return start;
}

static PyObject *
mh_tree_u64_list(const uint64_t *v, const uint32_t *index, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[index ? index[i] : i]);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

static PyObject *
mh_tree_i32_list(const uint32_t *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i] == MH_NONE32 ? -1L : (long)v[i]);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* [(filename, lineno, function or None)] of locations. */
static PyObject *
mh_tree_loc_list(const mh_group *g, const uint32_t *locs, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        const mh_group_loc *l = &g->loc[locs[i]];
        PyObject *x = Py_BuildValue("(OlO)", g->ustr[l->uid], (long)l->lineno,
                                    l->function ? l->function : Py_None);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

typedef struct {
    uint64_t *size, *count;      /* per location */
    uint32_t *order;             /* leaf locations: first seen, then sorted */
    size_t n, nloc;
} mh_tree_sites;

static void
mh_tree_sites_free(mh_tree_sites *st)
{
    size_t n = st->nloc ? st->nloc : 1;
    mh_mem_free(st->size, n * sizeof(uint64_t));
    mh_mem_free(st->count, n * sizeof(uint64_t));
    mh_mem_free(st->order, n * sizeof(uint32_t));
}

static void
mh_tree_members_free(mh_tree_members *m, size_t cap)
{
    mh_mem_free(m->seq, cap * sizeof(*m->seq));
    mh_mem_free(m->len, cap * sizeof(uint32_t));
    mh_mem_free(m->size, cap * sizeof(uint64_t));
    mh_mem_free(m->count, cap * sizeof(uint64_t));
}

/* Members (sorted distinct tracebacks, launcher stripped, empty ones
 * mapped to `unknown`) and leaf sums per location. */
static int
mh_tree_members_fill(mh_group *g, const uint32_t *order, size_t norder, const uint8_t *flag,
                     uint32_t ldepth, const uint32_t *unknown, mh_tree_members *m,
                     mh_tree_sites *st)
{
    for (size_t i = 0; i < norder; i++) {
        uint32_t k = order[i];
        const uint32_t *seq = g->kpool + g->kstart[k];
        uint32_t len = g->klen[k];
        if (flag) {
            uint32_t start = mh_tree_strip(flag, g, seq, len, ldepth);
            seq += start;
            len -= start;
        }
        if (len == 0) {
            seq = unknown;
            len = 1;
        }
        m->seq[i] = seq;
        m->len[i] = len;
        m->size[i] = g->ksize[0][k];
        m->count[i] = g->kcount[0][k];
        uint32_t leaf = seq[len - 1];
        if (st->count[leaf] == 0 && st->size[leaf] == 0)
            st->order[st->n++] = leaf;
        st->size[leaf] += m->size[i];
        st->count[leaf] += m->count[i];
    }
    m->n = norder;
    return 0;
}

typedef struct {
    uint64_t size, count;
    uint32_t pos, loc;
} mh_tree_site_rec;

static int
mh_tree_site_cmp(const void *a, const void *b)
{
    const mh_tree_site_rec *x = a, *y = b;
    MH_CMP_DESC(x->size, y->size);
    MH_CMP_DESC(x->count, y->count);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Sites biggest first, ties in first-seen order (what the report's stable
 * sort of the first-seen dict gives), so Python sorts presorted data. */
static int
mh_tree_sites_sort(mh_tree_sites *st)
{
    mh_tree_site_rec *rec = mh_mem_malloc((st->n ? st->n : 1) * sizeof(mh_tree_site_rec));
    if (rec == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < st->n; i++) {
        uint32_t l = st->order[i];
        rec[i] = (mh_tree_site_rec){st->size[l], st->count[l], (uint32_t)i, l};
    }
    qsort(rec, st->n, sizeof(mh_tree_site_rec), mh_tree_site_cmp);
    for (size_t i = 0; i < st->n; i++)
        st->order[i] = rec[i].loc;
    mh_mem_free(rec, (st->n ? st->n : 1) * sizeof(mh_tree_site_rec));
    return 0;
}

/* flag[uid]: 1 = the launcher's cli.py, 2 = one of the runpy files. */
static uint8_t *
mh_tree_flags(const mh_group *g, PyObject *cli, PyObject *runpy)
{
    uint8_t *flag = mh_mem_calloc(g->nu ? g->nu : 1, 1);
    if (flag == NULL) {
        PyErr_NoMemory();
        return NULL;
    }
    for (size_t u = 0; u < g->nu; u++) {
        if (mh_snapshot_str_eq(g->ustr[u], cli))
            flag[u] |= 1;
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(runpy); j++) {
            PyObject *r = PyTuple_GET_ITEM(runpy, j);
            if (PyUnicode_Check(r) && mh_snapshot_str_eq(g->ustr[u], r))
                flag[u] |= 2;
        }
    }
    return flag;
}

static PyObject *
mh_tree_result(const mh_group *g, const mh_tree_nodes *t, const mh_tree_split *sp,
               const mh_tree_sites *st, uint64_t folded)
{
    PyObject *frames = mh_tree_loc_list(g, sp->floc, sp->nframes);
    PyObject *parent = frames ? mh_tree_i32_list(t->parent, t->n) : NULL;
    PyObject *fid = parent ? mh_tree_i32_list(t->fid, t->n) : NULL;
    PyObject *size = fid ? mh_tree_u64_list(t->size, NULL, t->n) : NULL;
    PyObject *count = size ? mh_tree_u64_list(t->count, NULL, t->n) : NULL;
    PyObject *sites = count ? mh_tree_loc_list(g, st->order, st->n) : NULL;
    PyObject *ssize = sites ? mh_tree_u64_list(st->size, st->order, st->n) : NULL;
    PyObject *scount = ssize ? mh_tree_u64_list(st->count, st->order, st->n) : NULL;
    if (scount == NULL) {
        Py_XDECREF(frames);
        Py_XDECREF(parent);
        Py_XDECREF(fid);
        Py_XDECREF(size);
        Py_XDECREF(count);
        Py_XDECREF(sites);
        Py_XDECREF(ssize);
        return NULL;
    }
    return Py_BuildValue("(NNNNNKNNN)", frames, parent, fid, size, count,
                         (unsigned long long)folded, sites, ssize, scount);
}

static PyObject *
mh_snapshot_py_flame_tree(mh_snapshot_object *s, PyObject *args)
{
    double share;
    PyObject *cli, *runpy;
    unsigned int ldepth;
    if (!PyArg_ParseTuple(args, "dOO!I", &share, &cli, &PyTuple_Type, &runpy, &ldepth))
        return NULL;
    if (cli != Py_None && !PyUnicode_Check(cli)) {
        PyErr_SetString(PyExc_TypeError, "flame_tree(): launcher file must be str or None");
        return NULL;
    }
    mh_group g = {0};
    mh_tree_members m = {0};
    mh_tree_nodes t = {0};
    mh_tree_split sp = {0};
    mh_tree_sites st = {0};
    uint32_t *order = NULL, unknown = 0;
    uint8_t *flag = NULL;
    size_t norder = 0, mcap = 0;
    uint64_t total_size = 0, total_count = 0, folded = 0;
    PyObject *result = NULL;
    PyObject *unknown_name = PyUnicode_FromString("<unknown>");
    uint32_t uhash;
    if (unknown_name == NULL || mh_snapshot_str_hash(unknown_name, &uhash) < 0)
        goto done;
    g.mode = MH_KEY_TRACEBACK;
    if (mh_group_add(&g, s, 0) < 0)
        goto done;
    int64_t uid = mh_group_uid(&g, unknown_name, uhash);
    int64_t uloc = uid < 0 ? -1 : mh_group_loc_id(&g, (uint32_t)uid, 0, NULL);
    if (uloc < 0 || mh_group_rank(&g) < 0 || mh_group_order(&g, NULL, &order, &norder) < 0)
        goto done;
    unknown = (uint32_t)uloc;
    if (cli != Py_None && (flag = mh_tree_flags(&g, cli, runpy)) == NULL)
        goto done;
    mcap = norder ? norder : 1;
    m.seq = mh_mem_malloc(mcap * sizeof(*m.seq));
    m.len = mh_mem_malloc(mcap * sizeof(uint32_t));
    m.size = mh_mem_malloc(mcap * sizeof(uint64_t));
    m.count = mh_mem_malloc(mcap * sizeof(uint64_t));
    st.nloc = g.nloc;
    st.size = mh_mem_calloc(g.nloc ? g.nloc : 1, sizeof(uint64_t));
    st.count = mh_mem_calloc(g.nloc ? g.nloc : 1, sizeof(uint64_t));
    st.order = mh_mem_malloc((g.nloc ? g.nloc : 1) * sizeof(uint32_t));
    if (!m.seq || !m.len || !m.size || !m.count || !st.size || !st.count || !st.order) {
        PyErr_NoMemory();
        goto done;
    }
    mh_tree_members_fill(&g, order, norder, flag, ldepth, &unknown, &m, &st);
    for (size_t i = 0; i < m.n; i++) {
        total_size += m.size[i];
        total_count += m.count[i];
    }
    if (mh_tree_sites_sort(&st) < 0 || mh_tree_split_init(&sp, g.nloc) < 0
        || mh_tree_node_add(&t, MH_NONE32, MH_NONE32, total_size, total_count) < 0
        || mh_tree_build(&sp, &m, &t, (double)total_size * share, &folded) < 0)
        goto done;
    result = mh_tree_result(&g, &t, &sp, &st, folded);
done:
    mh_mem_free(flag, g.nu ? g.nu : 1);
    mh_mem_free(order, (g.nkey ? g.nkey : 1) * sizeof(uint32_t));
    mh_tree_members_free(&m, mcap);
    mh_tree_sites_free(&st);
    mh_tree_split_free(&sp);
    mh_tree_nodes_free(&t);
    mh_group_free(&g);
    Py_XDECREF(unknown_name);    /* borrowed by g until here */
    return result;
}

/* ---- fnmatch ----------------------------------------------------------- *
 *
 * The subset of fnmatch.translate() CPython's tracemalloc relies on, with
 * the same results (POSIX: case-sensitive, no separator folding): `*`,
 * `?`, `[set]`, `[!set]`, ranges, and the quirks of translate()'s range
 * handling (empty ranges dropped, `-` literal at the edges).  Compiled to
 * single-character tokens plus stars, matched by the classic
 * backtrack-to-last-star loop (equivalent to translate()'s atomic
 * `(?>.*?fixed)` groups because every token has width one). */

enum { MH_TOK_LIT, MH_TOK_ANY, MH_TOK_STAR, MH_TOK_CLASS, MH_TOK_NEVER };

typedef struct {
    uint8_t type, neg;
    Py_UCS4 c;
    uint32_t rstart, rcount;    /* ranges of a class */
} mh_pat_tok;

typedef struct {
    mh_pat_tok *tok;
    size_t ntok, captok;
    Py_UCS4 *ranges;            /* lo, hi pairs */
    size_t nranges, capranges;  /* counted in Py_UCS4 */
} mh_pat;

#define MH_UNIT_JOIN 0xFFFFFFFEu    /* unescaped '-' between chunks */
#define MH_UNIT_DEL 0xFFFFFFFFu

static void
mh_pat_free(mh_pat *p)
{
    mh_mem_free(p->tok, p->captok * sizeof(mh_pat_tok));
    mh_mem_free(p->ranges, p->capranges * sizeof(Py_UCS4));
    memset(p, 0, sizeof(*p));
}

static int
mh_pat_add(mh_pat *p, uint8_t type, Py_UCS4 c)
{
    if (type == MH_TOK_STAR && p->ntok && p->tok[p->ntok - 1].type == MH_TOK_STAR)
        return 0;
    if (MH_GROW(p->tok, p->captok, p->ntok + 1) < 0)
        return -1;
    mh_pat_tok *t = &p->tok[p->ntok++];
    t->type = type;
    t->neg = 0;
    t->c = c;
    t->rstart = t->rcount = 0;
    return 0;
}

static int
mh_pat_range(mh_pat *p, Py_UCS4 lo, Py_UCS4 hi)
{
    if (MH_GROW(p->ranges, p->capranges, p->nranges + 2) < 0)
        return -1;
    p->ranges[p->nranges++] = lo;
    p->ranges[p->nranges++] = hi;
    p->tok[p->ntok - 1].rcount++;
    return 0;
}

/* Build the class token from translate()'s `stuff`, given as units
 * (literal code points, MH_UNIT_JOIN for an unescaped '-', MH_UNIT_DEL
 * for removed ones), the way sre parses it. */
static int
mh_pat_class(mh_pat *p, Py_UCS4 *u, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] != MH_UNIT_DEL)
            u[m++] = u[i];
    if (m == 0)
        return mh_pat_add(p, MH_TOK_NEVER, 0);
    if (m == 1 && u[0] == '!')
        return mh_pat_add(p, MH_TOK_ANY, 0);
    size_t i = 0;
    int neg = 0;
    if (u[0] == '!') {
        neg = 1;
        i = 1;
    }
    if (mh_pat_add(p, MH_TOK_CLASS, 0) < 0)
        return -1;
    p->tok[p->ntok - 1].neg = (uint8_t)neg;
    p->tok[p->ntok - 1].rstart = (uint32_t)p->nranges;
    while (i < m) {
        Py_UCS4 lo = u[i] == MH_UNIT_JOIN ? '-' : u[i];
        i++;
        if (i < m && u[i] == MH_UNIT_JOIN) {
            i++;
            if (i >= m) {
                if (mh_pat_range(p, lo, lo) < 0 || mh_pat_range(p, '-', '-') < 0)
                    return -1;
                break;
            }
            Py_UCS4 hi = u[i] == MH_UNIT_JOIN ? '-' : u[i];
            i++;
            /* hi < lo is a re.error in CPython; the Python layer compiles
             * the pattern with fnmatch first, so this never matches. */
            if (hi >= lo && mh_pat_range(p, lo, hi) < 0)
                return -1;
        }
        else if (mh_pat_range(p, lo, lo) < 0) {
            return -1;
        }
    }
    return 0;
}

/* translate()'s handling of "[...]": pat[i] is the char after '['; j is
 * the closing ']'. */
static int
mh_pat_bracket(mh_pat *p, const Py_UCS4 *pat, size_t i, size_t j, Py_UCS4 *u)
{
    size_t n = 0;
    int dash = 0;
    for (size_t k = i; k < j; k++)
        dash |= pat[k] == '-';
    if (!dash) {
        for (size_t k = i; k < j; k++)
            u[n++] = pat[k];
        return mh_pat_class(p, u, n);
    }
    size_t k = pat[i] == '!' ? i + 2 : i + 1;
    size_t ci = i;
    int nchunks = 0;
    /* Chunks separated by JOIN units. */
    for (;;) {
        size_t d = k;
        while (d < j && pat[d] != '-')
            d++;
        if (k >= j || d >= j)
            break;
        if (nchunks++)
            u[n++] = MH_UNIT_JOIN;
        for (size_t x = ci; x < d; x++)
            u[n++] = pat[x];
        ci = d + 1;
        k = d + 3;
    }
    if (ci < j) {
        if (nchunks++)
            u[n++] = MH_UNIT_JOIN;
        for (size_t x = ci; x < j; x++)
            u[n++] = pat[x];
    }
    else {
        u[n++] = '-';   /* chunks[-1] += '-' */
    }
    /* Remove empty ranges, from the last join backwards: drop the range's
     * two endpoints and the join (chunks[k-1][:-1] + chunks[k][1:]). */
    for (size_t x = n; x-- > 0;) {
        if (u[x] != MH_UNIT_JOIN)
            continue;
        size_t a = x, b = x;
        while (a > 0 && u[a - 1] == MH_UNIT_DEL)
            a--;
        while (b + 1 < n && u[b + 1] == MH_UNIT_DEL)
            b++;
        if (a == 0 || b + 1 >= n)
            continue;
        if (u[a - 1] > u[b + 1]) {
            u[a - 1] = MH_UNIT_DEL;
            u[x] = MH_UNIT_DEL;
            u[b + 1] = MH_UNIT_DEL;
        }
    }
    return mh_pat_class(p, u, n);
}

static int
mh_pat_compile(mh_pat *p, PyObject *pattern)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(pattern);
    Py_UCS4 *pat = mh_mem_malloc(((size_t)n + 1) * sizeof(Py_UCS4));
    Py_UCS4 *u = mh_mem_malloc(((size_t)n * 2 + 4) * sizeof(Py_UCS4));
    int rc = -1;
    memset(p, 0, sizeof(*p));
    if (pat == NULL || u == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyUnicode_AsUCS4(pattern, pat, n + 1, 1) == NULL)
        goto done;
    for (size_t i = 0; i < (size_t)n;) {
        Py_UCS4 c = pat[i++];
        int r;
        if (c == '*') {
            r = mh_pat_add(p, MH_TOK_STAR, 0);
        }
        else if (c == '?') {
            r = mh_pat_add(p, MH_TOK_ANY, 0);
        }
        else if (c == '[') {
            size_t j = i;
            if (j < (size_t)n && pat[j] == '!')
                j++;
            if (j < (size_t)n && pat[j] == ']')
                j++;
            while (j < (size_t)n && pat[j] != ']')
                j++;
            if (j >= (size_t)n) {
                r = mh_pat_add(p, MH_TOK_LIT, '[');
            }
            else {
                r = mh_pat_bracket(p, pat, i, j, u);
                i = j + 1;
            }
        }
        else {
            r = mh_pat_add(p, MH_TOK_LIT, c);
        }
        if (r < 0)
            goto done;
    }
    rc = 0;
done:
    mh_mem_free(pat, ((size_t)n + 1) * sizeof(Py_UCS4));
    mh_mem_free(u, ((size_t)n * 2 + 4) * sizeof(Py_UCS4));
    if (rc < 0)
        mh_pat_free(p);
    return rc;
}

static inline int
mh_pat_tok_match(const mh_pat *p, const mh_pat_tok *t, Py_UCS4 c)
{
    switch (t->type) {
    case MH_TOK_LIT:
        return t->c == c;
    case MH_TOK_ANY:
        return 1;
    case MH_TOK_CLASS: {
        const Py_UCS4 *r = p->ranges + t->rstart;
        for (uint32_t i = 0; i < t->rcount; i++)
            if (c >= r[2 * i] && c <= r[2 * i + 1])
                return !t->neg;
        return t->neg;
    }
    default:
        return 0;
    }
}

/* Match the first `len` characters of `s` against the whole pattern. */
static int
mh_pat_match(const mh_pat *p, PyObject *s, Py_ssize_t len)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    size_t si = 0, pi = 0, n = (size_t)len, m = p->ntok;
    size_t star = (size_t)-1, mark = 0;
    while (si < n) {
        if (pi < m && p->tok[pi].type == MH_TOK_STAR) {
            star = pi++;
            mark = si;
        }
        else if (pi < m && mh_pat_tok_match(p, &p->tok[pi], PyUnicode_READ(kind, data, si))) {
            pi++;
            si++;
        }
        else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        }
        else {
            return 0;
        }
    }
    while (pi < m && p->tok[pi].type == MH_TOK_STAR)
        pi++;
    return pi == m;
}

/* tracemalloc's _normalize_filename() on POSIX: "x.pyc" -> "x.py". */
static Py_ssize_t
mh_normalized_length(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *d = PyUnicode_DATA(s);
    if (n >= 4 && PyUnicode_READ(kind, d, n - 4) == '.' && PyUnicode_READ(kind, d, n - 3) == 'p'
        && PyUnicode_READ(kind, d, n - 2) == 'y' && PyUnicode_READ(kind, d, n - 1) == 'c')
        return n - 1;
    return n;
}

static PyObject *
mh_snapshot_py_fnmatch(PyObject *cls, PyObject *args)
{
    PyObject *name, *pattern;
    mh_pat p;
    (void)cls;
    if (!PyArg_ParseTuple(args, "UU:_fnmatch", &name, &pattern))
        return NULL;
    if (mh_pat_compile(&p, pattern) < 0)
        return NULL;
    int r = mh_pat_match(&p, name, mh_normalized_length(name));
    mh_pat_free(&p);
    return PyBool_FromLong(r);
}

/* ---- filter_traces() --------------------------------------------------- */

enum { MH_RES_UNKNOWN = 0, MH_RES_FALSE = 1, MH_RES_TRUE = 2, MH_RES_ERROR = 3 };

typedef struct {
    int domain_filter, inclusive, all_frames;
    int has_lineno, lineno_never, has_domain, domain_never;
    int32_t lineno;
    uint32_t domain;
    mh_pat pat;
    uint8_t *fmatch;   /* per string: MH_RES_* of fnmatch */
    uint8_t *tbres;    /* per traceback: MH_RES_* of _match_traceback */
} mh_filt;

static int
mh_filt_int(PyObject *obj, const char *what, int64_t lo, int64_t hi, int *has, int *never,
            int64_t *out)
{
    *has = obj != Py_None;
    *never = 0;
    if (!*has)
        return 0;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "filter %s must be int or None, not %.200s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi)
        *never = 1;   /* equal to no frame/trace */
    else
        *out = v;
    return 0;
}

static int
mh_filt_parse(mh_filt *f, PyObject *spec)
{
    PyObject *pattern, *lineno, *domain;
    int64_t v = 0;
    memset(f, 0, sizeof(*f));
    if (!PyArg_ParseTuple(spec, "ppOOpO:filter spec", &f->domain_filter, &f->inclusive,
                          &pattern, &lineno, &f->all_frames, &domain))
        return -1;
    if (mh_filt_int(domain, "domain", 0, UINT32_MAX, &f->has_domain, &f->domain_never, &v) < 0)
        return -1;
    f->domain = (uint32_t)v;
    if (f->domain_filter)
        return 0;
    if (!PyUnicode_Check(pattern)) {
        PyErr_Format(PyExc_TypeError, "filename_pattern must be str, not %.200s",
                     Py_TYPE(pattern)->tp_name);
        return -1;
    }
    if (mh_filt_int(lineno, "lineno", INT32_MIN, INT32_MAX, &f->has_lineno, &f->lineno_never,
                    &v) < 0)
        return -1;
    f->lineno = (int32_t)v;
    return mh_pat_compile(&f->pat, pattern);
}

static int
mh_filt_tables(mh_filt *f, const mh_snapshot_tables *t)
{
    f->fmatch = mh_mem_calloc(t->nstrings ? t->nstrings : 1, 1);
    f->tbres = mh_mem_calloc(t->ntbs ? t->ntbs : 1, 1);
    if (f->fmatch == NULL || f->tbres == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
mh_filt_free(mh_filt *f, const mh_snapshot_tables *t)
{
    mh_pat_free(&f->pat);
    mh_mem_free(f->fmatch, t->nstrings ? t->nstrings : 1);
    mh_mem_free(f->tbres, t->ntbs ? t->ntbs : 1);
}

/* Filter._match_frame_impl(): fnmatch on the normalized filename, then
 * the line number. */
static int
mh_filt_frame(mh_filt *f, const mh_snapshot_tables *t, uint32_t fi)
{
    const mh_snapshot_frame *fr = &t->frames[fi];
    uint8_t *m = &f->fmatch[fr->filename];
    if (*m == MH_RES_UNKNOWN) {
        PyObject *s = t->strings[fr->filename];
        *m = mh_pat_match(&f->pat, s, mh_normalized_length(s)) ? MH_RES_TRUE : MH_RES_FALSE;
    }
    if (*m != MH_RES_TRUE)
        return 0;
    if (!f->has_lineno)
        return 1;
    return !f->lineno_never && fr->lineno == f->lineno;
}

/* Filter._match_traceback(). */
static uint8_t
mh_filt_tb(mh_filt *f, const mh_snapshot_tables *t, uint32_t ti)
{
    uint8_t *r = &f->tbres[ti];
    if (*r != MH_RES_UNKNOWN)
        return *r;
    const mh_snapshot_tb *tb = &t->tbs[ti];
    const uint32_t *frames = t->tb_frames + tb->start;
    int res;
    if (f->all_frames) {
        int any = 0;
        for (uint32_t k = 0; k < tb->nframe && !any; k++)
            any = mh_filt_frame(f, t, frames[k]);
        res = any ? f->inclusive : !f->inclusive;
    }
    else if (tb->nframe == 0) {
        return *r = MH_RES_ERROR;
    }
    else {
        res = mh_filt_frame(f, t, frames[0]) ^ !f->inclusive;
    }
    return *r = res ? MH_RES_TRUE : MH_RES_FALSE;
}

/* BaseFilter._match(trace): 1, 0, or -1 with IndexError. */
static int
mh_filt_match(mh_filt *f, const mh_snapshot_tables *t, uint32_t domain, uint32_t ti)
{
    int eqdom = f->has_domain && !f->domain_never && domain == f->domain;
    if (f->domain_filter)
        return eqdom ^ !f->inclusive;
    uint8_t r = mh_filt_tb(f, t, ti);
    if (r == MH_RES_ERROR) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return -1;
    }
    int res = r == MH_RES_TRUE;
    if (f->has_domain)
        res = f->inclusive ? (res && eqdom) : (res || !eqdom);
    return res;
}

static PyObject *
mh_snapshot_py_filter(mh_snapshot_object *s, PyObject *specs)
{
    PyObject *seq = PySequence_Fast(specs, "filter specs must be a sequence");
    if (seq == NULL)
        return NULL;
    Py_ssize_t nf = PySequence_Fast_GET_SIZE(seq);
    mh_filt *filts = mh_mem_calloc(nf ? (size_t)nf : 1, sizeof(mh_filt));
    uint32_t *inc = mh_mem_malloc((nf ? (size_t)nf : 1) * sizeof(uint32_t));
    uint32_t *exc = mh_mem_malloc((nf ? (size_t)nf : 1) * sizeof(uint32_t));
    size_t ninc = 0, nexc = 0;
    Py_ssize_t parsed = 0;
    mh_snapshot_object *out = NULL;
    uint8_t *verdict = NULL;      /* per traceback: 0 unknown, 1 drop, 2 keep */
    if (filts == NULL || inc == NULL || exc == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    for (; parsed < nf; parsed++) {
        mh_filt *f = &filts[parsed];
        if (mh_filt_parse(f, PySequence_Fast_GET_ITEM(seq, parsed)) < 0
            || mh_filt_tables(f, s->t) < 0) {
            parsed++;
            goto error;
        }
        if (f->inclusive)
            inc[ninc++] = (uint32_t)parsed;
        else
            exc[nexc++] = (uint32_t)parsed;
    }
    s->t->refcnt++;
    out = (mh_snapshot_object *)mh_snapshot_wrap(s->t, s->traceback_limit);
    if (out == NULL || mh_snapshot_grow_traces(out, s->ntraces) < 0)
        goto error;
    /* Without domain conditions the verdict depends on the traceback only:
     * decide once per traceback, then each trace is one byte load. */
    int per_tb = 1;
    for (Py_ssize_t k = 0; k < nf; k++)
        per_tb &= !filts[k].domain_filter && !filts[k].has_domain;
    if (per_tb) {
        verdict = mh_mem_calloc(s->t->ntbs ? s->t->ntbs : 1, 1);
        if (verdict == NULL) {
            PyErr_NoMemory();
            goto error;
        }
    }
    for (size_t i = 0; i < s->ntraces; i++) {
        uint32_t dom = s->domain[i], tb = s->tb[i];
        int keep = 1;
        if (verdict && verdict[tb]) {
            keep = verdict[tb] == 2;
            goto decided;
        }
        if (ninc) {
            keep = 0;
            for (size_t k = 0; k < ninc && !keep; k++) {
                int r = mh_filt_match(&filts[inc[k]], s->t, dom, tb);
                if (r < 0)
                    goto error;
                keep = r;
            }
        }
        for (size_t k = 0; k < nexc && keep; k++) {
            int r = mh_filt_match(&filts[exc[k]], s->t, dom, tb);
            if (r < 0)
                goto error;
            keep = r;
        }
        if (verdict)
            verdict[tb] = keep ? 2 : 1;
decided:
        if (keep) {
            out->domain[out->ntraces] = dom;
            out->size[out->ntraces] = s->size[i];
            out->tb[out->ntraces] = tb;
            out->ntraces++;
        }
    }
    goto done;
error:
    Py_CLEAR(out);
done:
    mh_mem_free(verdict, s->t->ntbs ? s->t->ntbs : 1);
    for (Py_ssize_t i = 0; i < parsed; i++)
        mh_filt_free(&filts[i], s->t);
    mh_mem_free(filts, (nf ? (size_t)nf : 1) * sizeof(mh_filt));
    mh_mem_free(inc, (nf ? (size_t)nf : 1) * sizeof(uint32_t));
    mh_mem_free(exc, (nf ? (size_t)nf : 1) * sizeof(uint32_t));
    Py_DECREF(seq);
    return (PyObject *)out;
}

/* ---- Python type ------------------------------------------------------- */

static PyObject *
mh_snapshot_py_counts(mh_snapshot_object *s, PyObject *noargs)
{
    (void)noargs;
    return Py_BuildValue("{sIsIsIsn}", "strings", s->t->nstrings, "frames", s->t->nframes,
                         "tracebacks", s->t->ntbs, "traces", (Py_ssize_t)s->ntraces);
}

static PyObject *
mh_snapshot_py_mem_used(PyObject *cls, PyObject *noargs)
{
    (void)cls;
    (void)noargs;
    return PyLong_FromSize_t(mh_mem_used());
}

static PyObject *
mh_snapshot_py_dump(mh_snapshot_object *s, PyObject *args)
{
    PyObject *path, *metadata = Py_None;
    int limit = s->traceback_limit, saved = s->traceback_limit;
    if (!PyArg_ParseTuple(args, "O|Oi:dump", &path, &metadata, &limit))
        return NULL;
    /* Snapshot.traceback_limit is a plain attribute that may differ. */
    s->traceback_limit = limit;
    PyObject *r = mh_fileformat_dump(s, path, metadata);
    s->traceback_limit = saved;
    return r;
}

static PyObject *
mh_snapshot_py_load(PyObject *cls, PyObject *path)
{
    (void)cls;
    return mh_fileformat_load(path);
}

static PyObject *
mh_snapshot_get_limit(mh_snapshot_object *s, void *closure)
{
    (void)closure;
    return PyLong_FromLong(s->traceback_limit);
}

static PyMethodDef mh_snapshot_methods[] = {
    {"trace", (PyCFunction)mh_snapshot_py_trace, METH_O,
     "trace(i) -> (domain, size, frames, total_nframe) like tracemalloc._get_traces()."},
    {"functions", (PyCFunction)mh_snapshot_py_functions, METH_O,
     "functions(i) -> function names of trace i's frames (most recent first) or None."},
    {"to_raw", (PyCFunction)mh_snapshot_py_to_raw, METH_NOARGS,
     "List of raw trace tuples; identical tracebacks share one tuple."},
    {"equals", (PyCFunction)mh_snapshot_py_equals, METH_O,
     "True if both hold the same traces in the same order."},
    {"statistics", (PyCFunction)mh_snapshot_py_statistics, METH_VARARGS,
     "statistics(mode, cumulative) -> [(frames, functions, size, count)], sorted; "
     "mode 0=lineno 1=filename 2=traceback; frames oldest first."},
    {"compare_to", (PyCFunction)mh_snapshot_py_compare_to, METH_VARARGS,
     "compare_to(old, mode, cumulative) -> [(frames, functions, size, size_diff, count, "
     "count_diff)], sorted."},
    {"flame_tree", (PyCFunction)mh_snapshot_py_flame_tree, METH_VARARGS,
     "flame_tree(min_share, launcher_file, runpy_files, launcher_depth) -> (frames, parent, "
     "frame, size, count, folded, sites, site_size, site_count): the report call tree, "
     "breadth first, root = node 0; frames and sites are (filename, lineno, function), "
     "sites biggest first."},
    {"filter", (PyCFunction)mh_snapshot_py_filter, METH_O,
     "filter([(is_domain_filter, inclusive, pattern, lineno, all_frames, domain), ...]) "
     "-> SnapshotData sharing this one's tables."},
    {"counts", (PyCFunction)mh_snapshot_py_counts, METH_NOARGS,
     "Sizes of the tables."},
    {"dump", (PyCFunction)mh_snapshot_py_dump, METH_VARARGS,
     "dump(path, metadata_json=None, traceback_limit=self.traceback_limit): write the snapshot file."},
    {"load", (PyCFunction)mh_snapshot_py_load, METH_O | METH_CLASS,
     "load(path) -> (SnapshotData, metadata_json or None)."},
    {"_crc32c", (PyCFunction)mh_fileformat_py_crc32c, METH_VARARGS | METH_CLASS,
     "_crc32c(data, software=False): the file checksum (test hook)."},
    {"_mem_used", (PyCFunction)mh_snapshot_py_mem_used, METH_NOARGS | METH_CLASS,
     "Bytes of memhound's own memory in use (test hook for out-of-memory tests)."},
    {"_fnmatch", (PyCFunction)mh_snapshot_py_fnmatch, METH_VARARGS | METH_CLASS,
     "_fnmatch(filename, pattern): tracemalloc's filename match (test hook)."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef mh_snapshot_getset[] = {
    {"traceback_limit", (getter)mh_snapshot_get_limit, NULL, "Frames kept per traceback.", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PySequenceMethods mh_snapshot_as_sequence = {
    .sq_length = (lenfunc)mh_snapshot_len,
};

PyTypeObject mh_snapshot_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memhound._core.SnapshotData",
    .tp_basicsize = sizeof(mh_snapshot_object),
    .tp_dealloc = (destructor)mh_snapshot_dealloc,
    .tp_as_sequence = &mh_snapshot_as_sequence,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "SnapshotData(raw_traces, traceback_limit)\n--\n\n"
              "Compact snapshot of traces: string, frame, traceback and trace arrays.",
    .tp_methods = mh_snapshot_methods,
    .tp_getset = mh_snapshot_getset,
    .tp_new = mh_snapshot_from_raw,
};

int
mh_snapshot_module_init(PyObject *module)
{
    if (PyType_Ready(&mh_snapshot_type) < 0)
        return -1;
    Py_INCREF(&mh_snapshot_type);
    if (PyModule_AddObject(module, "SnapshotData", (PyObject *)&mh_snapshot_type) < 0) {
        Py_DECREF(&mh_snapshot_type);
        return -1;
    }
    return 0;
}
