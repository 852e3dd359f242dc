/* heap_census.c -- the live heap at one moment: objects by type, the biggest
 * holders and their paths from named roots (`memhound attach --census`).
 *
 * Everything happens in one call with the GIL held and the collector
 * disabled, so no object looked at can be freed before the call is done
 * (no Python code of user objects runs: sizes of the builtin containers
 * come from their own __sizeof__, every other object's from its type).
 *
 * By type.  The census (heap_graph.c) holds the address of every live
 * object, atoms included; one pass over it counts objects and bytes per
 * type in a small open-addressing table keyed by the type's address.
 *
 * Holders.  The graph's breadth-first tree gives every reached object one
 * holder: its parent, the first object on its shortest path from a root.
 * An object's "keeps" is its own size, the atoms it refers to (str, bytes,
 * int, ..., which have no graph node; one shared by several holders counts
 * for each) and what its tree children keep -- one pass in reverse BFS
 * order.  Holders rank by the objects they hold directly (tree children
 * plus atoms); modules, classes, the interpreter's registries and the
 * dicts of modules and classes are roots or steps of the path, not
 * holders, and are left out.  Only the chosen holders are traversed again
 * for their contents by type.
 *
 * memhound's own objects -- what its modules and classes reach first, and
 * the atoms only those hold -- are neither counted by type nor holders
 * (own_objects, own_bytes say how much was left out).
 *
 * Memory: the census (10 bytes per object) and the graph (heap_graph.c),
 * plus 13 bytes per graph node here, all from memory.h.
 */
#include <time.h>

#include "compat.h"
#include "heap.h"
#include "heap_census.h"
#include "index.h"
#include "memory.h"
#include "tracer.h"

#define MH_CONTENTS 6            /* types listed per holder */
#define MH_MAX_TOP 1000

typedef struct {
    PyTypeObject *tp;         /* NULL = empty slot */
    PyObject *sizeof_fn;      /* the builtin's own __sizeof__, or NULL */
    size_t count, bytes;
} mh_tstat;

typedef struct {
    mh_tstat *slots;
    size_t cap, n;
    int nomem;
} mh_ttable;

static double
mh_census_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static inline int
mh_census_is_gc(PyObject *o)
{
    PyTypeObject *tp = Py_TYPE(o);
    return PyType_IS_GC(tp) && (tp->tp_is_gc == NULL || tp->tp_is_gc(o));
}

/* Builtins whose size depends on more than the type and ob_size: their
 * __sizeof__ is C code of CPython's, never a user's.  (tuple and bytes are
 * exactly basicsize + ob_size * itemsize, an ASCII str its length: no call.) */
static int
mh_sizeof_builtin(PyTypeObject *tp)
{
    return tp == &PyUnicode_Type || tp == &PyByteArray_Type || tp == &PyList_Type
        || tp == &PyDict_Type || tp == &PySet_Type || tp == &PyFrozenSet_Type
        || tp == &PyLong_Type;
}

static void
mh_ttable_free(mh_ttable *t)
{
    if (t->slots == NULL)
        return;
    for (size_t i = 0; i < t->cap; i++)
        Py_XDECREF(t->slots[i].sizeof_fn);
    mh_mem_free(t->slots, t->cap * sizeof(mh_tstat));
    t->slots = NULL;
    t->cap = t->n = 0;
}

static int
mh_ttable_init(mh_ttable *t, size_t cap)
{
    t->slots = mh_mem_calloc(cap, sizeof(mh_tstat));
    t->cap = cap;
    t->n = 0;
    t->nomem = t->slots == NULL;
    return t->nomem ? -1 : 0;
}

static mh_tstat *
mh_ttable_probe(mh_tstat *slots, size_t cap, PyTypeObject *tp)
{
    size_t i = mh_index_home(mh_index_mix((uint64_t)(uintptr_t)tp), cap);
    while (slots[i].tp != NULL && slots[i].tp != tp)
        i = mh_index_next(i, cap);
    return &slots[i];
}

/* The entry of `tp`, added if new; NULL when out of memory. */
static mh_tstat *
mh_ttable_get(mh_ttable *t, PyTypeObject *tp)
{
    mh_tstat *e = mh_ttable_probe(t->slots, t->cap, tp);
    if (e->tp == tp)
        return e;
    if ((t->n + 1) * 2 > t->cap) {
        size_t cap = t->cap * 2;
        mh_tstat *slots = mh_mem_calloc(cap, sizeof(mh_tstat));
        if (slots == NULL) {
            t->nomem = 1;
            return NULL;
        }
        for (size_t i = 0; i < t->cap; i++) {
            if (t->slots[i].tp != NULL)
                *mh_ttable_probe(slots, cap, t->slots[i].tp) = t->slots[i];
        }
        mh_mem_free(t->slots, t->cap * sizeof(mh_tstat));
        t->slots = slots;
        t->cap = cap;
        e = mh_ttable_probe(t->slots, t->cap, tp);
    }
    e->tp = tp;
    t->n++;
    if (mh_sizeof_builtin(tp)) {
        e->sizeof_fn = PyObject_GetAttrString((PyObject *)tp, "__sizeof__");
        if (e->sizeof_fn == NULL)
            PyErr_Clear();
    }
    return e;
}

/* sys.getsizeof() without running user code: the builtin's __sizeof__ or
 * the type's layout, plus the pre-header (GC links, managed dict). */
static size_t
mh_census_sizeof(const mh_tstat *e, PyObject *o)
{
    PyTypeObject *tp = e->tp;
    size_t pre = mh_compat_preheader_size(tp);
    /* Most strings: the data follows the header, and is its own UTF-8. */
    if (tp == &PyUnicode_Type && PyUnicode_IS_COMPACT_ASCII(o))
        return sizeof(PyASCIIObject) + (size_t)PyUnicode_GET_LENGTH(o) + 1;
    if (e->sizeof_fn != NULL) {
        PyObject *r = PyObject_CallOneArg(e->sizeof_fn, o);
        if (r != NULL) {
            Py_ssize_t n = PyLong_AsSsize_t(r);
            Py_DECREF(r);
            if (n >= 0)
                return (size_t)n + pre;
        }
        PyErr_Clear();
    }
    size_t n = (size_t)tp->tp_basicsize;
    /* An int subclass's ob_size is no item count on 3.12+ (lv_tag). */
    if (tp->tp_itemsize > 0 && !PyLong_Check(o)) {
        Py_ssize_t k = Py_SIZE(o);
        n += (size_t)(k < 0 ? -k : k) * (size_t)tp->tp_itemsize;
    }
    return n + pre;
}

/* ---- the atoms a node refers to ---------------------------------------- */

typedef struct {
    mh_ttable *types;
    size_t count, bytes;
    int own;                  /* the node is memhound's own */
    size_t own_count, own_bytes;
} mh_atoms;

static int
mh_visit_atom(PyObject *o, void *arg)
{
    mh_atoms *a = arg;
    if (o == NULL || mh_census_is_gc(o))
        return 0;
    mh_tstat *e = mh_ttable_get(a->types, Py_TYPE(o));
    if (e == NULL)
        return -1;
    size_t size = mh_census_sizeof(e, o);
    a->count++;
    a->bytes += size;
    /* Counted by type only when memhound's node is its one holder (a
     * docstring, a code object's own bytes): a shared atom is the program's. */
    if (a->own && mh_compat_refcnt(o) == 1 && e->count > 0) {
        e->count--;
        e->bytes -= size < e->bytes ? size : e->bytes;
        a->own_count++;
        a->own_bytes += size;
    }
    return 0;
}

/* 1 if `name` is memhound or one of its submodules. */
static int
mh_own_name(const char *name)
{
    return name != NULL && strncmp(name, "memhound", 8) == 0 && (name[8] == '\0' || name[8] == '.');
}

/* A root of memhound's own: one of its modules, or a class defined in one
 * (read from the type, never through a lookup that could run user code). */
static int
mh_own_root(PyObject *o, uint32_t parent)
{
    if (parent == MH_PARENT_MODULE) {
        const char *name = PyModule_GetName(o);
        if (name == NULL)
            PyErr_Clear();
        return mh_own_name(name);
    }
    if (parent != MH_PARENT_CLASS || !PyType_Check(o))
        return 0;
    PyTypeObject *tp = (PyTypeObject *)o;
    if (!(tp->tp_flags & Py_TPFLAGS_HEAPTYPE))
        return mh_own_name(tp->tp_name);
    PyObject *dict = tp->tp_dict, *key, *value;
    Py_ssize_t pos = 0;
    while (dict != NULL && PyDict_Next(dict, &pos, &key, &value)) {
        if (PyUnicode_CheckExact(key) && PyUnicode_CompareWithASCIIString(key, "__module__") == 0) {
            const char *name = PyUnicode_CheckExact(value) ? PyUnicode_AsUTF8(value) : NULL;
            if (name == NULL)
                PyErr_Clear();      /* not a str, or lone surrogates: not memhound's */
            return name != NULL && mh_own_name(name);
        }
    }
    PyErr_Clear();
    return 0;
}

/* Contents by type of one holder: every object it refers to directly. */
typedef struct {
    mh_ttable *sizes;         /* the census's table: size functions */
    mh_ttable own;            /* per type, for this holder */
} mh_contents;

static int
mh_visit_content(PyObject *o, void *arg)
{
    mh_contents *c = arg;
    if (o == NULL)
        return 0;
    mh_tstat *s = mh_ttable_get(c->sizes, Py_TYPE(o));
    mh_tstat *e = mh_ttable_get(&c->own, Py_TYPE(o));
    if (s == NULL || e == NULL)
        return -1;
    e->count++;
    e->bytes += mh_census_sizeof(s, o);
    return 0;
}

/* [(type, count, bytes), ...] of a table: the `limit` biggest by `by_count`
 * (count, then bytes) or by bytes (then count). */
static PyObject *
mh_ttable_top(const mh_ttable *t, size_t limit, int by_count)
{
    mh_tstat **top = mh_mem_calloc(limit ? limit : 1, sizeof(mh_tstat *));
    if (top == NULL)
        return PyErr_NoMemory();
    size_t ntop = 0;
    for (size_t i = 0; i < t->cap; i++) {
        mh_tstat *e = &t->slots[i];
        if (e->tp == NULL || e->count == 0 || limit == 0)
            continue;
        size_t k = ntop;
        while (k > 0) {
            mh_tstat *f = top[k - 1];
            int better = by_count ? (e->count > f->count || (e->count == f->count && e->bytes > f->bytes))
                                  : (e->bytes > f->bytes || (e->bytes == f->bytes && e->count > f->count));
            if (!better)
                break;
            if (k < limit)
                top[k] = f;
            k--;
        }
        if (k < limit) {
            top[k] = e;
            if (ntop < limit)
                ntop++;
        }
    }
    PyObject *list = PyList_New((Py_ssize_t)ntop);
    for (size_t k = 0; list != NULL && k < ntop; k++) {
        PyObject *item = Py_BuildValue("(Onn)", (PyObject *)top[k]->tp,
                                       (Py_ssize_t)top[k]->count, (Py_ssize_t)top[k]->bytes);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, item);
    }
    mh_mem_free(top, (limit ? limit : 1) * sizeof(mh_tstat *));
    return list;
}

/* ---- holders ------------------------------------------------------------ */

/* A root or a step of a path rather than a holder: modules, classes, the
 * interpreter's registries, and the dicts of modules and classes. */
static int
mh_not_a_holder(const mh_heap_graph *g, uint32_t i)
{
    if (g->flags[i] & (MH_NODE_MODULE | MH_NODE_TYPE | MH_NODE_REGISTRY))
        return 1;
    uint32_t p = g->parent[i];
    if (p >= MH_PARENT_SPECIAL)
        return p == MH_PARENT_UNREACHED;
    return PyDict_CheckExact(g->nodes[i]) && (g->flags[p] & (MH_NODE_MODULE | MH_NODE_TYPE));
}

static PyObject *
mh_holder_item(const mh_heap_graph *g, mh_ttable *types, uint32_t i, uint32_t direct,
               uint64_t keeps)
{
    mh_contents c = {.sizes = types};
    if (mh_ttable_init(&c.own, 16) < 0)
        return PyErr_NoMemory();
    PyObject *o = g->nodes[i];
    traverseproc trav = Py_TYPE(o)->tp_traverse;
    if (trav != NULL && mh_census_is_gc(o) && trav(o, mh_visit_content, &c) < 0) {
        mh_ttable_free(&c.own);
        return PyErr_NoMemory();
    }
    PyObject *contents = mh_ttable_top(&c.own, MH_CONTENTS, 1);
    mh_ttable_free(&c.own);
    if (contents == NULL)
        return NULL;
    PyObject *path = mh_heap_path(g, i);
    if (path == NULL) {
        Py_DECREF(contents);
        return NULL;
    }
    mh_tstat *e = mh_ttable_get(types, Py_TYPE(o));
    size_t own = e != NULL ? mh_census_sizeof(e, o) : 0;
    return Py_BuildValue("{sOsIsKsnsNsN}", "type", (PyObject *)Py_TYPE(o), "count", direct,
                         "keeps", (unsigned long long)keeps, "bytes", (Py_ssize_t)own,
                         "contents", contents, "path", path);
}

/* The holders, biggest first, with their contents and paths. */
static PyObject *
mh_census_holders(const mh_heap_graph *g, mh_ttable *types, size_t limit, double *t_keep,
                  size_t *own_count, size_t *own_bytes)
{
    double t0 = mh_census_now();
    uint32_t n = g->n;
    uint64_t *keeps = mh_mem_calloc(n ? n : 1, sizeof(uint64_t));
    uint32_t *direct = mh_mem_calloc(n ? n : 1, sizeof(uint32_t));
    uint32_t *top = mh_mem_calloc(limit ? limit : 1, sizeof(uint32_t));
    uint8_t *own = mh_mem_calloc(n ? n : 1, 1);
    PyObject *list = NULL;
    if (keeps == NULL || direct == NULL || top == NULL || own == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    for (uint32_t j = 0; j < g->nreached; j++) {
        uint32_t i = g->order[j];
        PyObject *o = g->nodes[i];
        uint32_t p = g->parent[i];
        /* Parents come first in BFS order: memhound's own is what its
         * modules and classes reach first. */
        own[i] = p < MH_PARENT_SPECIAL ? own[p] : (uint8_t)mh_own_root(o, p);
        mh_tstat *e = mh_ttable_get(types, Py_TYPE(o));
        if (e == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        size_t size = mh_census_sizeof(e, o);
        mh_atoms a = {.types = types, .own = own[i]};
        traverseproc trav = Py_TYPE(o)->tp_traverse;
        if (trav != NULL && mh_census_is_gc(o) && trav(o, mh_visit_atom, &a) < 0) {
            PyErr_NoMemory();
            goto done;
        }
        /* The visit may have added types and moved the table. */
        if ((e = mh_ttable_get(types, Py_TYPE(o))) == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        keeps[i] = size + a.bytes;
        direct[i] = (uint32_t)a.count;
        *own_count += a.own_count;
        *own_bytes += a.own_bytes;
        if (own[i] && e->count > 0) {
            e->count--;
            e->bytes -= size < e->bytes ? size : e->bytes;
            (*own_count)++;
            *own_bytes += size;
        }
    }
    /* Children come after their parent in BFS order. */
    for (uint32_t j = g->nreached; j-- > 0;) {
        uint32_t i = g->order[j];
        uint32_t p = g->parent[i];
        if (p < MH_PARENT_SPECIAL) {
            keeps[p] += keeps[i];
            direct[p]++;
        }
    }
    size_t ntop = 0;
    for (uint32_t j = 0; j < g->nreached && limit > 0; j++) {
        uint32_t i = g->order[j];
        if (direct[i] == 0 || own[i] || mh_not_a_holder(g, i))
            continue;
        size_t k = ntop;
        while (k > 0 && (direct[i] > direct[top[k - 1]]
                         || (direct[i] == direct[top[k - 1]] && keeps[i] > keeps[top[k - 1]]))) {
            if (k < limit)
                top[k] = top[k - 1];
            k--;
        }
        if (k < limit) {
            top[k] = i;
            if (ntop < limit)
                ntop++;
        }
    }
    *t_keep = mh_census_now() - t0;
    list = PyList_New((Py_ssize_t)ntop);
    for (size_t k = 0; list != NULL && k < ntop; k++) {
        PyObject *item = mh_holder_item(g, types, top[k], direct[top[k]], keeps[top[k]]);
        if (item == NULL) {
            Py_CLEAR(list);
            break;
        }
        PyList_SET_ITEM(list, (Py_ssize_t)k, item);
    }
done:
    mh_mem_free(keeps, (n ? n : 1) * sizeof(uint64_t));
    mh_mem_free(direct, (n ? n : 1) * sizeof(uint32_t));
    mh_mem_free(top, (limit ? limit : 1) * sizeof(uint32_t));
    mh_mem_free(own, n ? n : 1);
    return list;
}

/* ---- the call ------------------------------------------------------------ */

static int
mh_size_arg(PyObject *arg, const char *name, size_t *out)
{
    Py_ssize_t v = PyLong_AsSsize_t(arg);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (v < 0 || v > MH_MAX_TOP) {
        PyErr_Format(PyExc_ValueError, "%s must be between 0 and %d, got %zd", name, MH_MAX_TOP, v);
        return -1;
    }
    *out = (size_t)v;
    return 0;
}

static PyObject *
mh_census_report(const char *skip, size_t ntypes, size_t nholders)
{
    double t0 = mh_census_now();
    mh_heap_set set;
    memset(&set, 0, sizeof(set));
    mh_ttable types;
    memset(&types, 0, sizeof(types));
    mh_heap_graph g;
    int graph_built = 0;
    PyObject *result = NULL, *by_type = NULL, *holders = NULL, *stats = NULL;
    if (mh_heap_census_take(&set) < 0)
        return NULL;
    double t1 = mh_census_now();
    size_t nobjects = 0, nbytes = 0, ntracked = set.ntracked;
    if (mh_ttable_init(&types, 1024) < 0) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t k = 0; k < set.cap; k++) {
        if (set.slots[k] == 0)
            continue;
        PyObject *o = (PyObject *)set.slots[k];
        mh_tstat *e = mh_ttable_get(&types, Py_TYPE(o));
        if (e == NULL) {
            PyErr_NoMemory();
            goto done;
        }
        size_t size = mh_census_sizeof(e, o);
        e->count++;
        e->bytes += size;
        nobjects++;
        nbytes += size;
    }
    double t2 = mh_census_now();
    /* The build frees the census. */
    if (mh_heap_graph_build(&g, &set, NULL, skip) < 0)
        goto done;
    graph_built = 1;
    double t3 = mh_census_now();
    double t_keep = 0;
    size_t own_count = 0, own_bytes = 0;
    holders = mh_census_holders(&g, &types, nholders, &t_keep, &own_count, &own_bytes);
    if (holders == NULL)
        goto done;
    double t4 = mh_census_now();
    /* Types met only through the graph's atoms have no count: left out. */
    by_type = mh_ttable_top(&types, ntypes, 0);
    if (by_type == NULL)
        goto done;
    stats = Py_BuildValue("{sIsnsIsdsdsdsdsdsn}", "nodes", g.n, "edges", (Py_ssize_t)g.nedges,
                          "reached", g.nreached, "t_census", t1 - t0, "t_types", t2 - t1,
                          "t_graph", t3 - t2, "t_keeps", t_keep, "t_holders", t4 - t3,
                          "peak_bytes", (Py_ssize_t)g.mem_peak);
    if (stats == NULL)
        goto done;
    result = Py_BuildValue("{snsnsnsnsnsnsOsOsO}", "objects", (Py_ssize_t)(nobjects - own_count),
                           "bytes", (Py_ssize_t)(nbytes - own_bytes), "gc_objects", (Py_ssize_t)ntracked,
                           "own_objects", (Py_ssize_t)own_count, "own_bytes", (Py_ssize_t)own_bytes,
                           "types_seen", (Py_ssize_t)types.n, "types", by_type,
                           "holders", holders, "stats", stats);
done:
    Py_XDECREF(by_type);
    Py_XDECREF(holders);
    Py_XDECREF(stats);
    if (graph_built)
        mh_heap_graph_free(&g);
    mh_heap_set_free(&set);
    mh_ttable_free(&types);
    return result;
}

/* METH_FASTCALL: no argument tuple.  heap_census_report(skip, ntypes, nholders). */
static PyObject *
mh_py_heap_census_report(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    (void)module;
    if (nargs != 3) {
        PyErr_SetString(PyExc_TypeError,
                        "heap_census_report() takes skip_prefix, ntypes and nholders");
        return NULL;
    }
    const char *skip = NULL;
    if (args[0] != Py_None) {
        if (!PyUnicode_Check(args[0])) {
            PyErr_SetString(PyExc_TypeError, "heap_census_report() skip_prefix must be str or None");
            return NULL;
        }
        skip = PyUnicode_AsUTF8(args[0]);
        if (skip == NULL)
            return NULL;
    }
    size_t ntypes, nholders;
    if (mh_size_arg(args[1], "ntypes", &ntypes) < 0 || mh_size_arg(args[2], "nholders", &nholders) < 0)
        return NULL;
    /* Nothing may be freed while the call looks at raw addresses: the
     * objects it creates for its result could start a collection. */
    int was_enabled = PyGC_Disable();
    PyObject *r = mh_census_report(skip, ntypes, nholders);
    if (was_enabled)
        PyGC_Enable();
    return r;
}

/* heap_graph(census, skip) with every live block marked old first, in one
 * C call (no bytecode runs between, so no other thread can allocate in
 * between): the graph then finds no orphans.  For a live process: on 3.14+
 * a list or tuple on a free list keeps its type and a pointer in its
 * reference count's place whose low 32 bits look like a count, and
 * heap_orphans.c would traverse it as a live object. */
static PyObject *
mh_py_heap_graph_live(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    PyObject *graph = PyObject_GetAttrString(module, "heap_graph");
    if (graph == NULL)
        return NULL;
    mh_tracer_mark_blocks();
    PyObject *r = PyObject_Vectorcall(graph, args, (size_t)nargs, NULL);
    Py_DECREF(graph);
    return r;
}

static PyMethodDef mh_heap_census_functions[] = {
    {"heap_graph_live", (PyCFunction)(void (*)(void))mh_py_heap_graph_live, METH_FASTCALL,
     "heap_graph_live(census, skip_prefix=None) -> HeapGraph\n--\n\n"
     "heap_graph() without orphans: every live block is marked old first, in the\n"
     "same call.  For a process whose other threads run between the calls."},
    {"heap_census_report", (PyCFunction)(void (*)(void))mh_py_heap_census_report, METH_FASTCALL,
     "heap_census_report(skip_prefix, ntypes, nholders) -> dict\n--\n\n"
     "The live heap now: objects and bytes in total and for the ntypes biggest\n"
     "types, and the nholders objects that hold the most objects directly, with\n"
     "what they keep, their contents by type and their path from a named root.\n"
     "memhound's own objects are left out; frames of files under skip_prefix are\n"
     "memhound's own."},
    {NULL, NULL, 0, NULL}
};

int
mh_heap_census_module_init(PyObject *module)
{
    return PyModule_AddFunctions(module, mh_heap_census_functions);
}
