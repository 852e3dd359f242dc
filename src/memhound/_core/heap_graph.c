/* heap_graph.c -- census, object graph and root search for the leak finder.
 *
 * Census.  Before the measured runs, the address of every live object goes
 * into an address set (8-byte slots, load <= 0.8, shrunk to fit once
 * taken): the GC-tracked objects (the collector's lists), everything their
 * tp_traverse reaches, transitively through untracked containers (tuples
 * and dicts of atoms), the str keys that str-keyed dicts do not visit, and
 * the fast locals of every running frame.  An object of the graph whose
 * address is not in the census was created since: a survivor.  An object
 * created at the address of one freed during the runs looks old to the
 * census -- the price of not holding a reference to every object, which
 * would change what the program frees -- but not to the tracer: a traced
 * block allocated (or re-stamped from a free list) since the census is new
 * (mh_is_old).  Only an untraced block at a reused address is missed.
 *
 * Graph.  After the runs one tp_traverse pass over the same set gives every
 * edge.  Atoms (non-GC objects: str, bytes, int, float, code) that were in
 * the census can neither hold anything nor be survivors, so they get no
 * node and no edge: the graph stays close to the GC-tracked objects.  Nodes
 * are indexed by an open-addressing table (address -> 32-bit index, 12-byte
 * slots, load <= 0.8) that is freed, with the census, as soon as the edges
 * are known; edges are stored once, forward, as CSR arrays of 32-bit
 * indices.  tp_traverse only appends raw pointers to a batch; the batch is
 * then resolved with the object headers and hash slots prefetched a few
 * entries ahead, which overlaps the random memory accesses that dominate
 * the cost.
 *
 * Roots.  References found per node (in-degree, plus fast locals of running
 * frames) are compared with ob_refcnt: an excess means a holder that is not
 * a Python object (C code, the C stack, interpreter state).  The search is
 * breadth-first and iterative, forward from the named roots (modules, then
 * classes, then the interpreter's registries (heap_roots.c), then thread
 * stacks) so that one pass gives every survivor its
 * shortest path; objects still unreached are then searched from the nodes
 * "held outside Python", old ones first.  Each survivor also gets an anchor:
 * the nearest old object on its path, which the leak finder uses to group.
 *
 * Memory per node: 8 (address) + 1 (flags) + 4 (found) + 4 (CSR offset),
 * + 15 (table, build only) + 12 (BFS parent, order, anchor, search only);
 * 4 per edge; the census 10 per object (atoms included), freed before the
 * search.
 */
#include <stdio.h>
#include <time.h>

#include "compat.h"
#include "heap.h"
#include "index.h"
#include "memory.h"
#include "tracer.h"

/* ---- helpers ------------------------------------------------------------ */

/* Hash of an object address for the census set and the node table. */
static inline uint64_t
mh_hash_ptr(const void *p)
{
    return mh_index_mix((uint64_t)(uintptr_t)p);
}

static inline int
mh_is_gc(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    return PyType_IS_GC(tp) && (tp->tp_is_gc == NULL || tp->tp_is_gc(o));
}

/* CPU time of this thread: the machine may be shared. */
static double
mh_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

/* ---- address set -------------------------------------------------------- */

static int
mh_set_alloc(mh_heap_set *s, size_t cap)
{
    s->slots = mh_mem_map(cap * sizeof(uintptr_t));
    if (s->slots == NULL)
        return -1;
    s->cap = cap;
    s->count = 0;
    return 0;
}

void
mh_heap_set_free(mh_heap_set *s)
{
    if (s->slots != NULL)
        mh_mem_unmap(s->slots, s->cap * sizeof(uintptr_t));
    s->slots = NULL;
    s->cap = s->count = 0;
}

static inline int
mh_set_insert(mh_heap_set *s, uintptr_t key)
{
    size_t i = mh_index_home(mh_hash_ptr((void *)key), s->cap);
    for (;;) {
        uintptr_t cur = s->slots[i];
        if (cur == key)
            return 0;
        if (cur == 0) {
            s->slots[i] = key;
            s->count++;
            return 1;
        }
        i = mh_index_next(i, s->cap);
    }
}

static int
mh_set_resize(mh_heap_set *s, size_t cap)
{
    mh_heap_set bigger;
    if (mh_set_alloc(&bigger, cap) < 0)
        return -1;
    for (size_t i = 0; i < s->cap; i++) {
        if (s->slots[i] != 0)
            mh_set_insert(&bigger, s->slots[i]);
    }
    bigger.ntracked = s->ntracked;
    bigger.nrefs = s->nrefs;
    mh_heap_set_free(s);
    *s = bigger;
    return 0;
}

static int
mh_set_grow(mh_heap_set *s)
{
    return mh_set_resize(s, s->cap * 2);
}

/* 1 added, 0 already present, -1 out of memory. */
static inline int
mh_set_add(mh_heap_set *s, const void *p)
{
    if ((s->count + 1) * 5 > s->cap * 4 && mh_set_grow(s) < 0)
        return -1;
    return mh_set_insert(s, (uintptr_t)p);
}

static inline int
mh_set_has(const mh_heap_set *s, const void *p)
{
    uintptr_t key = (uintptr_t)p;
    size_t i = mh_index_home(mh_hash_ptr(p), s->cap);
    while (s->slots[i] != key && s->slots[i] != 0)
        i = mh_index_next(i, s->cap);
    return s->slots[i] == key;
}

/* ---- enumerating the GC-tracked objects --------------------------------- */

typedef int (*mh_each_fn)(PyObject *o, void *arg);

/* Calls fn(o) for every GC-tracked object, straight from the collector's
 * lists (gc.get_objects() would cost a list and a reference per object). */
static int
mh_each_tracked(mh_each_fn fn, void *arg)
{
    return mh_compat_visit_tracked(fn, arg);
}

/* Visits the keys of a dict whose tp_traverse skips them (str-only keys). */
static int
mh_visit_dict_keys(PyObject *o, visitproc visit, void *arg)
{
    if (!PyDict_Check(o) || mh_compat_dict_visits_keys(o))
        return 0;
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(o, &pos, &key, &value)) {
        int r = visit(key, arg);
        if (r)
            return r;
    }
    return 0;
}

static int
mh_traverse(PyObject *o, visitproc visit, void *arg)
{
    if (!mh_is_gc(o))
        return 0;
    traverseproc trav = Py_TYPE(o)->tp_traverse;
    if (trav != NULL) {
        int r = trav(o, visit, arg);
        if (r)
            return r;
    }
    return mh_visit_dict_keys(o, visit, arg);
}

/* ---- census ------------------------------------------------------------- */

#define MH_AHEAD 8              /* prefetch distance, in entries */

/* Like the graph build, visits are buffered and inserted with their hash
 * slots prefetched; untracked containers found new go on a stack and are
 * traversed in turn (no recursion). */
#define MH_CENSUS_BATCH 4096

typedef struct {
    mh_heap_set *set;
    PyObject **stack;           /* untracked containers still to traverse */
    size_t n, cap;
    int nomem;
    uint32_t nraw;
    PyObject *raw[MH_CENSUS_BATCH];
} mh_census;

static int
mh_census_push(mh_census *c, PyObject *o)
{
    if (c->n == c->cap) {
        size_t cap = c->cap ? c->cap * 2 : 1024;
        PyObject **s = mh_mem_realloc(c->stack, c->cap * sizeof(PyObject *),
                                      cap * sizeof(PyObject *));
        if (s == NULL)
            return -1;
        c->stack = s;
        c->cap = cap;
    }
    c->stack[c->n++] = o;
    return 0;
}

static void
mh_census_flush(mh_census *c)
{
    mh_heap_set *s = c->set;
    uint32_t n = c->nraw;
    for (uint32_t k = 0; k < n && !c->nomem; k++) {
        if (k + MH_AHEAD < n)
            __builtin_prefetch(&s->slots[mh_index_home(mh_hash_ptr(c->raw[k + MH_AHEAD]), s->cap)]);
        PyObject *o = c->raw[k];
        int gc = mh_is_gc(o);
        s->nrefs += gc;
        int r = mh_set_add(s, o);
        if (r < 0 || (r == 1 && gc && !PyObject_GC_IsTracked(o) && mh_census_push(c, o) < 0))
            c->nomem = 1;
    }
    c->nraw = 0;
}

static int
mh_census_visit(PyObject *o, void *arg)
{
    mh_census *c = arg;
    if (c->nraw == MH_CENSUS_BATCH)
        mh_census_flush(c);
    c->raw[c->nraw++] = o;
    return c->nomem;
}

static int
mh_census_drain(mh_census *c)
{
    for (;;) {
        mh_census_flush(c);
        if (c->n == 0 || c->nomem)
            break;
        while (c->n > 0 && !c->nomem)
            mh_traverse(c->stack[--c->n], mh_census_visit, c);
    }
    return c->nomem ? -1 : 0;
}

static int
mh_census_tracked(PyObject *o, void *arg)
{
    mh_census *c = arg;
    c->set->ntracked++;
    if (mh_set_add(c->set, o) < 0)
        return -1;
    mh_traverse(o, mh_census_visit, c);
    return c->nomem ? -1 : 0;
}

static void
mh_census_frame(unsigned long tid, int depth, const mh_frame_view *f, void *arg)
{
    mh_census *c = arg;
    (void)tid; (void)depth;
    for (int i = 0; i < f->nlocals && !c->nomem; i++) {
        PyObject *o = mh_compat_frame_local(f, i);
        if (o != NULL)
            mh_census_visit(o, c);
    }
}

static int
mh_count_one(PyObject *o, void *arg)
{
    (void)o;
    (*(size_t *)arg)++;
    return 0;
}

int
mh_heap_census_take(mh_heap_set *s)
{
    mh_census *c = mh_mem_calloc(1, sizeof(mh_census));
    if (c == NULL)
        goto nomem;
    c->set = s;
    /* Size the set once for the tracked objects and about as many atoms:
     * growing by doubling would rehash every address several times. */
    size_t ntracked = 0;
    mh_each_tracked(mh_count_one, &ntracked);
    if (mh_set_alloc(s, ntracked * 3 + (1 << 16)) < 0)
        goto nomem;
    if (mh_each_tracked(mh_census_tracked, c) < 0 || mh_census_drain(c) < 0)
        goto nomem;
    mh_compat_thread_frames(mh_census_frame, c);
    if (mh_census_drain(c) < 0)
        goto nomem;
    /* Held during the runs and the build: as tight as lookups allow. */
    if (s->cap > s->count + s->count / 3 + 64)
        mh_set_resize(s, s->count + s->count / 4 + 64);   /* failure: keep the big one */
    mh_mem_free(c->stack, c->cap * sizeof(PyObject *));
    mh_mem_free(c, sizeof(mh_census));
    return 0;
nomem:
    PyErr_SetString(PyExc_MemoryError, "memhound: not enough memory for the heap census");
    if (c != NULL) {
        mh_mem_free(c->stack, c->cap * sizeof(PyObject *));
        mh_mem_free(c, sizeof(mh_census));
    }
    mh_heap_set_free(s);
    return -1;
}

/* ---- graph: memory ------------------------------------------------------ */

static void *
mh_g_realloc(mh_heap_graph *g, void *p, size_t old, size_t new_)
{
    void *q = mh_mem_realloc(p, old, new_);
    if (q == NULL)
        return NULL;
    g->mem_now += new_ - old;
    if (g->mem_now > g->mem_peak)
        g->mem_peak = g->mem_now;
    return q;
}

static void
mh_g_free(mh_heap_graph *g, void *p, size_t size)
{
    if (p == NULL)
        return;
    mh_mem_free(p, size);
    g->mem_now -= size;
}

static void
mh_table_free(mh_heap_graph *g)
{
    if (g->table != NULL) {
        mh_mem_unmap(g->table, g->tcap * sizeof(mh_heap_slot));
        g->mem_now -= g->tcap * sizeof(mh_heap_slot);
    }
    g->table = NULL;
    g->tcap = g->tcount = 0;
}

void
mh_heap_graph_free(mh_heap_graph *g)
{
    size_t nc = g->cap_nodes;
    mh_g_free(g, g->nodes, nc * sizeof(PyObject *));
    mh_g_free(g, g->flags, nc);
    mh_g_free(g, g->found, nc * sizeof(uint32_t));
    mh_g_free(g, g->fwd_off, (nc + 1) * sizeof(uint32_t));
    mh_g_free(g, g->fwd, g->cap_edges * sizeof(uint32_t));
    mh_g_free(g, g->stack, g->cap_stack * sizeof(mh_heap_stackref));
    mh_g_free(g, g->registries, g->cap_registries * sizeof(mh_heap_registry));
    mh_g_free(g, g->parent, g->n * sizeof(uint32_t));
    mh_g_free(g, g->order, g->n * sizeof(uint32_t));
    mh_g_free(g, g->anchor, g->n * sizeof(uint32_t));
    mh_table_free(g);
    size_t peak = g->mem_peak;
    memset(g, 0, sizeof(*g));
    g->mem_peak = peak;
}

/* ---- graph: node table -------------------------------------------------- */

static int
mh_table_alloc(mh_heap_graph *g, size_t cap)
{
    g->table = mh_mem_map(cap * sizeof(mh_heap_slot));
    if (g->table == NULL)
        return -1;
    g->tcap = cap;
    g->tcount = 0;
    g->mem_now += cap * sizeof(mh_heap_slot);
    if (g->mem_now > g->mem_peak)
        g->mem_peak = g->mem_now;
    return 0;
}

static inline void
mh_table_put(mh_heap_slot *t, size_t cap, PyObject *key, uint32_t idx)
{
    size_t i = mh_index_home(mh_hash_ptr(key), cap);
    while (t[i].key != NULL)
        i = mh_index_next(i, cap);
    t[i].key = key;
    t[i].idx = idx;
}

static inline uint32_t
mh_table_get(const mh_heap_graph *g, PyObject *key)
{
    const mh_heap_slot *t = g->table;
    size_t i = mh_index_home(mh_hash_ptr(key), g->tcap);
    while (t[i].key != key && t[i].key != NULL)
        i = mh_index_next(i, g->tcap);
    return t[i].key == key ? t[i].idx : UINT32_MAX;
}

static int
mh_table_grow(mh_heap_graph *g)
{
    mh_heap_slot *old = g->table;
    size_t oldcap = g->tcap, count = g->tcount;
    if (mh_table_alloc(g, oldcap * 2) < 0)
        return -1;
    for (size_t i = 0; i < oldcap; i++) {
        if (old[i].key != NULL)
            mh_table_put(g->table, g->tcap, old[i].key, old[i].idx);
    }
    g->tcount = count;
    mh_mem_unmap(old, oldcap * sizeof(mh_heap_slot));
    g->mem_now -= oldcap * sizeof(mh_heap_slot);
    return 0;
}

static int
mh_nodes_grow(mh_heap_graph *g)
{
    size_t oc = g->cap_nodes, nc = oc ? oc + oc / 2 : g->hint_nodes;
    if (nc > MH_MAX_NODES)
        return -1;
    void *p;
    if ((p = mh_g_realloc(g, g->nodes, oc * sizeof(PyObject *), nc * sizeof(PyObject *))) == NULL)
        return -1;
    g->nodes = p;
    if ((p = mh_g_realloc(g, g->flags, oc, nc)) == NULL)
        return -1;
    g->flags = p;
    if ((p = mh_g_realloc(g, g->found, oc * sizeof(uint32_t), nc * sizeof(uint32_t))) == NULL)
        return -1;
    g->found = p;
    size_t ooff = oc ? (oc + 1) * sizeof(uint32_t) : 0;
    if ((p = mh_g_realloc(g, g->fwd_off, ooff, (nc + 1) * sizeof(uint32_t))) == NULL)
        return -1;
    g->fwd_off = p;
    g->cap_nodes = (uint32_t)nc;
    return 0;
}

/* Index of the new node, or UINT32_MAX when out of memory. */
static uint32_t
mh_node_add(mh_heap_graph *g, PyObject *o, uint8_t flags)
{
    if (g->n == g->cap_nodes && mh_nodes_grow(g) < 0)
        return UINT32_MAX;
    if ((g->tcount + 1) * 5 > g->tcap * 4 && mh_table_grow(g) < 0)
        return UINT32_MAX;
    uint32_t idx = g->n++;
    mh_table_put(g->table, g->tcap, o, idx);
    g->tcount++;
    g->nodes[idx] = o;
    g->flags[idx] = flags;
    g->found[idx] = 0;
    return idx;
}

/* ---- graph: build ------------------------------------------------------- */

/* Edges are resolved in batches: tp_traverse only appends raw pointers,
 * then each pointer is turned into a node index with the object header and
 * the hash slot prefetched a few entries ahead.  Table and census lookups
 * are random memory accesses; overlapping them is what makes one pass over
 * millions of objects fast. */
#define MH_BATCH 8192

typedef struct {
    mh_heap_graph *g;
    const mh_heap_set *census;
    mh_heap_set reborn;         /* traced blocks allocated since the census */
    int nomem;
    PyObject *raw[MH_BATCH];    /* targets waiting to be resolved */
    uint32_t nraw;
    uint32_t src[MH_BATCH];     /* source nodes of the batch ... */
    uint32_t src_end[MH_BATCH]; /* ... and where their targets end in raw[] */
    uint32_t nsrc;
} mh_build;

static inline void
mh_prefetch_slot(const mh_build *b, PyObject *o)
{
    const mh_heap_graph *g = b->g;
    if (mh_is_gc(o))
        __builtin_prefetch(&g->table[mh_index_home(mh_hash_ptr(o), g->tcap)]);
    else
        __builtin_prefetch(&b->census->slots[mh_index_home(mh_hash_ptr(o), b->census->cap)]);
}

/* Was `o` alive at the census?  The census remembers addresses, so an object
 * created during the runs where one alive then was freed looks old; the
 * tracer knows better when it traced the block: a block allocated since the
 * census (or an object it re-stamped, taken from a free list) is new. */
static inline int
mh_is_old(const mh_build *b, PyObject *o)
{
    if (!mh_set_has(b->census, o))
        return 0;
    if (b->reborn.count == 0)
        return 1;
    return !mh_set_has(&b->reborn, (char *)o - mh_compat_preheader_size(Py_TYPE(o)));
}

static int
mh_add_reborn(void *arg, uintptr_t ptr, size_t size, uint32_t tb, int raw)
{
    (void)size, (void)tb;
    mh_heap_set *s = arg;
    if (raw)
        return 0;
    if (s->slots == NULL && mh_set_alloc(s, 1024) < 0)
        return -1;
    return mh_set_add(s, (void *)ptr) < 0 ? -1 : 0;
}

/* The node of `o`, creating it when `o` is a container or a survivor;
 * UINT32_MAX when `o` is an old atom (or out of memory: b->nomem). */
static inline uint32_t
mh_node_of(mh_build *b, PyObject *o)
{
    mh_heap_graph *g = b->g;
    int gc = mh_is_gc(o);
    if ((!gc && mh_is_old(b, o)) || o == g->self_obj)
        return UINT32_MAX;
    uint32_t idx = mh_table_get(g, o);
    if (idx != UINT32_MAX)
        return idx;
    uint8_t flags = (gc && mh_is_old(b, o)) ? 0 : MH_NODE_SURVIVOR;
    idx = mh_node_add(g, o, flags);
    if (idx == UINT32_MAX)
        b->nomem = 1;
    return idx;
}

static int
mh_edges_reserve(mh_heap_graph *g, size_t extra)
{
    if (g->nedges + extra <= g->cap_edges)
        return 0;
    size_t nc = g->cap_edges + g->cap_edges / 2;
    while (nc < g->nedges + extra)
        nc += nc / 2;
    if (nc > UINT32_MAX)
        return -1;
    uint32_t *p = mh_g_realloc(g, g->fwd, g->cap_edges * sizeof(uint32_t), nc * sizeof(uint32_t));
    if (p == NULL)
        return -1;
    g->fwd = p;
    g->cap_edges = nc;
    return 0;
}

/* Resolve the pending raw targets into CSR edges. */
static int
mh_build_flush(mh_build *b)
{
    mh_heap_graph *g = b->g;
    if (mh_edges_reserve(g, b->nraw) < 0) {
        b->nomem = 1;
        return -1;
    }
    uint32_t n = b->nraw, s = 0;
    for (uint32_t k = 0; k < n; k++) {
        if (k + 2 * MH_AHEAD < n)
            __builtin_prefetch(b->raw[k + 2 * MH_AHEAD]);
        if (k + MH_AHEAD < n)
            mh_prefetch_slot(b, b->raw[k + MH_AHEAD]);
        while (s < b->nsrc && b->src_end[s] <= k)
            g->fwd_off[b->src[++s - 1] + 1] = (uint32_t)g->nedges;
        uint32_t idx = mh_node_of(b, b->raw[k]);
        if (idx == UINT32_MAX) {
            if (b->nomem)
                return -1;
            continue;
        }
        g->fwd[g->nedges++] = idx;
        g->found[idx]++;
    }
    for (; s < b->nsrc; s++)
        g->fwd_off[b->src[s] + 1] = (uint32_t)g->nedges;
    b->nraw = 0;
    b->nsrc = 0;
    return 0;
}

static int
mh_build_visit(PyObject *o, void *arg)
{
    mh_build *b = arg;
    if (b->nraw == MH_BATCH) {
        /* One source with a huge fan-out (a long list): close its part. */
        b->src_end[b->nsrc - 1] = b->nraw;
        uint32_t cur = b->src[b->nsrc - 1];
        if (mh_build_flush(b) < 0)
            return 1;
        b->src[0] = cur;
        b->nsrc = 1;
        b->src_end[0] = MH_BATCH;
    }
    b->raw[b->nraw++] = o;
    return 0;
}

static int
mh_build_tracked(PyObject *o, void *arg)
{
    mh_build *b = arg;
    mh_heap_graph *g = b->g;
    if (g->n == g->cap_nodes && mh_nodes_grow(g) < 0)
        return -1;
    g->nodes[g->n++] = o;
    return 0;
}

/* Index the tracked objects collected in nodes[0..n): table and flags. */
static int
mh_build_index(mh_build *b)
{
    mh_heap_graph *g = b->g;
    uint32_t n = g->n;
    while ((size_t)n * 5 > g->tcap * 4) {
        if (mh_table_grow(g) < 0)
            return -1;
    }
    const mh_heap_set *cs = b->census;
    for (uint32_t i = 0; i < n; i++) {
        if (i + MH_AHEAD < n) {
            uint64_t h = mh_hash_ptr(g->nodes[i + MH_AHEAD]);
            __builtin_prefetch(&g->table[mh_index_home(h, g->tcap)]);
            __builtin_prefetch(&cs->slots[mh_index_home(h, cs->cap)]);
        }
        PyObject *o = g->nodes[i];
        mh_table_put(g->table, g->tcap, o, i);
        g->flags[i] = mh_is_old(b, o) ? 0 : MH_NODE_SURVIVOR;
        g->found[i] = 0;
    }
    g->tcount = n;
    return 0;
}

/* Traverse nodes [from, n) -- n grows while we go. */
static int
mh_build_edges(mh_build *b, uint32_t from)
{
    mh_heap_graph *g = b->g;
    g->fwd_off[from] = (uint32_t)g->nedges;
    for (uint32_t i = from;; i++) {
        if (i == g->n) {
            /* New nodes may appear while resolving the last batch. */
            if (b->nraw > 0 || b->nsrc > 0) {
                if (mh_build_flush(b) < 0)
                    return -1;
            }
            if (i == g->n)
                break;
        }
        if (i + 4 < g->n)
            __builtin_prefetch(g->nodes[i + 4]);
        if (b->nsrc == MH_BATCH && mh_build_flush(b) < 0)
            return -1;
        b->src[b->nsrc++] = i;
        /* The object is in cache now: note what the root search needs. */
        PyObject *o = g->nodes[i];
        if (PyModule_Check(o))
            g->flags[i] |= MH_NODE_MODULE;
        else if (PyType_Check(o))
            g->flags[i] |= MH_NODE_TYPE;
        mh_traverse(o, mh_build_visit, b);
        if (b->nomem)
            return -1;
        b->src_end[b->nsrc - 1] = b->nraw;
        if (b->nraw >= MH_BATCH - 64 && mh_build_flush(b) < 0)
            return -1;
    }
    g->fwd_off[g->n] = (uint32_t)g->nedges;
    return 0;
}

static int
mh_own_frame(mh_heap_graph *g, PyObject *code)
{
    PyObject *fn = ((PyCodeObject *)code)->co_filename;
    if (g->skip_prefix == NULL || g->skip_len == 0 || !PyUnicode_Check(fn))
        return 0;
    Py_ssize_t len;
    const char *s = PyUnicode_AsUTF8AndSize(fn, &len);
    if (s == NULL) {
        PyErr_Clear();
        return 0;
    }
    return (size_t)len >= g->skip_len && memcmp(s, g->skip_prefix, g->skip_len) == 0;
}

static void
mh_build_frame(unsigned long tid, int depth, const mh_frame_view *f, void *arg)
{
    mh_build *b = arg;
    mh_heap_graph *g = b->g;
    int own = mh_own_frame(g, f->code);
    for (int i = 0; i < f->nlocals && !b->nomem; i++) {
        PyObject *o = mh_compat_frame_local(f, i);
        if (o == NULL)
            continue;
        /* memhound's own frames: their references are accounted for, but
         * they are not roots and what only they hold is not reported. */
        uint32_t idx = own ? mh_table_get(g, o) : mh_node_of(b, o);
        if (idx == UINT32_MAX)
            continue;
        g->found[idx]++;
        if (own)
            continue;
        if (g->nstack == g->cap_stack) {
            size_t nc = g->cap_stack ? g->cap_stack * 2 : 64;
            mh_heap_stackref *p = mh_g_realloc(g, g->stack, g->cap_stack * sizeof(*p),
                                               nc * sizeof(*p));
            if (p == NULL) {
                b->nomem = 1;
                return;
            }
            g->stack = p;
            g->cap_stack = nc;
        }
        mh_heap_stackref *r = &g->stack[g->nstack++];
        r->code = f->code;
        r->thread_id = tid;
        r->node = idx;
        r->local = i;
        r->line = f->line;
        r->depth = depth;
    }
}

/* One of the interpreter's registries (heap_roots.c), unless it is a
 * registry already (warnings.filters is also _warnings.filters).  An atom
 * holds nothing and is skipped.  A container that is no node is one the
 * collector does not track (sys.addaudithook's list is untracked on
 * purpose): it becomes an old node, traversed by the caller -- registries
 * are the interpreter's own, created once, not what a run leaked. */
static int
mh_build_registry(PyObject *obj, int kind, const char *label, void *arg)
{
    mh_build *b = arg;
    mh_heap_graph *g = b->g;
    uint32_t idx = mh_table_get(g, obj);
    if (idx == UINT32_MAX) {
        if (!mh_is_gc(obj) || obj == g->self_obj || g->nregistries == MH_MAX_REGISTRIES)
            return 0;
        idx = mh_node_add(g, obj, 0);
        if (idx == UINT32_MAX)
            return -1;
    }
    if ((g->flags[idx] & MH_NODE_REGISTRY) || g->nregistries == MH_MAX_REGISTRIES)
        return 0;
    if (g->nregistries == g->cap_registries) {
        uint32_t nc = g->cap_registries ? g->cap_registries * 2 : 32;
        mh_heap_registry *p = mh_g_realloc(g, g->registries, g->cap_registries * sizeof(*p),
                                           nc * sizeof(*p));
        if (p == NULL)
            return -1;
        g->registries = p;
        g->cap_registries = nc;
    }
    g->flags[idx] |= MH_NODE_REGISTRY;
    mh_heap_registry *r = &g->registries[g->nregistries++];
    r->node = idx;
    r->kind = (uint8_t)kind;
    snprintf(r->label, sizeof r->label, "%s", label);
    /* heap_roots.c reports the parts of one registry one after another. */
    r->first = g->nregistries - 1;
    if (r->first > 0 && r[-1].kind == r->kind && strcmp(r[-1].label, r->label) == 0)
        r->first = r[-1].first;
    return 0;
}

int
mh_heap_registry_of(const mh_heap_graph *g, uint32_t node)
{
    if (!(g->flags[node] & MH_NODE_REGISTRY))
        return -1;
    for (uint32_t k = 0; k < g->nregistries; k++) {
        if (g->registries[k].node == node)
            return (int)k;
    }
    return -1;
}

Py_ssize_t
mh_heap_graph_extra(const mh_heap_graph *g, uint32_t i)
{
    Py_ssize_t own = (g->flags[i] & MH_NODE_HELD) != 0;
    return mh_compat_refcnt(g->nodes[i]) - (Py_ssize_t)g->found[i] - own;
}

/* ---- graph: root search ------------------------------------------------- */

static inline void
mh_bfs_push(mh_heap_graph *g, uint32_t i, uint32_t parent)
{
    g->parent[i] = parent;
    if (g->flags[i] & MH_NODE_SURVIVOR) {
        if (parent >= MH_PARENT_SPECIAL)
            g->anchor[i] = parent;
        else if (g->flags[parent] & MH_NODE_SURVIVOR)
            g->anchor[i] = g->anchor[parent];
        else
            g->anchor[i] = parent;
    }
    g->order[g->nreached++] = i;
}

static void
mh_bfs_run(mh_heap_graph *g, uint32_t head)
{
    while (head < g->nreached) {
        uint32_t p = g->order[head++];
        for (uint32_t e = g->fwd_off[p]; e < g->fwd_off[p + 1]; e++) {
            uint32_t c = g->fwd[e];
            if (g->parent[c] == MH_PARENT_UNREACHED)
                mh_bfs_push(g, c, p);
        }
    }
}

static int
mh_bfs(mh_heap_graph *g)
{
    size_t sz = (size_t)g->n * sizeof(uint32_t);
    g->parent = mh_g_realloc(g, NULL, 0, sz);
    g->order = mh_g_realloc(g, NULL, 0, sz);
    g->anchor = mh_g_realloc(g, NULL, 0, sz);
    if (g->parent == NULL || g->order == NULL || g->anchor == NULL)
        return -1;
    memset(g->parent, 0xFF, sz);
    memset(g->anchor, 0xFF, sz);
    g->nreached = 0;
    /* Stage 1: named roots, modules first so that they win ties. */
    for (uint32_t i = 0; i < g->n; i++) {
        if ((g->flags[i] & (MH_NODE_SURVIVOR | MH_NODE_MODULE)) == MH_NODE_MODULE)
            mh_bfs_push(g, i, MH_PARENT_MODULE);
    }
    for (uint32_t i = 0; i < g->n; i++) {
        if ((g->flags[i] & (MH_NODE_SURVIVOR | MH_NODE_TYPE)) == MH_NODE_TYPE)
            mh_bfs_push(g, i, MH_PARENT_CLASS);
    }
    /* The interpreter's registries: what only they hold was registered
     * there (a survivor registry entry is a root too: a handler set per
     * call). */
    for (uint32_t k = 0; k < g->nregistries; k++) {
        uint32_t i = g->registries[k].node;
        if (g->parent[i] != MH_PARENT_UNREACHED)
            continue;
        mh_bfs_push(g, i, MH_PARENT_REGISTRY + k);
        if (g->flags[i] & MH_NODE_SURVIVOR)
            g->anchor[i] = MH_PARENT_REGISTRY + g->registries[k].first;
    }
    for (size_t k = 0; k < g->nstack; k++) {
        uint32_t i = g->stack[k].node;
        if (g->parent[i] == MH_PARENT_UNREACHED)
            mh_bfs_push(g, i, MH_PARENT_SPECIAL + (uint32_t)k);
    }
    mh_bfs_run(g, 0);
    /* Stage 2: what only code outside Python holds, old objects first.
     * Reference counts are read only for the nodes still unreached. */
    for (uint32_t i = 0; i < g->n; i++) {
        if (g->parent[i] == MH_PARENT_UNREACHED && mh_heap_graph_extra(g, i) > 0)
            g->flags[i] |= MH_NODE_EXTERNAL;
    }
    for (int pass = 0; pass < 2; pass++) {
        uint32_t head = g->nreached;
        for (uint32_t i = 0; i < g->n; i++) {
            if (g->parent[i] != MH_PARENT_UNREACHED
                || !(g->flags[i] & MH_NODE_EXTERNAL)
                || (g->flags[i] & MH_NODE_SURVIVOR) != (pass ? MH_NODE_SURVIVOR : 0))
                continue;
            mh_bfs_push(g, i, MH_PARENT_EXTERNAL);
        }
        mh_bfs_run(g, head);
    }
    return 0;
}

/* ---- graph: references for the time after the build -------------------- */

void
mh_heap_graph_hold(mh_heap_graph *g)
{
    for (uint32_t i = 0; i < g->n; i++) {
        if (!(g->flags[i] & MH_NODE_SURVIVOR))
            continue;
        /* Up the BFS tree until a root or a node already held: every path
         * is held once, so this is linear in the nodes held. */
        uint32_t j = i;
        while (!(g->flags[j] & MH_NODE_HELD)) {
            g->flags[j] |= MH_NODE_HELD;
            Py_INCREF(g->nodes[j]);
            uint32_t p = g->parent[j];
            if (p >= MH_PARENT_SPECIAL)
                break;
            j = p;
        }
    }
    for (size_t k = 0; k < g->nstack; k++)
        Py_INCREF(g->stack[k].code);
    g->stack_held = 1;
}

void
mh_heap_graph_unhold(mh_heap_graph *g)
{
    /* Flags first, references after: a finalizer run by a Py_DECREF below
     * must find nothing left to drop twice. */
    uint32_t n = g->n;
    for (uint32_t i = 0; i < n; i++) {
        if (!(g->flags[i] & MH_NODE_HELD))
            continue;
        g->flags[i] &= (uint8_t)~MH_NODE_HELD;
        Py_DECREF(g->nodes[i]);
    }
    if (g->stack_held) {
        g->stack_held = 0;
        for (size_t k = 0; k < g->nstack; k++)
            Py_DECREF(g->stack[k].code);
    }
}

int
mh_heap_graph_build(mh_heap_graph *g, mh_heap_set *census, PyObject *self_obj,
                    const char *skip_prefix)
{
    memset(g, 0, sizeof(*g));
    mh_build *b = mh_mem_calloc(1, sizeof(mh_build));
    if (b == NULL) {
        PyErr_SetString(PyExc_MemoryError, "memhound: not enough memory for the heap graph");
        return -1;
    }
    b->g = g;
    b->census = census;
    g->self_obj = self_obj;
    g->skip_prefix = skip_prefix;
    g->skip_len = skip_prefix ? strlen(skip_prefix) : 0;
    double t0 = mh_now();
    if (mh_tracer_new_blocks(mh_add_reborn, &b->reborn) < 0)
        goto nomem;
    /* Sizes from the census: tracked objects then, references to GC
     * objects then, plus a margin for what the runs added. */
    g->hint_nodes = (uint32_t)(census->ntracked + census->ntracked / 16 + 4096);
    if (mh_nodes_grow(g) < 0)
        goto nomem;
    g->cap_edges = census->nrefs + census->nrefs / 16 + 4096;
    if ((g->fwd = mh_g_realloc(g, NULL, 0, g->cap_edges * sizeof(uint32_t))) == NULL)
        goto nomem;
    if (mh_each_tracked(mh_build_tracked, b) < 0)
        goto nomem;
    if (mh_table_alloc(g, (size_t)g->n + g->n / 4 + g->n / 16 + 1024) < 0
        || mh_build_index(b) < 0)
        goto nomem;
    double t1 = mh_now();
    if (mh_build_edges(b, 0) < 0)
        goto nomem;
    uint32_t before = g->n;
    mh_compat_thread_frames(mh_build_frame, b);
    if (b->nomem || mh_build_edges(b, before) < 0)
        goto nomem;
    before = g->n;
    if (mh_heap_registries_each(mh_build_registry, b) < 0 || mh_build_edges(b, before) < 0)
        goto nomem;
    for (uint32_t i = 0; i < g->n; i++)
        g->nsurvivors += (g->flags[i] & MH_NODE_SURVIVOR) != 0;
    mh_table_free(g);
    mh_heap_set_free(census);
    mh_heap_set_free(&b->reborn);
    double t2 = mh_now();
    if (mh_bfs(g) < 0)
        goto nomem;
    double t3 = mh_now();
    g->t_nodes = t1 - t0;
    g->t_edges = t2 - t1;
    g->t_bfs = t3 - t2;
    mh_mem_free(b, sizeof(mh_build));
    return 0;
nomem:
    PyErr_SetString(PyExc_MemoryError, "memhound: not enough memory for the heap graph");
    mh_heap_set_free(&b->reborn);
    mh_mem_free(b, sizeof(mh_build));
    mh_heap_graph_free(g);
    return -1;
}
