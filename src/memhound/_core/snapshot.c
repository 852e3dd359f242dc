/* snapshot.c -- SnapshotData: interning the tables, the builder API of
 * snapshot.h, tracemalloc raw traces in and out, and the Python type.
 *
 * The tables are described in snapshot_tables.h.  The analyses live beside
 * this file and only register their entry points in the type's method
 * table: snapshot_group.c (statistics(), compare_to()), snapshot_filter.c
 * (filter_traces()), flame.c (the report's call tree) and fileformat.c
 * (dump, load).
 *
 * Costs: interning hashes every frame of every raw traceback once, except
 * that stdlib _get_traces() shares one frames tuple per traceback, so a
 * cache keyed by the tuple's identity skips interning for most traces.
 * Python objects are created only for what is returned, and cached per
 * traceback for Snapshot.traces, which stdlib code expects to share
 * identical traceback tuples.
 */
#include "snapshot_tables.h"
#include "fileformat.h"
#include "flame.h"
#include "memory.h"
#include "snapshot_filter.h"
#include "snapshot_group.h"

#include <stdlib.h>
#include <string.h>

/* ---- small helpers ----------------------------------------------------- */

int
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

/* ---- tables ------------------------------------------------------------ */

static mh_snapshot_tables *
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
    mh_index_free(&t->string_idx);
    mh_index_free(&t->frame_idx);
    mh_index_free(&t->tb_idx);
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
    if (mh_index_reserve(&t->string_idx, t->string_hash, t->nstrings) < 0)
        return -1;
    const void *ctx[2] = {t, s};
    uint32_t e = mh_index_find(&t->string_idx, h, t->string_hash,
                                      mh_snapshot_string_eq, ctx, &slot);
    if (e != MH_INDEX_NONE)
        return e;
    if (mh_snapshot_tables_reserve(t, 1, 0, 0, 0) < 0)
        return -1;
    e = t->nstrings++;
    t->strings[e] = Py_NewRef(s);
    t->string_hash[e] = h;
    mh_index_insert(&t->string_idx, slot, e);
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
    uint32_t h = mh_index_hash32(((uint64_t)filename << 32 | (uint32_t)lineno)
                                 ^ ((uint64_t)function * 0x9e3779b97f4a7c15ULL));
    size_t slot;
    if (t->nframes == MH_NONE32 - 1) {
        PyErr_SetString(PyExc_OverflowError, "too many distinct frames in a snapshot");
        return -1;
    }
    if (mh_index_reserve(&t->frame_idx, t->frame_hash, t->nframes) < 0)
        return -1;
    const void *ctx[2] = {t, &f};
    uint32_t e = mh_index_find(&t->frame_idx, h, t->frame_hash,
                                      mh_snapshot_frame_eq, ctx, &slot);
    if (e != MH_INDEX_NONE)
        return e;
    if (mh_snapshot_tables_reserve(t, 0, 1, 0, 0) < 0)
        return -1;
    e = t->nframes++;
    t->frames[e] = f;
    t->frame_hash[e] = h;
    mh_index_insert(&t->frame_idx, slot, e);
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
    uint32_t h = mh_index_hash32(acc);
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
    if (mh_index_reserve(&t->tb_idx, t->tb_hash, t->ntbs) < 0)
        return -1;
    mh_snapshot_tbprobe probe = {t, frames, nframe, total};
    uint32_t e = mh_index_find(&t->tb_idx, h, t->tb_hash, mh_snapshot_tb_eq,
                                      &probe, &slot);
    if (e != MH_INDEX_NONE)
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
    mh_index_insert(&t->tb_idx, slot, e);
    return e;
}

/* ---- the SnapshotData object and the builder API ----------------------- */

/* Wrap `t` (reference stolen) into a new SnapshotData. */
static PyObject *
mh_snapshot_wrap(mh_snapshot_tables *t, int traceback_limit)
{
    mh_snapshot_object *s = PyObject_New(mh_snapshot_object, &mh_snapshot_type);
    if (s == NULL) {
        mh_snapshot_tables_decref(t);
        return NULL;
    }
    s->t = t;
    s->traceback_limit = traceback_limit;
    s->sample_every = 0;
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

mh_snapshot_object *
mh_snapshot_new_sharing(mh_snapshot_object *s)
{
    s->t->refcnt++;
    mh_snapshot_object *n = (mh_snapshot_object *)mh_snapshot_wrap(s->t, s->traceback_limit);
    if (n != NULL)
        n->sample_every = s->sample_every;
    return n;
}

void
mh_snapshot_set_sample_every(PyObject *snap, uint64_t rate)
{
    ((mh_snapshot_object *)snap)->sample_every = rate;
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
    PyObject *key;              /* NULL = empty slot */
    int64_t total;
    uint32_t tb;
} mh_snapshot_ptrslot;

typedef struct {
    mh_snapshot_ptrslot *slots;
    size_t capacity, used;
} mh_snapshot_ptrcache;

static void
mh_snapshot_ptrcache_free(mh_snapshot_ptrcache *c)
{
    mh_mem_free(c->slots, c->capacity * sizeof(mh_snapshot_ptrslot));
    c->slots = NULL;
}

static inline size_t
mh_snapshot_ptrcache_home(PyObject *key, int64_t total, size_t capacity)
{
    return mh_index_home(mh_index_mix((uint64_t)(uintptr_t)key ^ ((uint64_t)total << 40)),
                         capacity);
}

/* The slot of (key, total), or the empty slot where it goes. */
static mh_snapshot_ptrslot *
mh_snapshot_ptrcache_slot(mh_snapshot_ptrslot *slots, size_t capacity, PyObject *key,
                          int64_t total)
{
    size_t i = mh_snapshot_ptrcache_home(key, total, capacity);
    while (slots[i].key != NULL && (slots[i].key != key || slots[i].total != total))
        i = mh_index_next(i, capacity);
    return &slots[i];
}

static mh_snapshot_ptrslot *
mh_snapshot_ptrcache_find(mh_snapshot_ptrcache *c, PyObject *key, int64_t total)
{
    if (c->slots == NULL)
        return NULL;
    mh_snapshot_ptrslot *slot = mh_snapshot_ptrcache_slot(c->slots, c->capacity, key, total);
    return slot->key != NULL ? slot : NULL;
}

/* Add a key known to be absent; at most half full. */
static int
mh_snapshot_ptrcache_add(mh_snapshot_ptrcache *c, PyObject *key, int64_t total, uint32_t tb)
{
    if ((c->used + 1) * 2 > c->capacity) {
        size_t capacity = c->capacity ? c->capacity * 2 : 256;
        mh_snapshot_ptrslot *slots = mh_mem_calloc(capacity, sizeof(*slots));
        if (slots == NULL) {
            PyErr_NoMemory();
            return -1;
        }
        for (size_t j = 0; j < c->capacity; j++) {
            const mh_snapshot_ptrslot *old = &c->slots[j];
            if (old->key != NULL)
                *mh_snapshot_ptrcache_slot(slots, capacity, old->key, old->total) = *old;
        }
        mh_snapshot_ptrcache_free(c);
        c->slots = slots;
        c->capacity = capacity;
    }
    *mh_snapshot_ptrcache_slot(c->slots, c->capacity, key, total) =
        (mh_snapshot_ptrslot){key, total, tb};
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
    static char *kwlist[] = {"traces", "traceback_limit", "sample_every", NULL};
    PyObject *traces;
    int limit;
    unsigned long long rate = 0;
    (void)type;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "Oi|K:SnapshotData", kwlist, &traces, &limit,
                                     &rate))
        return NULL;
    if (rate > ((unsigned long long)1 << 62)) {
        PyErr_SetString(PyExc_ValueError, "sample_every must be in [0; 2**62]");
        return NULL;
    }
    PyObject *seq = PySequence_Fast(traces, "traces must be a sequence of raw trace tuples");
    if (seq == NULL)
        return NULL;
    mh_snapshot_object *s = (mh_snapshot_object *)mh_snapshot_new(limit);
    mh_snapshot_ptrcache cache = {NULL, 0, 0};
    uint32_t *buf = NULL;
    size_t bufcap = 0;
    if (s == NULL)
        goto error;
    s->sample_every = rate;     /* the sizes given are the recorded ones */
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

int
mh_snapshot_cache_init(PyObject ***cache, size_t n)
{
    if (*cache == NULL && (*cache = mh_mem_calloc(n ? n : 1, sizeof(PyObject *))) == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

PyObject *
mh_snapshot_location(PyObject *filename, int32_t lineno)
{
    PyObject *number = PyLong_FromLong(lineno);
    if (number == NULL)
        return NULL;
    PyObject *tuple = PyTuple_Pack(2, filename, number);
    Py_DECREF(number);
    return tuple;
}

static PyObject *
mh_snapshot_frame_tuple(mh_snapshot_tables *t, uint32_t f)
{
    if (mh_snapshot_cache_init(&t->frame_tuple, t->nframes) < 0)
        return NULL;
    if (t->frame_tuple[f] == NULL) {
        const mh_snapshot_frame *fr = &t->frames[f];
        t->frame_tuple[f] = mh_snapshot_location(t->strings[fr->filename], fr->lineno);
    }
    return t->frame_tuple[f];
}

/* Borrowed ((filename, lineno), ...) of traceback `i`, cached so identical
 * tracebacks share one tuple, as with tracemalloc._get_traces(). */
static PyObject *
mh_snapshot_tb_tuple(mh_snapshot_tables *t, uint32_t i)
{
    if (mh_snapshot_cache_init(&t->tb_tuple, t->ntbs) < 0)
        return NULL;
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
mh_snapshot_trace_tuple(mh_snapshot_object *s, size_t i, int recorded)
{
    PyObject *frames = mh_snapshot_tb_tuple(s->t, s->tb[i]);
    if (frames == NULL)
        return NULL;
    return Py_BuildValue("(kKON)", (unsigned long)s->domain[i],
                         (unsigned long long)(recorded ? s->size[i] : mh_snapshot_size(s, i)),
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
    return mh_snapshot_trace_tuple(s, i, 0);
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
mh_snapshot_py_to_raw(mh_snapshot_object *s, PyObject *args)
{
    int recorded = 0;
    if (!PyArg_ParseTuple(args, "|p:to_raw", &recorded))
        return NULL;
    PyObject *list = PyList_New((Py_ssize_t)s->ntraces);
    if (list == NULL)
        return NULL;
    for (size_t i = 0; i < s->ntraces; i++) {
        PyObject *tr = mh_snapshot_trace_tuple(s, i, recorded);
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
    if (s->ntraces != o->ntraces || s->sample_every != o->sample_every)
        Py_RETURN_FALSE;
    for (size_t i = 0; i < s->ntraces; i++) {
        if (s->domain[i] != o->domain[i] || s->size[i] != o->size[i]
            || !mh_snapshot_tb_equal(s->t, s->tb[i], o->t, o->tb[i]))
            Py_RETURN_FALSE;
    }
    Py_RETURN_TRUE;
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
mh_snapshot_get_limit(mh_snapshot_object *s, void *closure)
{
    (void)closure;
    return PyLong_FromLong(s->traceback_limit);
}

static PyObject *
mh_snapshot_get_sample_every(mh_snapshot_object *s, void *closure)
{
    (void)closure;
    return PyLong_FromUnsignedLongLong(s->sample_every);
}

/* The sizes as recorded, before weighting (tests, exports that weight
 * themselves). */
static PyObject *
mh_snapshot_py_recorded_size(mh_snapshot_object *s, PyObject *arg)
{
    size_t i;
    if (mh_snapshot_index(s, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLongLong(s->size[i]);
}

static PyMethodDef mh_snapshot_methods[] = {
    {"recorded_size", (PyCFunction)mh_snapshot_py_recorded_size, METH_O,
     "recorded_size(i) -> size of trace i as recorded (trace(i) gives the estimate when "
     "sampled)."},
    {"trace", (PyCFunction)mh_snapshot_py_trace, METH_O,
     "trace(i) -> (domain, size, frames, total_nframe) like tracemalloc._get_traces()."},
    {"functions", (PyCFunction)mh_snapshot_py_functions, METH_O,
     "functions(i) -> function names of trace i's frames (most recent first) or None."},
    {"to_raw", (PyCFunction)mh_snapshot_py_to_raw, METH_VARARGS,
     "to_raw(recorded=False) -> list of raw trace tuples (sizes as recorded, else estimates "
     "when sampled); identical tracebacks share one tuple."},
    {"equals", (PyCFunction)mh_snapshot_py_equals, METH_O,
     "True if both hold the same traces in the same order."},
    {"statistics", (PyCFunction)mh_group_py_statistics, METH_VARARGS,
     "statistics(mode, cumulative) -> [(frames, functions, size, count)], sorted; "
     "mode 0=lineno 1=filename 2=traceback; frames oldest first."},
    {"compare_to", (PyCFunction)mh_group_py_compare_to, METH_VARARGS,
     "compare_to(old, mode, cumulative) -> [(frames, functions, size, size_diff, count, "
     "count_diff)], sorted."},
    {"flame_tree", (PyCFunction)mh_flame_py_tree, METH_VARARGS,
     "flame_tree(min_share, root_strip=None) -> (frames, parent, frame, size, count, folded, "
     "sites, site_size, site_count): the report call tree, breadth first, root = node 0; "
     "frames and sites are (filename, lineno, function), sites biggest first.  root_strip = "
     "(files, then_files, depth) leaves out, from the root of every traceback, the frames up "
     "to the last one among the first `depth` whose file is in `files`, and the frames of "
     "`then_files` right after it."},
    {"filter", (PyCFunction)mh_filter_py_filter, METH_O,
     "filter([(is_domain_filter, inclusive, pattern, lineno, all_frames, domain), ...]) "
     "-> SnapshotData sharing this one's tables."},
    {"counts", (PyCFunction)mh_snapshot_py_counts, METH_NOARGS,
     "Sizes of the tables."},
    {"dump", (PyCFunction)mh_fileformat_py_dump, METH_VARARGS,
     "dump(path, metadata_json=None, traceback_limit=self.traceback_limit): write the snapshot file."},
    {"load", (PyCFunction)mh_fileformat_py_load, METH_O | METH_CLASS,
     "load(path) -> (SnapshotData, metadata_json or None)."},
    {"_crc32c", (PyCFunction)mh_fileformat_py_crc32c, METH_VARARGS | METH_CLASS,
     "_crc32c(data, software=False): the file checksum (test hook)."},
    {"_mem_used", (PyCFunction)mh_snapshot_py_mem_used, METH_NOARGS | METH_CLASS,
     "Bytes of memhound's own memory in use (test hook for out-of-memory tests)."},
    {"_fnmatch", (PyCFunction)mh_filter_py_fnmatch, METH_VARARGS | METH_CLASS,
     "_fnmatch(filename, pattern): tracemalloc's filename match (test hook)."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef mh_snapshot_getset[] = {
    {"traceback_limit", (getter)mh_snapshot_get_limit, NULL, "Frames kept per traceback.", NULL},
    {"sample_every", (getter)mh_snapshot_get_sample_every, NULL,
     "Sampling rate in bytes the snapshot was taken with (0 = exact).", NULL},
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
