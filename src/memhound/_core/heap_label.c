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

/* Name the edge a -> b (c: the node after b, or NULL). */
static int
mh_label_edge(PyObject *a, PyObject *b, PyObject *c, mh_step *s)
{
    s->consumed = 1;
    s->label = NULL;
    /* Module globals, class attributes, instance __dict__ entries. */
    if (c != NULL && PyDict_Check(b)) {
        PyObject *owner_dict = NULL;
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
        if (owner_dict == b) {
            PyObject *key = mh_dict_key_of(b, c);
            if (key != NULL) {
                s->kind = kind;
                s->label = mh_name_text(key);
                s->consumed = 2;
                return s->label ? 0 : -1;
            }
        }
    }
    if (mh_is_lru(a)) {
        s->kind = MH_EDGE_LRU_CACHE;
        s->label = mh_lru_label(a);
        return s->label ? 0 : -1;
    }
    if (PyFunction_Check(a)) {
        PyObject *closure = PyFunction_GetClosure(a);
        if (closure != NULL && closure == b && c != NULL && PyTuple_Check(b)) {
            for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(b); i++) {
                if (PyTuple_GET_ITEM(b, i) != c)
                    continue;
                PyObject *names = PyObject_GetAttrString(PyFunction_GetCode(a), "co_freevars");
                if (names == NULL)
                    return -1;
                if (PyTuple_Check(names) && i < PyTuple_GET_SIZE(names)) {
                    s->kind = MH_EDGE_CLOSURE;
                    s->label = Py_NewRef(PyTuple_GET_ITEM(names, i));
                    s->consumed = 2;
                }
                Py_DECREF(names);
                if (s->label != NULL)
                    return 0;
            }
        }
    }
    mh_frame_view f;
    if (mh_compat_object_frame(a, &f)) {
        int idx;
        PyObject *name = mh_local_name(&f, b, &idx);
        if (name != NULL) {
            PyObject *fn = ((PyCodeObject *)f.code)->co_qualname;
            s->kind = MH_EDGE_LOCAL;
            s->label = PyUnicode_FromFormat("%U() local %U", fn, name);
            return s->label ? 0 : -1;
        }
    }
    if (PyTraceBack_Check(a)) {
        PyTracebackObject *tb = (PyTracebackObject *)a;
        if ((PyObject *)tb->tb_next == b || (PyObject *)tb->tb_frame == b) {
            s->kind = MH_EDGE_TRACEBACK;
            s->label = PyUnicode_FromString((PyObject *)tb->tb_next == b ? "tb_next" : "tb_frame");
            return s->label ? 0 : -1;
        }
    }
    if (PyExceptionInstance_Check(a)) {
        PyBaseExceptionObject *e = (PyBaseExceptionObject *)a;
        const char *n = b == e->traceback ? "__traceback__"
                      : b == e->context ? "__context__"
                      : b == e->cause ? "__cause__"
                      : b == e->args ? "args" : NULL;
        if (n != NULL) {
            s->kind = b == e->traceback ? MH_EDGE_TRACEBACK : MH_EDGE_ATTR;
            s->label = PyUnicode_FromString(n);
            return s->label ? 0 : -1;
        }
    }
    if (PyMethod_Check(a)) {
        s->kind = MH_EDGE_ATTR;
        s->label = PyUnicode_FromString(PyMethod_GET_SELF(a) == b ? "__self__" : "__func__");
        return s->label ? 0 : -1;
    }
    if (PyCell_Check(a)) {
        s->kind = MH_EDGE_ATTR;
        s->label = PyUnicode_FromString("cell_contents");
        return s->label ? 0 : -1;
    }
    if (PyDict_Check(a)) {
        PyObject *key = mh_dict_key_of(a, b);
        if (key != NULL) {
            PyObject *text = mh_key_text(key);
            if (text == NULL)
                return -1;
            s->kind = MH_EDGE_KEY;
            s->label = PyUnicode_FromFormat("[%U]", text);
            Py_DECREF(text);
            return s->label ? 0 : -1;
        }
        if (mh_dict_has_key(a, b)) {
            s->kind = MH_EDGE_DICT_KEY;
            s->label = PyUnicode_FromString("key");
            return s->label ? 0 : -1;
        }
    }
    if (PyList_Check(a) || PyTuple_Check(a)) {
        Py_ssize_t n = PyList_Check(a) ? PyList_GET_SIZE(a) : PyTuple_GET_SIZE(a);
        PyObject **items = PyList_Check(a) ? ((PyListObject *)a)->ob_item
                                           : ((PyTupleObject *)a)->ob_item;
        for (Py_ssize_t i = 0; i < n; i++) {
            if (items[i] == b) {
                s->kind = MH_EDGE_INDEX;
                s->label = PyUnicode_FromFormat("[%zd]", i);
                return s->label ? 0 : -1;
            }
        }
    }
    if (PyAnySet_Check(a) || strcmp(Py_TYPE(a)->tp_name, "collections.deque") == 0) {
        s->kind = MH_EDGE_MEMBER;
        s->label = PyUnicode_FromString(PyAnySet_Check(a) ? "set member" : "deque member");
        return s->label ? 0 : -1;
    }
    PyObject *name = mh_compat_inline_attr_name(a, b);
    if (name != NULL) {
        s->kind = MH_EDGE_ATTR;
        s->label = mh_name_text(name);
        return s->label ? 0 : -1;
    }
    name = mh_member_name(a, b);
    if (name != NULL) {
        s->kind = MH_EDGE_ATTR;
        s->label = name;
        return 0;
    }
    if (PyErr_Occurred())
        return -1;
    if ((PyObject *)Py_TYPE(a) == b) {
        s->kind = MH_EDGE_ATTR;
        s->label = PyUnicode_FromString("__class__");
        return s->label ? 0 : -1;
    }
    s->kind = MH_EDGE_REF;
    s->label = PyUnicode_FromString("referent");
    return s->label ? 0 : -1;
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
    else if (p == MH_PARENT_EXTERNAL) {
        label = PyUnicode_FromString("held outside Python");
        r = label ? mh_append_step(g, list, mh_root_kind_names[MH_ROOT_EXTERNAL], label, root) : -1;
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
    if (list == NULL || mh_root_step(g, chain[n - 1], list) < 0)
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
