/* heap_orphans.c -- survivors that the heap walk cannot reach (mh_orphan_*).
 *
 * A C extension that forgets a Py_DECREF leaves an object that nothing in
 * Python refers to.  If the object is not tracked by the collector (str,
 * int, an untracked tuple or dict), no tp_traverse leads to it, so the graph
 * of heap_graph.c never sees it.  The tracer still holds its block: the
 * census marked every block alive before the measured runs (blocks.h), so
 * the blocks allocated since and still alive are exactly what the runs left
 * behind.  Those whose object is a node of the graph are explained by it;
 * the rest are orphans.
 *
 * Finding the object in a block.  An object starts at the block plus its
 * type's pre-header (0, the GC header, plus the managed dict/weakref words):
 * at offsets 0, 16 and 32.  The word at the candidate's ob_type is trusted
 * only when it is the address of a live type -- every type reachable through
 * type.__subclasses__() from object, which PyType_Ready() registers -- so no
 * unknown pointer is ever followed.  The type's pre-header must then match
 * the offset, the reference count must be positive and plausible (a pointer
 * in its place means a free-list link, not a count), and the block's size
 * must be the object's: exactly tp_basicsize for fixed-size objects, the
 * compact layout's size for str, at least tp_basicsize for the others.
 * Blocks without an object are reported by allocation site ("raw").
 *
 * Only blocks of the GIL-serialised domains are read (their objects cannot
 * be freed while the GIL is held); blocks of the RAW domain are counted by
 * site, never read.  Blocks whose newest frame is memhound's own file are
 * the analysis's own and left out.  GIL held; the collector is disabled by
 * the caller (leaks/) while the graph is open.
 */
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "heap.h"
#include "memory.h"
#include "tracer.h"

#define MH_ORPHAN_OFFSETS 3
static const size_t mh_orphan_offsets[MH_ORPHAN_OFFSETS] = {0, 16, 32};

/* A reference count above this is a pointer in the count's place. */
#define MH_ORPHAN_MAX_REFCNT ((Py_ssize_t)1 << 40)

typedef enum { MH_ORPHAN_OBJECT, MH_ORPHAN_INTERNED, MH_ORPHAN_RAW } mh_orphan_kind;

static const char *const mh_orphan_kind_names[] = {"object", "interned", "raw"};

typedef struct {
    uintptr_t block;
    size_t size;
    PyTypeObject *cand[MH_ORPHAN_OFFSETS];  /* the words at each candidate's ob_type */
    PyObject *obj;          /* the object found in the block, or NULL */
    uint32_t tb;
    uint8_t raw_domain;
    uint8_t kind;           /* mh_orphan_kind */
    uint8_t reached;        /* the object is a node of the graph */
    uint8_t held;           /* the object is held by another orphan */
    size_t held_bytes;      /* bytes of the orphans this one holds */
} mh_orphan;

typedef struct {
    mh_orphan *items;
    size_t n, cap;
    PyTypeObject **types;   /* candidate ob_type words, sorted, distinct */
    uint8_t *type_ok;       /* per types[]: the address of a live type */
    size_t ntypes, cap_types;
} mh_orphans;

static void
mh_orphans_free(mh_orphans *o)
{
    mh_mem_free(o->items, o->cap * sizeof(mh_orphan));
    mh_mem_free(o->types, o->cap_types * sizeof(PyTypeObject *));
    mh_mem_free(o->type_ok, o->cap_types);
    memset(o, 0, sizeof(*o));
}

/* Called under the RAW domain's lock for raw blocks: no Python, no hooks. */
static int
mh_orphans_collect(void *arg, uintptr_t ptr, size_t size, uint32_t tb, int raw)
{
    mh_orphans *o = arg;
    if (o->n == o->cap) {
        size_t cap = o->cap ? o->cap * 2 : 256;
        mh_orphan *items = mh_mem_realloc(o->items, o->cap * sizeof(mh_orphan),
                                          cap * sizeof(mh_orphan));
        if (items == NULL)
            return -1;
        o->items = items;
        o->cap = cap;
    }
    mh_orphan *r = &o->items[o->n++];
    memset(r, 0, sizeof(*r));
    r->block = ptr;
    r->size = size;
    r->tb = tb;
    r->raw_domain = (uint8_t)raw;
    r->kind = MH_ORPHAN_RAW;
    for (int k = 0; !raw && k < MH_ORPHAN_OFFSETS; k++) {
        size_t off = mh_orphan_offsets[k];
        if (off + sizeof(PyObject) <= size)
            r->cand[k] = ((PyObject *)(ptr + off))->ob_type;
    }
    return 0;
}

static int
mh_ptr_cmp(const void *a, const void *b)
{
    uintptr_t x = *(const uintptr_t *)a, y = *(const uintptr_t *)b;
    return x < y ? -1 : x > y;
}

/* Index of `p` in the sorted array, or -1. */
static ptrdiff_t
mh_ptr_find(const uintptr_t *arr, size_t n, uintptr_t p)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (arr[mid] < p)
            lo = mid + 1;
        else if (arr[mid] > p)
            hi = mid;
        else
            return (ptrdiff_t)mid;
    }
    return -1;
}

static int
mh_orphans_sort_types(mh_orphans *o)
{
    size_t n = 0;
    for (size_t i = 0; i < o->n; i++)
        for (int k = 0; k < MH_ORPHAN_OFFSETS; k++)
            n += o->items[i].cand[k] != NULL;
    if (n == 0)
        return 0;
    o->types = mh_mem_malloc(n * sizeof(PyTypeObject *));
    o->type_ok = mh_mem_calloc(n, 1);
    if (o->types == NULL || o->type_ok == NULL)
        return -1;
    o->cap_types = n;
    size_t j = 0;
    for (size_t i = 0; i < o->n; i++)
        for (int k = 0; k < MH_ORPHAN_OFFSETS; k++)
            if (o->items[i].cand[k] != NULL)
                o->types[j++] = o->items[i].cand[k];
    qsort(o->types, n, sizeof(PyTypeObject *), mh_ptr_cmp);
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (m == 0 || o->types[m - 1] != o->types[i])
            o->types[m++] = o->types[i];
    o->ntypes = m;
    return 0;
}

/* Mark the candidate words that are live types: a walk of every type
 * through type.__subclasses__() (the type's own C method, so that no
 * metaclass code runs), each type once. */
static int
mh_orphans_check_types(mh_orphans *o)
{
    if (o->ntypes == 0)
        return 0;
    PyObject *subclasses = PyObject_GetAttrString((PyObject *)&PyType_Type, "__subclasses__");
    PyObject *seen = PySet_New(NULL);
    PyObject *todo = PyList_New(0);
    int rc = -1;
    if (subclasses == NULL || seen == NULL || todo == NULL
        || PyList_Append(todo, (PyObject *)&PyBaseObject_Type) < 0)
        goto done;
    while (PyList_GET_SIZE(todo) > 0) {
        Py_ssize_t last = PyList_GET_SIZE(todo) - 1;
        PyObject *tp = Py_NewRef(PyList_GET_ITEM(todo, last));
        if (PyList_SetSlice(todo, last, last + 1, NULL) < 0) {
            Py_DECREF(tp);
            goto done;
        }
        PyObject *key = PyLong_FromVoidPtr(tp);
        int added = key == NULL ? -1 : PySet_Contains(seen, key);
        if (added == 0)
            added = PySet_Add(seen, key) < 0 ? -1 : 0;
        else if (added == 1)
            added = 1;
        Py_XDECREF(key);
        if (added != 0) {
            Py_DECREF(tp);
            if (added < 0)
                goto done;
            continue;
        }
        ptrdiff_t i = mh_ptr_find((const uintptr_t *)o->types, o->ntypes, (uintptr_t)tp);
        if (i >= 0)
            o->type_ok[i] = 1;
        PyObject *subs = PyObject_CallOneArg(subclasses, tp);
        Py_DECREF(tp);
        if (subs == NULL)
            goto done;
        for (Py_ssize_t k = 0; k < PyList_GET_SIZE(subs); k++) {
            if (PyList_Append(todo, PyList_GET_ITEM(subs, k)) < 0) {
                Py_DECREF(subs);
                goto done;
            }
        }
        Py_DECREF(subs);
    }
    rc = 0;
done:
    Py_XDECREF(subclasses);
    Py_XDECREF(seen);
    Py_XDECREF(todo);
    return rc;
}

/* The size of a compact str object, or 0 when `op` (within `room` bytes)
 * is not one. */
static size_t
mh_orphan_str_size(PyObject *op, size_t room)
{
    if (room < sizeof(PyASCIIObject) || !PyUnicode_IS_COMPACT(op))
        return 0;
    size_t head = PyUnicode_IS_ASCII(op) ? sizeof(PyASCIIObject) : sizeof(PyCompactUnicodeObject);
    return head + ((size_t)PyUnicode_GET_LENGTH(op) + 1) * PyUnicode_KIND(op);
}

/* 1 if `tp` at offset `off` of the block is a plausible live object. */
static int
mh_orphan_is_object(const mh_orphan *r, size_t off, PyTypeObject *tp)
{
    PyObject *op = (PyObject *)(r->block + off);
    size_t room = r->size - off;
    if (mh_compat_preheader_size(tp) != off || room < sizeof(PyObject))
        return 0;
    Py_ssize_t refcnt = mh_compat_refcnt(op);
    if (refcnt <= 0 || refcnt >= MH_ORPHAN_MAX_REFCNT)
        return 0;
    /* str's tp_basicsize is the legacy layout's, larger than a short
     * compact string. */
    if (tp == &PyUnicode_Type)
        return mh_orphan_str_size(op, room) == room;
    if (room < (size_t)tp->tp_basicsize)
        return 0;
    if (tp->tp_itemsize == 0)
        return room == (size_t)tp->tp_basicsize;
    return 1;
}

static void
mh_orphans_find_objects(mh_orphans *o)
{
    for (size_t i = 0; i < o->n; i++) {
        mh_orphan *r = &o->items[i];
        for (int k = 0; k < MH_ORPHAN_OFFSETS && r->obj == NULL; k++) {
            if (r->cand[k] == NULL)
                continue;
            ptrdiff_t t = mh_ptr_find((const uintptr_t *)o->types, o->ntypes,
                                      (uintptr_t)r->cand[k]);
            if (t >= 0 && o->type_ok[t] && mh_orphan_is_object(r, mh_orphan_offsets[k], r->cand[k])) {
                r->obj = (PyObject *)(r->block + mh_orphan_offsets[k]);
                r->kind = PyUnicode_CheckExact(r->obj) && PyUnicode_CHECK_INTERNED(r->obj)
                          ? MH_ORPHAN_INTERNED : MH_ORPHAN_OBJECT;
            }
        }
    }
}

static int
mh_orphan_by_obj(const void *a, const void *b)
{
    uintptr_t x = (uintptr_t)((const mh_orphan *)a)->obj, y = (uintptr_t)((const mh_orphan *)b)->obj;
    return x < y ? -1 : x > y;
}

/* The orphan whose object is at `p` among `objs` (sorted by object
 * address), or NULL. */
static mh_orphan *
mh_orphans_find(mh_orphan *objs, size_t nobj, uintptr_t p)
{
    size_t lo = 0, hi = nobj;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        uintptr_t q = (uintptr_t)objs[mid].obj;
        if (q < p)
            lo = mid + 1;
        else if (q > p)
            hi = mid;
        else
            return &objs[mid];
    }
    return NULL;
}

static void
mh_orphans_mark_one(mh_orphan *objs, size_t nobj, uintptr_t p)
{
    mh_orphan *r = mh_orphans_find(objs, nobj, p);
    if (r != NULL)
        r->reached = 1;
}

/* Flag the objects that are nodes of the graph: the graph explains them;
 * so do the survivors' parts that tp_traverse does not show (a bytearray's
 * bytes buffer on 3.15): they are counted in their owner's size. */
static void
mh_orphans_mark_reached(mh_orphans *o, const mh_heap_graph *g)
{
    qsort(o->items, o->n, sizeof(mh_orphan), mh_orphan_by_obj);
    size_t first = 0;
    while (first < o->n && o->items[first].obj == NULL)
        first++;
    size_t nobj = o->n - first;
    if (nobj == 0)
        return;
    mh_orphan *objs = o->items + first;
    for (uint32_t i = 0; i < g->n; i++)
        mh_orphans_mark_one(objs, nobj, (uintptr_t)g->nodes[i]);
    for (uint32_t i = 0; i < g->n; i++) {
        if (!(g->flags[i] & MH_NODE_SURVIVOR))
            continue;
        PyObject *part = mh_compat_hidden_part(g->nodes[i]);
        if (part != NULL)
            mh_orphans_mark_one(objs, nobj, (uintptr_t)part);
    }
}

typedef struct {
    mh_orphan *objs;        /* the unreached objects, sorted by address */
    size_t nobj;
    mh_orphan *holder;
} mh_hold_walk;

static int
mh_orphans_visit(PyObject *child, void *arg)
{
    mh_hold_walk *w = arg;
    mh_orphan *r = mh_orphans_find(w->objs, w->nobj, (uintptr_t)child);
    if (r != NULL && r != w->holder && !r->held && !r->reached) {
        r->held = 1;
        w->holder->held_bytes += r->size + r->held_bytes;
    }
    return 0;
}

/* One leak, one group: an orphan that another orphan refers to (the int in
 * a leaked tuple) is counted in its holder's bytes, not as a group.  Only
 * the untracked containers' tp_traverse runs: no user code.  Items are
 * sorted by object address (mh_orphans_mark_reached). */
static void
mh_orphans_mark_held(mh_orphans *o)
{
    size_t first = 0;
    while (first < o->n && o->items[first].obj == NULL)
        first++;
    mh_hold_walk w = {o->items + first, o->n - first, NULL};
    for (size_t i = 0; i < w.nobj; i++) {
        mh_orphan *r = &w.objs[i];
        PyTypeObject *tp = Py_TYPE(r->obj);
        if (r->reached || r->held || !PyType_IS_GC(tp) || tp->tp_traverse == NULL)
            continue;
        w.holder = r;
        tp->tp_traverse(r->obj, mh_orphans_visit, &w);
    }
}

static int
mh_orphan_by_group(const void *a, const void *b)
{
    const mh_orphan *x = a, *y = b;
    int xout = x->reached || x->held, yout = y->reached || y->held;
    if (xout != yout)
        return xout - yout;
    if (x->kind != y->kind)
        return x->kind - y->kind;
    uintptr_t tx = x->obj ? (uintptr_t)Py_TYPE(x->obj) : 0;
    uintptr_t ty = y->obj ? (uintptr_t)Py_TYPE(y->obj) : 0;
    if (tx != ty)
        return tx < ty ? -1 : 1;
    return x->tb < y->tb ? -1 : x->tb > y->tb;
}

/* 1 if the newest frame of `frames` is in a file under `skip`. */
static int
mh_orphan_is_own(PyObject *frames, const char *skip)
{
    if (skip == NULL || PyTuple_GET_SIZE(frames) == 0)
        return 0;
    PyObject *file = PyTuple_GET_ITEM(PyTuple_GET_ITEM(frames, 0), 0);
    const char *name = PyUnicode_Check(file) ? PyUnicode_AsUTF8(file) : NULL;
    if (name == NULL) {
        PyErr_Clear();
        return 0;
    }
    return strncmp(name, skip, strlen(skip)) == 0;
}

/* One (type or None, frames, count, bytes, kind) tuple per group of the
 * blocks neither reached nor held, which sort first. */
static PyObject *
mh_orphans_groups(const mh_orphans *o, const char *skip)
{
    PyObject *list = PyList_New(0);
    if (list == NULL)
        return NULL;
    size_t i = 0;
    while (i < o->n && !o->items[i].reached && !o->items[i].held) {
        const mh_orphan *r = &o->items[i];
        size_t count = 0, nbytes = 0;
        size_t j = i;
        while (j < o->n && mh_orphan_by_group(r, &o->items[j]) == 0) {
            count++;
            nbytes += o->items[j].size + o->items[j].held_bytes;
            j++;
        }
        i = j;
        PyObject *frames = mh_tracer_traceback(r->tb);
        if (frames == NULL)
            goto error;
        if (mh_orphan_is_own(frames, skip)) {
            Py_DECREF(frames);
            continue;
        }
        PyObject *type = r->obj ? (PyObject *)Py_TYPE(r->obj) : Py_None;
        PyObject *t = Py_BuildValue("(ONnns)", type, frames, (Py_ssize_t)count, (Py_ssize_t)nbytes,
                                    mh_orphan_kind_names[r->kind]);
        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            goto error;
        }
        Py_DECREF(t);
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

PyObject *
mh_heap_orphans(const mh_heap_graph *g, const char *skip)
{
    mh_orphans o;
    memset(&o, 0, sizeof(o));
    PyObject *res = NULL;
    mh_tracer_suspend();
    /* No user code runs from here on (the collector is off, types are
     * walked with type's own C method), so no block read below is freed. */
    if (mh_tracer_new_blocks(mh_orphans_collect, &o) < 0 || mh_orphans_sort_types(&o) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    if (o.n == 0) {             /* nothing new: and qsort() must not see NULL */
        res = PyList_New(0);
        goto done;
    }
    if (mh_orphans_check_types(&o) < 0)
        goto done;
    mh_orphans_find_objects(&o);
    mh_orphans_mark_reached(&o, g);
    mh_orphans_mark_held(&o);
    qsort(o.items, o.n, sizeof(mh_orphan), mh_orphan_by_group);
    res = mh_orphans_groups(&o, skip);
done:
    mh_orphans_free(&o);
    mh_tracer_resume();
    return res;
}
