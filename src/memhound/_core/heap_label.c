/* heap_label.c -- names for the edges of a chosen path.
 *
 * The graph stores edges without names (4 bytes each); names are computed
 * only for the few paths that are reported, by finding the child among the
 * parent's references: a dict is scanned for the value (or key) by
 * identity, a list or tuple for the index, a frame for the local slot, an
 * instance's inline values, existing __dict__ and __slots__ member
 * descriptors for the attribute.  Storage objects that a developer does not
 * think of as a step are folded into the step that owns them: a module's
 * dict ("global x"), a class's dict ("class attribute x"), an instance's
 * __dict__ ("attribute x"), a function's __closure__ tuple and its cell
 * ("closure variable x"), the cell of a frame's cell variable.
 *
 * Nothing here runs Python code: keys are shown with repr() only for exact
 * str, int, float, bytes, bool, None and tuples of those.
 */
#include <Python.h>
#include <structmember.h>

#include "compat.h"
#include "heap.h"
#include "heap_kinds.h"
#include "memory.h"

#define MH_KIND_NAME(id, name, text) name,
static const char *const mh_root_kind_names[] = {MH_ROOT_KINDS(MH_KIND_NAME)};
static const char *const mh_edge_kind_names[] = {MH_EDGE_KINDS(MH_KIND_NAME)};

#define MH_LABEL_MAX 60

/* "module.QualName", builtins plain; new reference. */
static PyObject *
mh_heap_type_name(PyTypeObject *tp)
{
    if (tp->tp_flags & Py_TPFLAGS_HEAPTYPE) {
        PyHeapTypeObject *ht = (PyHeapTypeObject *)tp;
        PyObject *mod = tp->tp_dict ? PyDict_GetItemString(tp->tp_dict, "__module__") : NULL;
        if (mod != NULL && PyUnicode_Check(mod)
            && PyUnicode_CompareWithASCIIString(mod, "builtins") != 0)
            return PyUnicode_FromFormat("%U.%U", mod, ht->ht_qualname);
        return Py_NewRef(ht->ht_qualname);
    }
    return PyUnicode_FromString(tp->tp_name);
}

/* Is repr() of `o` free of user code? */
static int
mh_safe_repr(PyObject *o, int depth)
{
    if (PyUnicode_CheckExact(o) || PyLong_CheckExact(o) || PyFloat_CheckExact(o)
        || PyBytes_CheckExact(o) || PyBool_Check(o) || o == Py_None)
        return 1;
    if (depth == 0 && PyTuple_CheckExact(o) && PyTuple_GET_SIZE(o) <= 8) {
        for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(o); i++) {
            if (!mh_safe_repr(PyTuple_GET_ITEM(o, i), 1))
                return 0;
        }
        return 1;
    }
    return 0;
}

static PyObject *
mh_key_text(PyObject *key)
{
    if (!mh_safe_repr(key, 0)) {
        PyObject *tn = mh_heap_type_name(Py_TYPE(key));
        if (tn == NULL)
            return NULL;
        PyObject *r = PyUnicode_FromFormat("<%U object>", tn);
        Py_DECREF(tn);
        return r;
    }
    PyObject *r = PyObject_Repr(key);
    if (r != NULL && PyUnicode_GET_LENGTH(r) > MH_LABEL_MAX) {
        PyObject *cut = PyUnicode_Substring(r, 0, MH_LABEL_MAX - 3);
        Py_DECREF(r);
        if (cut == NULL)
            return NULL;
        r = PyUnicode_FromFormat("%U...", cut);
        Py_DECREF(cut);
    }
    return r;
}

/* The key under which `dict` holds `value` (borrowed), or NULL. */
static PyObject *
mh_dict_key_of(PyObject *dict, PyObject *value)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (v == value)
            return k;
    }
    return NULL;
}

static int
mh_dict_has_key(PyObject *dict, PyObject *key)
{
    Py_ssize_t pos = 0;
    PyObject *k, *v;
    while (PyDict_Next(dict, &pos, &k, &v)) {
        if (k == key)
            return 1;
    }
    return 0;
}

/* Name of the attribute `key` as text: plain for identifiers. */
static PyObject *
mh_name_text(PyObject *key)
{
    if (PyUnicode_CheckExact(key))
        return Py_NewRef(key);
    return mh_key_text(key);
}

/* __slots__ and other object members of `obj` that hold `value`. */
static PyObject *
mh_member_name(PyObject *obj, PyObject *value)
{
    PyObject *mro = Py_TYPE(obj)->tp_mro;
    if (mro == NULL || !PyTuple_Check(mro))
        return NULL;
    for (Py_ssize_t t = 0; t < PyTuple_GET_SIZE(mro); t++) {
        PyTypeObject *tp = (PyTypeObject *)PyTuple_GET_ITEM(mro, t);
        PyMemberDef *m = tp->tp_members;
        for (; m != NULL && m->name != NULL; m++) {
            if (m->type != T_OBJECT && m->type != T_OBJECT_EX)
                continue;
            if (*(PyObject **)((char *)obj + m->offset) == value)
                return PyUnicode_FromString(m->name);
        }
    }
    return NULL;
}

static PyObject *
mh_local_name(const mh_frame_view *f, PyObject *value, int *index)
{
    PyObject *names = ((PyCodeObject *)f->code)->co_localsplusnames;
    for (int i = 0; i < f->nlocals; i++) {
        if (mh_compat_frame_local(f, i) == value && i < PyTuple_GET_SIZE(names)) {
            *index = i;
            return PyTuple_GET_ITEM(names, i);
        }
    }
    return NULL;
}

static PyObject *
mh_lru_label(PyObject *wrapper)
{
    PyObject *dict = mh_compat_existing_dict(wrapper);
    PyObject *wrapped = dict ? PyDict_GetItemString(dict, "__wrapped__") : NULL;
    if (wrapped != NULL && PyFunction_Check(wrapped)) {
        PyObject *mod = PyFunction_GetModule(wrapped);
        PyObject *qual = ((PyFunctionObject *)wrapped)->func_qualname;
        if (mod != NULL && PyUnicode_Check(mod) && qual != NULL)
            return PyUnicode_FromFormat("%U.%U", mod, qual);
        if (qual != NULL)
            return Py_NewRef(qual);
    }
    return PyUnicode_FromString("<lru_cache>");
}

typedef struct {
    mh_edge_kind kind;
    PyObject *label;   /* new reference */
    int consumed;      /* edges folded into this step */
} mh_step;

static int
mh_is_lru(PyObject *o)
{
    return strcmp(Py_TYPE(o)->tp_name, "functools._lru_cache_wrapper") == 0;
}

/* ---- naming one edge -----------------------------------------------------
 * One labeller per family of parent objects.  Each names the edge a -> b
 * (c: the node after b, or NULL) when `a` is of its family and it finds
 * `b`: it returns 1 with `s` filled, 0 when the edge is not its to name,
 * -1 with an exception set.  mh_label_edge() asks them in order. */

/* Fills `s`; 1, or -1 when `label` (a new reference) is NULL. */
static int
mh_step_set(mh_step *s, mh_edge_kind kind, PyObject *label, int consumed)
{
    s->kind = kind;
    s->label = label;
    s->consumed = consumed;
    return label != NULL ? 1 : -1;
}

/* Module globals, class attributes, instance __dict__ entries: the dict is
 * storage, folded into one step named by the key. */
static int
mh_label_owner_dict(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    if (c == NULL || !PyDict_Check(b))
        return 0;
    PyObject *owner_dict;
    mh_edge_kind kind = MH_EDGE_ATTR;
    if (PyModule_Check(a)) {
        owner_dict = PyModule_GetDict(a);
        kind = MH_EDGE_GLOBAL;
    }
    else if (PyType_Check(a)) {
        owner_dict = ((PyTypeObject *)a)->tp_dict;
        kind = MH_EDGE_CLASS_ATTR;
    }
    else {
        owner_dict = mh_compat_existing_dict(a);
    }
    PyObject *key = owner_dict == b ? mh_dict_key_of(b, c) : NULL;
    if (key == NULL)
        return 0;
    return mh_step_set(s, kind, mh_name_text(key), 2);
}

static int
mh_label_lru(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)b; (void)c;
    if (!mh_is_lru(a))
        return 0;
    return mh_step_set(s, MH_EDGE_LRU_CACHE, mh_lru_label(a), 1);
}

/* A function's __closure__ tuple and the cell in it: one step named by the
 * free variable. */
static int
mh_label_closure(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    if (!PyFunction_Check(a) || c == NULL || !PyTuple_Check(b) || PyFunction_GetClosure(a) != b)
        return 0;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(b); i++) {
        if (PyTuple_GET_ITEM(b, i) != c)
            continue;
        PyObject *names = PyObject_GetAttrString(PyFunction_GetCode(a), "co_freevars");
        if (names == NULL)
            return -1;
        int r = 0;
        if (PyTuple_Check(names) && i < PyTuple_GET_SIZE(names))
            r = mh_step_set(s, MH_EDGE_CLOSURE, Py_NewRef(PyTuple_GET_ITEM(names, i)), 2);
        Py_DECREF(names);
        if (r != 0)
            return r;
    }
    return 0;
}

/* Frames, generators, coroutines: the local slot. */
static int
mh_label_frame_local(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    mh_frame_view f;
    int idx;
    PyObject *name = mh_compat_object_frame(a, &f) ? mh_local_name(&f, b, &idx) : NULL;
    if (name == NULL)
        return 0;
    PyObject *fn = ((PyCodeObject *)f.code)->co_qualname;
    return mh_step_set(s, MH_EDGE_LOCAL, PyUnicode_FromFormat("%U() local %U", fn, name), 1);
}

/* Tracebacks and exceptions: tb_next, tb_frame, __traceback__, ... */
static int
mh_label_exception(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    if (PyTraceBack_Check(a)) {
        PyTracebackObject *tb = (PyTracebackObject *)a;
        if ((PyObject *)tb->tb_next == b || (PyObject *)tb->tb_frame == b)
            return mh_step_set(s, MH_EDGE_TRACEBACK,
                               PyUnicode_FromString((PyObject *)tb->tb_next == b ? "tb_next"
                                                                                 : "tb_frame"), 1);
    }
    if (PyExceptionInstance_Check(a)) {
        PyBaseExceptionObject *e = (PyBaseExceptionObject *)a;
        const char *n = b == e->traceback ? "__traceback__"
                      : b == e->context ? "__context__"
                      : b == e->cause ? "__cause__"
                      : b == e->args ? "args" : NULL;
        if (n != NULL)
            return mh_step_set(s, b == e->traceback ? MH_EDGE_TRACEBACK : MH_EDGE_ATTR,
                               PyUnicode_FromString(n), 1);
    }
    return 0;
}

/* Bound methods and cells: their one or two fixed references. */
static int
mh_label_method_or_cell(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    if (PyMethod_Check(a))
        return mh_step_set(s, MH_EDGE_ATTR,
                           PyUnicode_FromString(PyMethod_GET_SELF(a) == b ? "__self__"
                                                                          : "__func__"), 1);
    if (PyCell_Check(a))
        return mh_step_set(s, MH_EDGE_ATTR, PyUnicode_FromString("cell_contents"), 1);
    return 0;
}

/* Any other dict: the key of the value, or "dict key". */
static int
mh_label_dict(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    if (!PyDict_Check(a))
        return 0;
    PyObject *key = mh_dict_key_of(a, b);
    if (key != NULL) {
        PyObject *text = mh_key_text(key);
        if (text == NULL)
            return -1;
        PyObject *label = PyUnicode_FromFormat("[%U]", text);
        Py_DECREF(text);
        return mh_step_set(s, MH_EDGE_KEY, label, 1);
    }
    if (mh_dict_has_key(a, b))
        return mh_step_set(s, MH_EDGE_DICT_KEY, PyUnicode_FromString("key"), 1);
    return 0;
}

/* Lists and tuples: the index. */
static int
mh_label_sequence(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    if (!PyList_Check(a) && !PyTuple_Check(a))
        return 0;
    Py_ssize_t n = PyList_Check(a) ? PyList_GET_SIZE(a) : PyTuple_GET_SIZE(a);
    PyObject **items = PyList_Check(a) ? ((PyListObject *)a)->ob_item
                                       : ((PyTupleObject *)a)->ob_item;
    for (Py_ssize_t i = 0; i < n; i++) {
        if (items[i] == b)
            return mh_step_set(s, MH_EDGE_INDEX, PyUnicode_FromFormat("[%zd]", i), 1);
    }
    return 0;
}

/* Sets and deques: members have no position worth showing. */
static int
mh_label_set_or_deque(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)b; (void)c;
    int is_set = PyAnySet_Check(a);
    if (!is_set && strcmp(Py_TYPE(a)->tp_name, "collections.deque") != 0)
        return 0;
    return mh_step_set(s, MH_EDGE_MEMBER,
                       PyUnicode_FromString(is_set ? "set member" : "deque member"), 1);
}

/* Instance attributes: inline values, __slots__ and other members, the
 * class. */
static int
mh_label_attribute(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    (void)c;
    PyObject *name = mh_compat_inline_attr_name(a, b);
    if (name != NULL)
        return mh_step_set(s, MH_EDGE_ATTR, mh_name_text(name), 1);
    name = mh_member_name(a, b);
    if (name != NULL)
        return mh_step_set(s, MH_EDGE_ATTR, name, 1);
    if (PyErr_Occurred())
        return -1;
    if ((PyObject *)Py_TYPE(a) == b)
        return mh_step_set(s, MH_EDGE_ATTR, PyUnicode_FromString("__class__"), 1);
    return 0;
}

typedef int (*mh_labeller)(PyObject *a, PyObject *b, PyObject *c, mh_step *s);

/* In order: storage folding first (a module's dict before "any dict"). */
static const mh_labeller mh_labellers[] = {
    mh_label_owner_dict, mh_label_lru, mh_label_closure, mh_label_frame_local,
    mh_label_exception, mh_label_method_or_cell, mh_label_dict, mh_label_sequence,
    mh_label_set_or_deque, mh_label_attribute,
};

/* Name the edge a -> b (c: the node after b, or NULL); "referent" when no
 * labeller knows it. */
static int
mh_label_edge(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    s->label = NULL;
    for (size_t k = 0; k < sizeof mh_labellers / sizeof *mh_labellers; k++) {
        int r = mh_labellers[k](a, b, c, s);
        if (r != 0)
            return r < 0 ? -1 : 0;
    }
    return mh_step_set(s, MH_EDGE_REF, PyUnicode_FromString("referent"), 1) < 0 ? -1 : 0;
}

static int
mh_append_step(const mh_heap_graph *g, PyObject *list, const char *kind, PyObject *label,
               uint32_t target)
{
    PyObject *tn = mh_heap_type_name(Py_TYPE(g->nodes[target]));
    if (tn == NULL)
        return -1;
    PyObject *t = Py_BuildValue("(sONO)", kind, label, tn,
                                (g->flags[target] & MH_NODE_SURVIVOR) ? Py_True : Py_False);
    if (t == NULL)
        return -1;
    int r = PyList_Append(list, t);
    Py_DECREF(t);
    return r;
}

/* The root step of a registry (heap_roots.c): its kind and label. */
static int
mh_registry_step(const mh_heap_graph *g, uint32_t k, PyObject *list)
{
    const mh_heap_registry *reg = &g->registries[k];
    PyObject *label = PyUnicode_FromString(reg->label);
    int r = label ? mh_append_step(g, list, mh_root_kind_names[reg->kind], label, reg->node) : -1;
    Py_XDECREF(label);
    return r;
}

/* A path through one of the interpreter's registries starts at the one
 * nearest to its target: "threading._dangling -> set member", not "module
 * threading -> global _dangling (WeakSet) -> attribute data (set) -> set
 * member".  Index into chain[] (chain[0] is the target), or -1. */
static long
mh_registry_on_path(const mh_heap_graph *g, const uint32_t *chain, size_t n, int *reg)
{
    if (g->nregistries == 0)
        return -1;
    for (size_t j = 0; j < n; j++) {
        *reg = mh_heap_registry_of(g, chain[j]);
        if (*reg >= 0)
            return (long)j;
    }
    return -1;
}

static int
mh_root_step(const mh_heap_graph *g, uint32_t root, PyObject *list)
{
    PyObject *o = g->nodes[root];
    uint32_t p = g->parent[root];
    PyObject *label;
    int r;
    if (p == MH_PARENT_MODULE) {
        label = PyModule_GetNameObject(o);
        if (label == NULL) {
            PyErr_Clear();
            label = PyUnicode_FromString("?");
        }
        r = label ? mh_append_step(g, list, mh_root_kind_names[MH_ROOT_MODULE], label, root) : -1;
    }
    else if (p == MH_PARENT_CLASS) {
        label = mh_heap_type_name((PyTypeObject *)o);
        r = label ? mh_append_step(g, list, mh_root_kind_names[MH_ROOT_CLASS], label, root) : -1;
    }
    else if (p == MH_PARENT_EXTERNAL && PyUnicode_CheckExact(o) && PyUnicode_CHECK_INTERNED(o)) {
        /* Its extra references are the interned-string table's. */
        label = PyUnicode_FromString("");
        r = label ? mh_append_step(g, list, mh_root_kind_names[MH_ROOT_INTERNED], label, root) : -1;
    }
    else if (p == MH_PARENT_EXTERNAL) {
        label = PyUnicode_FromString("held outside Python");
        r = label ? mh_append_step(g, list, mh_root_kind_names[MH_ROOT_EXTERNAL], label, root) : -1;
    }
    else if (p >= MH_PARENT_REGISTRY && p - MH_PARENT_REGISTRY < g->nregistries) {
        return mh_registry_step(g, p - MH_PARENT_REGISTRY, list);
    }
    else {
        const mh_heap_stackref *ref = &g->stack[p - MH_PARENT_SPECIAL];
        PyCodeObject *code = (PyCodeObject *)ref->code;
        PyObject *t = Py_BuildValue("(skOO)", mh_root_kind_names[MH_ROOT_THREAD], ref->thread_id,
                                    Py_None, Py_False);
        if (t == NULL || PyList_Append(list, t) < 0) {
            Py_XDECREF(t);
            return -1;
        }
        Py_DECREF(t);
        PyObject *name = PyTuple_GET_ITEM(code->co_localsplusnames, ref->local);
        label = PyUnicode_FromFormat("%U() local %U (%U:%d)", code->co_qualname, name,
                                     code->co_filename, ref->line);
        r = label ? mh_append_step(g, list, mh_edge_kind_names[MH_EDGE_LOCAL], label, root) : -1;
    }
    Py_XDECREF(label);
    return r;
}

PyObject *
mh_heap_path(const mh_heap_graph *g, uint32_t i)
{
    if (g->parent[i] == MH_PARENT_UNREACHED)
        return PyList_New(0);
    size_t n = 0, cap = 16;
    uint32_t *chain = mh_mem_malloc(cap * sizeof(uint32_t));
    if (chain == NULL)
        return PyErr_NoMemory();
    for (uint32_t k = i;; k = g->parent[k]) {
        if (n == cap) {
            uint32_t *p = mh_mem_realloc(chain, cap * sizeof(uint32_t), cap * 2 * sizeof(uint32_t));
            if (p == NULL) {
                mh_mem_free(chain, cap * sizeof(uint32_t));
                return PyErr_NoMemory();
            }
            chain = p;
            cap *= 2;
        }
        chain[n++] = k;
        if (g->parent[k] >= MH_PARENT_SPECIAL)
            break;
    }
    /* chain[n-1] is the root, chain[0] the target */
    PyObject *list = PyList_New(0);
    if (list == NULL)
        goto error;
    int reg;
    long at = mh_registry_on_path(g, chain, n, &reg);
    if (at >= 0)
        n = (size_t)at + 1;
    if ((at >= 0 ? mh_registry_step(g, (uint32_t)reg, list) : mh_root_step(g, chain[n - 1], list)) < 0)
        goto error;
    size_t half = MH_PATH_MAX / 2;
    int elided = 0;
    for (size_t j = n - 1; j > 0;) {
        if (!elided && n - 1 > MH_PATH_MAX && n - 1 - j >= half && j > half) {
            /* A very long chain (a linked list): keep both ends. */
            PyObject *t = Py_BuildValue("(sNsO)", mh_edge_kind_names[MH_EDGE_ELIDED],
                                        PyUnicode_FromFormat("%zu more steps", j - half),
                                        "", Py_False);
            if (t == NULL || PyList_Append(list, t) < 0) {
                Py_XDECREF(t);
                goto error;
            }
            Py_DECREF(t);
            j = half;
            elided = 1;
            continue;
        }
        PyObject *a = g->nodes[chain[j]];
        PyObject *b = g->nodes[chain[j - 1]];
        PyObject *c = j >= 2 ? g->nodes[chain[j - 2]] : NULL;
        mh_step s;
        if (mh_label_edge(a, b, c, &s) < 0)
            goto error;
        if ((size_t)s.consumed > j)
            s.consumed = (int)j;
        j -= (size_t)s.consumed;
        /* A closure or frame cell is storage, not a step: show its content. */
        if (j > 0 && PyCell_Check(g->nodes[chain[j]])
            && (s.kind == MH_EDGE_CLOSURE || s.kind == MH_EDGE_LOCAL))
            j--;
        int r = mh_append_step(g, list, mh_edge_kind_names[s.kind], s.label, chain[j]);
        Py_DECREF(s.label);
        if (r < 0)
            goto error;
    }
    mh_mem_free(chain, cap * sizeof(uint32_t));
    return list;
error:
    Py_XDECREF(list);
    mh_mem_free(chain, cap * sizeof(uint32_t));
    return NULL;
}
