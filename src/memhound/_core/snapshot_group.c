/* snapshot_group.c -- statistics() and compare_to(): see snapshot_group.h.
 *
 * Analyses never look at a trace twice: one pass sums size and count per
 * traceback, and all grouping happens on those per-traceback totals.
 * Sorting uses string ranks computed once, so the order is exactly
 * tracemalloc's: (size, count, traceback) descending, where tracebacks
 * compare as tuples of (filename, lineno) from the oldest frame.  Keys are
 * sorted as compact records (criteria plus packed ranks of the first four
 * locations), so a million distinct tracebacks rarely reach the full
 * comparison.
 *
 * Costs: a context allocates O(strings + frames + tracebacks) temporaries;
 * Python objects are created only for the rows returned.
 */
#include "snapshot_group.h"
#include "memory.h"

#include <stdlib.h>
#include <string.h>

void
mh_group_free(mh_group *g)
{
    mh_mem_free(g->ustr, g->capu * sizeof(PyObject *));
    mh_mem_free(g->uhash, g->capuh * sizeof(uint32_t));
    mh_index_free(&g->uidx);
    mh_mem_free(g->urank, (g->nu ? g->nu : 1) * sizeof(uint32_t));
    mh_mem_free(g->loc, g->caploc * sizeof(mh_group_loc));
    mh_mem_free(g->lhash, g->caplh * sizeof(uint32_t));
    mh_index_free(&g->lidx);
    if (g->ltuple) {
        for (size_t i = 0; i < g->nloc; i++)
            Py_XDECREF(g->ltuple[i]);
        mh_mem_free(g->ltuple, (g->nloc ? g->nloc : 1) * sizeof(PyObject *));
    }
    mh_mem_free(g->kpool, g->capkpool * sizeof(uint32_t));
    mh_mem_free(g->kstart, g->capks * sizeof(uint64_t));
    mh_mem_free(g->klen, g->capkl * sizeof(uint32_t));
    mh_mem_free(g->khash, g->capkh * sizeof(uint32_t));
    mh_index_free(&g->kidx);
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

int64_t
mh_group_uid(mh_group *g, PyObject *s, uint32_t h)
{
    size_t slot;
    if (mh_index_reserve(&g->uidx, g->uhash, g->nu) < 0)
        return -1;
    const void *ctx[2] = {g, s};
    uint32_t e = mh_index_find(&g->uidx, h, g->uhash, mh_group_ustr_eq, ctx, &slot);
    if (e != MH_INDEX_NONE)
        return e;
    if (MH_GROW(g->ustr, g->capu, g->nu + 1) < 0 || MH_GROW(g->uhash, g->capuh, g->nu + 1) < 0)
        return -1;
    e = (uint32_t)g->nu++;
    g->ustr[e] = s;   /* borrowed: the snapshots outlive the group */
    g->uhash[e] = h;
    mh_index_insert(&g->uidx, slot, e);
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

int64_t
mh_group_loc_id(mh_group *g, uint32_t uid, int32_t lineno, PyObject *function)
{
    mh_group_loc l = {uid, lineno, function};
    uint32_t h = mh_index_hash32(((uint64_t)uid << 32) | (uint32_t)lineno);
    size_t slot;
    if (mh_index_reserve(&g->lidx, g->lhash, g->nloc) < 0)
        return -1;
    const void *ctx[2] = {g, &l};
    uint32_t e = mh_index_find(&g->lidx, h, g->lhash, mh_group_loc_eq, ctx, &slot);
    if (e != MH_INDEX_NONE)
        return e;
    if (MH_GROW(g->loc, g->caploc, g->nloc + 1) < 0 || MH_GROW(g->lhash, g->caplh, g->nloc + 1) < 0)
        return -1;
    e = (uint32_t)g->nloc++;
    g->loc[e] = l;
    g->lhash[e] = h;
    mh_index_insert(&g->lidx, slot, e);
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
    uint32_t h = mh_index_hash32(acc);
    size_t slot;
    if (mh_index_reserve(&g->kidx, g->khash, g->nkey) < 0)
        return -1;
    mh_group_keyprobe p = {g, seq, len};
    uint32_t e = mh_index_find(&g->kidx, h, g->khash, mh_group_key_eq, &p, &slot);
    if (e != MH_INDEX_NONE)
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
    mh_index_insert(&g->kidx, slot, e);
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

int
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
    const uint64_t rate = s->sample_every;
    if (rate == 0) {
        for (size_t i = 0; i < s->ntraces; i++) {
            sd.tbsize[tbi[i]] += sz[i];
            sd.tbcount[tbi[i]]++;
        }
    }
    else {
        /* Weighted: counts in 1/MH_COUNT_ONE units, rounded once per key
         * below, so that sums do not depend on the order of the traces. */
        for (size_t i = 0; i < s->ntraces; i++) {
            sd.tbsize[tbi[i]] += mh_sample_estimate(sz[i], rate);
            sd.tbcount[tbi[i]] += mh_sample_count(sz[i], rate);
        }
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
    if (rate != 0) {
        /* Every key of this side was summed from this snapshot only.  A
         * weight is at least 1, so no counted key rounds to 0. */
        for (size_t k = 0; k < g->nkey; k++)
            g->kcount[side][k] = (g->kcount[side][k] + MH_COUNT_ONE / 2) >> MH_COUNT_SHIFT;
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

int
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
    if (mh_snapshot_cache_init(&g->ltuple, g->nloc) < 0)
        return NULL;
    if (g->ltuple[l] == NULL) {
        g->ltuple[l] = mh_snapshot_location(g->ustr[g->loc[l].uid], g->loc[l].lineno);
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
int
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

PyObject *
mh_group_py_statistics(PyObject *snap, PyObject *args)
{
    int mode, cumulative;
    if (mh_group_parse_mode(args, NULL, &mode, &cumulative) < 0)
        return NULL;
    return mh_group_run((mh_snapshot_object *)snap, NULL, mode, cumulative);
}

PyObject *
mh_group_py_compare_to(PyObject *snap, PyObject *args)
{
    PyObject *old;
    int mode, cumulative;
    if (mh_group_parse_mode(args, &old, &mode, &cumulative) < 0)
        return NULL;
    return mh_group_run((mh_snapshot_object *)snap, (mh_snapshot_object *)old, mode, cumulative);
}

