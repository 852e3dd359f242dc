/* heap.c -- Python face of the heap graph: _core.HeapCensus, _core.HeapGraph.
 *
 * Both are plain (non-GC) objects whose memory lives in memory.h, so they
 * never appear in the graph they describe.  A HeapGraph points to every
 * object but, once built, holds a reference only to what it still reads:
 * the survivors and the nodes on their paths (mh_heap_graph_hold()), so
 * that threads which run while the leak finder's Python code runs -- and
 * free objects, or exit -- cannot leave it a dangling pointer.  The
 * orphans are computed in the same GIL-holding call as the build, for the
 * same reason.  Methods that take a node index accept held nodes only.
 * These are private building blocks; the public API is
 * memhound.find_leaks() and memhound.survivors().
 */
#include "heap.h"
#include "memory.h"
#include "tracer.h"

/* ---- HeapCensus --------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    mh_heap_set set;
} mh_census_object;

static void
mh_census_dealloc(mh_census_object *self)
{
    mh_heap_set_free(&self->set);
    PyObject_Free(self);
}

static Py_ssize_t
mh_census_len(mh_census_object *self)
{
    return (Py_ssize_t)self->set.count;
}

static PyObject *
mh_census_close(mh_census_object *self, PyObject *noargs)
{
    (void)noargs;
    mh_heap_set_free(&self->set);
    Py_RETURN_NONE;
}

static PyObject *
mh_census_nbytes(mh_census_object *self, void *closure)
{
    (void)closure;
    return PyLong_FromSize_t(self->set.cap * sizeof(uintptr_t));
}

static PyMethodDef mh_census_methods[] = {
    {"close", (PyCFunction)mh_census_close, METH_NOARGS, "Free the census."},
    {NULL, NULL, 0, NULL}
};

static PyGetSetDef mh_census_getset[] = {
    {"nbytes", (getter)mh_census_nbytes, NULL, "Bytes of memory used.", NULL},
    {NULL, NULL, NULL, NULL, NULL}
};

static PySequenceMethods mh_census_as_seq = {
    .sq_length = (lenfunc)mh_census_len,
};

static PyTypeObject mh_census_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memhound._core.HeapCensus",
    .tp_basicsize = sizeof(mh_census_object),
    .tp_dealloc = (destructor)mh_census_dealloc,
    .tp_as_sequence = &mh_census_as_seq,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "The addresses of every live object at one moment (see heap_census()).",
    .tp_methods = mh_census_methods,
    .tp_getset = mh_census_getset,
};

static PyObject *
mh_py_heap_census(PyObject *module, PyObject *noargs)
{
    (void)module; (void)noargs;
    mh_census_object *self = PyObject_New(mh_census_object, &mh_census_type);
    if (self == NULL)
        return NULL;
    memset(&self->set, 0, sizeof(self->set));
    if (mh_heap_census_take(&self->set) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    mh_tracer_mark_blocks();
    return (PyObject *)self;
}

/* ---- HeapGraph ---------------------------------------------------------- */

typedef struct {
    PyObject_HEAD
    mh_heap_graph g;
    int open;
    char *skip;
    size_t skip_size;
    PyObject *orphans;        /* mh_heap_orphans() taken right after the build */
} mh_graph_object;

static void
mh_graph_release(mh_graph_object *self)
{
    /* Closed first: the references dropped below may run finalizers. */
    int was_open = self->open;
    self->open = 0;
    Py_CLEAR(self->orphans);
    if (was_open) {
        mh_heap_graph_unhold(&self->g);
        mh_heap_graph_free(&self->g);
    }
    if (self->skip != NULL)
        mh_mem_free(self->skip, self->skip_size);
    self->skip = NULL;
}

static void
mh_graph_dealloc(mh_graph_object *self)
{
    mh_graph_release(self);
    PyObject_Free(self);
}

static int
mh_graph_check(mh_graph_object *self)
{
    if (!self->open) {
        PyErr_SetString(PyExc_ValueError, "the heap graph is closed");
        return -1;
    }
    return 0;
}

static int
mh_graph_index(mh_graph_object *self, PyObject *arg, uint32_t *out)
{
    if (mh_graph_check(self) < 0)
        return -1;
    Py_ssize_t i = PyLong_AsSsize_t(arg);
    if (i == -1 && PyErr_Occurred())
        return -1;
    if (i < 0 || (size_t)i >= self->g.n) {
        PyErr_Format(PyExc_IndexError, "node index %zd out of range", i);
        return -1;
    }
    *out = (uint32_t)i;
    return 0;
}

/* A node that may be dereferenced: the graph holds a reference to it. */
static int
mh_graph_held_index(mh_graph_object *self, PyObject *arg, uint32_t *out)
{
    if (mh_graph_index(self, arg, out) < 0)
        return -1;
    if (!(self->g.flags[*out] & MH_NODE_HELD)) {
        PyErr_Format(PyExc_ValueError,
                     "node %u is neither a survivor nor on a survivor's path", *out);
        return -1;
    }
    return 0;
}

static PyObject *
mh_graph_survivor_tuple(const mh_heap_graph *g, uint32_t i)
{
    uint32_t a = g->anchor[i];
    long long anchor = a == MH_PARENT_UNREACHED ? -1 : (long long)a;
    /* extra first: the tuple itself adds a reference */
    Py_ssize_t extra = mh_heap_graph_extra(g, i);
    return Py_BuildValue("(OILn)", g->nodes[i], i, anchor, extra);
}

static PyObject *
mh_graph_survivors(mh_graph_object *self, PyObject *noargs)
{
    (void)noargs;
    if (mh_graph_check(self) < 0)
        return NULL;
    const mh_heap_graph *g = &self->g;
    PyObject *list = PyList_New(g->nsurvivors);
    if (list == NULL)
        return NULL;
    Py_ssize_t k = 0;
    for (uint32_t j = 0; j < g->nreached && k < (Py_ssize_t)g->nsurvivors; j++) {
        uint32_t i = g->order[j];
        if (!(g->flags[i] & MH_NODE_SURVIVOR))
            continue;
        PyObject *t = mh_graph_survivor_tuple(g, i);
        if (t == NULL)
            goto error;
        PyList_SET_ITEM(list, k++, t);
    }
    for (uint32_t i = 0; i < g->n && k < (Py_ssize_t)g->nsurvivors; i++) {
        if (!(g->flags[i] & MH_NODE_SURVIVOR) || g->parent[i] != MH_PARENT_UNREACHED)
            continue;
        PyObject *t = mh_graph_survivor_tuple(g, i);
        if (t == NULL)
            goto error;
        PyList_SET_ITEM(list, k++, t);
    }
    return list;
error:
    Py_DECREF(list);
    return NULL;
}

static PyObject *
mh_graph_path(mh_graph_object *self, PyObject *arg)
{
    uint32_t i;
    if (mh_graph_held_index(self, arg, &i) < 0)
        return NULL;
    return mh_heap_path(&self->g, i);
}

static PyObject *
mh_graph_extra(mh_graph_object *self, PyObject *arg)
{
    uint32_t i;
    if (mh_graph_held_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromSsize_t(mh_heap_graph_extra(&self->g, i));
}

static PyObject *
mh_graph_found(mh_graph_object *self, PyObject *arg)
{
    uint32_t i;
    if (mh_graph_index(self, arg, &i) < 0)
        return NULL;
    return PyLong_FromUnsignedLong(self->g.found[i]);
}

static PyObject *
mh_graph_orphans(mh_graph_object *self, PyObject *noargs)
{
    (void)noargs;
    if (mh_graph_check(self) < 0)
        return NULL;
    return Py_NewRef(self->orphans);
}

/* The object of a held node (a survivor or a node on a survivor's path):
 * the leak finder reads the holders of bounded structures through it. */
static PyObject *
mh_graph_node(mh_graph_object *self, PyObject *arg)
{
    uint32_t i;
    if (mh_graph_held_index(self, arg, &i) < 0)
        return NULL;
    return Py_NewRef(self->g.nodes[i]);
}

/* The node that leads to a held node on its path, or -1 for a root. */
static PyObject *
mh_graph_parent(mh_graph_object *self, PyObject *arg)
{
    uint32_t i;
    if (mh_graph_held_index(self, arg, &i) < 0)
        return NULL;
    uint32_t p = self->g.parent[i];
    return PyLong_FromLong(p >= MH_PARENT_SPECIAL ? -1L : (long)p);
}

static PyObject *
mh_graph_group_links(mh_graph_object *self, PyObject *noargs)
{
    (void)noargs;
    if (mh_graph_check(self) < 0)
        return NULL;
    return mh_heap_group_links(&self->g);
}

static PyObject *
mh_graph_storage_creation(mh_graph_object *self, PyObject *arg)
{
    if (mh_graph_check(self) < 0)
        return NULL;
    return mh_heap_storage_creation(arg);
}

static PyObject *
mh_graph_stats(mh_graph_object *self, PyObject *noargs)
{
    (void)noargs;
    if (mh_graph_check(self) < 0)
        return NULL;
    const mh_heap_graph *g = &self->g;
    return Py_BuildValue("{sIsnsIsIsnsnsdsdsd}",
                         "nodes", g->n, "edges", (Py_ssize_t)g->nedges,
                         "survivors", g->nsurvivors, "reached", g->nreached,
                         "stack_refs", (Py_ssize_t)g->nstack,
                         "peak_bytes", (Py_ssize_t)g->mem_peak,
                         "t_nodes", g->t_nodes, "t_edges", g->t_edges, "t_bfs", g->t_bfs);
}

static PyObject *
mh_graph_close(mh_graph_object *self, PyObject *noargs)
{
    (void)noargs;
    mh_graph_release(self);
    Py_RETURN_NONE;
}

static PyMethodDef mh_graph_methods[] = {
    {"survivors", (PyCFunction)mh_graph_survivors, METH_NOARGS,
     "[(obj, node, anchor, extra refs), ...] survivors, nearest to a root first."},
    {"path", (PyCFunction)mh_graph_path, METH_O,
     "[(kind, label, type name), ...] from the root to node."},
    {"extra", (PyCFunction)mh_graph_extra, METH_O,
     "References to node not found in Python objects."},
    {"found", (PyCFunction)mh_graph_found, METH_O, "References to node found."},
    {"node", (PyCFunction)mh_graph_node, METH_O,
     "The object of a survivor or of a node on a survivor's path."},
    {"parent", (PyCFunction)mh_graph_parent, METH_O,
     "The node before a held node on its path from the root, or -1."},
    {"orphans", (PyCFunction)mh_graph_orphans, METH_NOARGS,
     "[(type or None, frames, count, bytes, kind), ...] blocks allocated since the\n"
     "census, still alive, that no node of the graph explains."},
    {"group_links", (PyCFunction)mh_graph_group_links, METH_NOARGS,
     "(tree, cross): [(node, survivor parent or -1, root kind, thread id), ...] per\n"
     "survivor and [(survivor, head), ...] edges from survivors to other heads."},
    {"storage_creation", (PyCFunction)mh_graph_storage_creation, METH_O,
     "Traceback of the storage block of a list, dict or set (its last growth), or None."},
    {"stats", (PyCFunction)mh_graph_stats, METH_NOARGS, "Sizes and timings."},
    {"close", (PyCFunction)mh_graph_close, METH_NOARGS, "Free the graph."},
    {NULL, NULL, 0, NULL}
};

static PyTypeObject mh_graph_type = {
    PyVarObject_HEAD_INIT(NULL, 0)
    .tp_name = "memhound._core.HeapGraph",
    .tp_basicsize = sizeof(mh_graph_object),
    .tp_dealloc = (destructor)mh_graph_dealloc,
    .tp_flags = Py_TPFLAGS_DEFAULT,
    .tp_doc = "Reference graph of the heap with survivors and root paths (see heap_graph()).",
    .tp_methods = mh_graph_methods,
};

/* METH_FASTCALL: an argument tuple would be a new tracked object, and
 * would show up as a survivor of the graph it builds. */
static PyObject *
mh_py_heap_graph(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    const char *skip = NULL;
    (void)module;
    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "heap_graph() takes a census and an optional skip prefix");
        return NULL;
    }
    PyObject *census = args[0];
    if (!PyObject_TypeCheck(census, &mh_census_type)) {
        PyErr_Format(PyExc_TypeError, "heap_graph() argument 1 must be HeapCensus, not %.100s",
                     Py_TYPE(census)->tp_name);
        return NULL;
    }
    if (nargs == 2 && args[1] != Py_None) {
        if (!PyUnicode_Check(args[1])) {
            PyErr_SetString(PyExc_TypeError, "heap_graph() argument 2 must be str or None");
            return NULL;
        }
        skip = PyUnicode_AsUTF8(args[1]);
        if (skip == NULL)
            return NULL;
    }
    mh_census_object *c = (mh_census_object *)census;
    if (c->set.slots == NULL) {
        PyErr_SetString(PyExc_ValueError, "the heap census is closed");
        return NULL;
    }
    mh_graph_object *self = PyObject_New(mh_graph_object, &mh_graph_type);
    if (self == NULL)
        return NULL;
    self->open = 0;
    self->skip = NULL;
    self->skip_size = 0;
    self->orphans = NULL;
    if (skip != NULL) {
        size_t skip_len = strlen(skip);
        self->skip_size = skip_len + 1;
        self->skip = mh_mem_malloc(self->skip_size);
        if (self->skip == NULL) {
            Py_DECREF(self);
            return PyErr_NoMemory();
        }
        memcpy(self->skip, skip, skip_len);
        self->skip[skip_len] = '\0';
    }
    if (mh_heap_graph_build(&self->g, &c->set, census, self->skip) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    /* No Python code may run between the build and these two. */
    mh_heap_graph_hold(&self->g);
    self->open = 1;
    self->orphans = mh_heap_orphans(&self->g, self->skip);
    if (self->orphans == NULL) {
        Py_DECREF(self);
        return NULL;
    }
    return (PyObject *)self;
}

static PyMethodDef mh_heap_functions[] = {
    {"heap_census", mh_py_heap_census, METH_NOARGS,
     "heap_census() -> HeapCensus\n--\n\nRecord the address of every live object."},
    {"heap_graph", (PyCFunction)(void (*)(void))mh_py_heap_graph, METH_FASTCALL,
     "heap_graph(census, skip_prefix=None) -> HeapGraph\n--\n\n"
     "Build the reference graph; objects not in census are survivors.  Frames of\n"
     "files under skip_prefix are treated as memhound's own."},
    {NULL, NULL, 0, NULL}
};

int
mh_heap_module_init(PyObject *module)
{
    if (PyType_Ready(&mh_census_type) < 0 || PyType_Ready(&mh_graph_type) < 0)
        return -1;
    if (PyModule_AddObjectRef(module, "HeapCensus", (PyObject *)&mh_census_type) < 0
        || PyModule_AddObjectRef(module, "HeapGraph", (PyObject *)&mh_graph_type) < 0)
        return -1;
    return PyModule_AddFunctions(module, mh_heap_functions);
}
