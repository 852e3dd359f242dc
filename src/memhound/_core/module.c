/* module.c -- memhound._core: the module and its tracing functions.
 *
 * Here: argument parsing of the tracemalloc-compatible functions, whose
 * names and error messages follow CPython's _tracemalloc so that memhound
 * is a drop-in, and module init with its constants (the heap kinds of
 * heap_kinds.h among them).  Results are converted into Python objects
 * where they are made: tracer.c (tracebacks, snapshots of the live blocks),
 * snapshot*.c, flame.c and fileformat.c (SnapshotData), heap*.c (the heap
 * census and graph); each adds its own types through its *_module_init.
 */
#include <Python.h>

#include "compat.h"
#include "heap.h"
#include "heap_census.h"
#include "heap_kinds.h"
#include "memory.h"
#include "pprof.h"
#include "snapshot.h"
#include "tracer.h"

static PyObject *
mh_py_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"nframe", NULL};
    PyObject *arg = NULL;
    int nframe = 1;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|O:start", kwlist, &arg))
        return NULL;
    if (arg != NULL) {
        /* The conversion and errors of _tracemalloc.start's `int nframe`. */
        int overflow;
        long value = PyLong_AsLongAndOverflow(arg, &overflow);
        if (value == -1 && PyErr_Occurred())
            return NULL;
        if (overflow || value > INT_MAX || value < INT_MIN) {
            PyErr_SetString(PyExc_OverflowError, "Python int too large to convert to C int");
            return NULL;
        }
        nframe = (int)value;
    }
    if (nframe < 1 || nframe > MH_MAX_NFRAME) {
        PyErr_Format(PyExc_ValueError, "the number of frames must be in range [1; %d]",
                     MH_MAX_NFRAME);
        return NULL;
    }
    if (mh_tracer_start(nframe) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mh_py_stop(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    if (mh_tracer_stop() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mh_py_is_tracing(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyBool_FromLong(mh_tracer_is_tracing());
}

static PyObject *
mh_py_clear_traces(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    if (mh_tracer_clear() < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mh_py_get_traced_memory(PyObject *self, PyObject *noargs)
{
    size_t current, peak;
    (void)self; (void)noargs;
    mh_tracer_traced_memory(&current, &peak);
    return Py_BuildValue("nn", (Py_ssize_t)current, (Py_ssize_t)peak);
}

static PyObject *
mh_py_reset_peak(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    mh_tracer_reset_peak();
    Py_RETURN_NONE;
}

static PyObject *
mh_py_get_traceback_limit(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromLong(mh_tracer_traceback_limit());
}

static PyObject *
mh_py_get_tracemalloc_memory(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromSize_t(mh_tracer_self_memory());
}

static PyObject *
mh_py_get_object_traceback(PyObject *self, PyObject *obj)
{
    (void)self;
    return mh_tracer_object_traceback(obj, 0);
}

static PyObject *
mh_py_object_creation(PyObject *self, PyObject *obj)
{
    (void)self;
    return mh_tracer_object_traceback(obj, 1);
}

static PyObject *
mh_py_take_snapshot(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return mh_tracer_take_snapshot();
}

static PyObject *
mh_py_suspend(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    mh_tracer_suspend();
    Py_RETURN_NONE;
}

static PyObject *
mh_py_resume(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    mh_tracer_resume();
    Py_RETURN_NONE;
}

static PyObject *
mh_py_set_memory_limit(PyObject *self, PyObject *arg)
{
    (void)self;
    size_t limit = PyLong_AsSize_t(arg);
    if (limit == (size_t)-1 && PyErr_Occurred())
        return NULL;
    mh_tracer_set_memory_limit(limit);
    Py_RETURN_NONE;
}

static PyMethodDef mh_methods[] = {
    {"start", (PyCFunction)(void (*)(void))mh_py_start, METH_VARARGS | METH_KEYWORDS,
     "start(nframe=1)\n--\n\nStart tracing Python memory allocations."},
    {"stop", mh_py_stop, METH_NOARGS, "Stop tracing and clear the traces."},
    {"is_tracing", mh_py_is_tracing, METH_NOARGS, "True if memhound is tracing."},
    {"clear_traces", mh_py_clear_traces, METH_NOARGS, "Clear the traces of memory blocks."},
    {"get_traced_memory", mh_py_get_traced_memory, METH_NOARGS,
     "(current, peak) size of traced memory blocks."},
    {"reset_peak", mh_py_reset_peak, METH_NOARGS, "Set the peak to the current size."},
    {"get_traceback_limit", mh_py_get_traceback_limit, METH_NOARGS,
     "Maximum number of frames stored in a traceback."},
    {"get_tracemalloc_memory", mh_py_get_tracemalloc_memory, METH_NOARGS,
     "Memory used by memhound's own tables, in bytes."},
    {"_get_object_traceback", mh_py_get_object_traceback, METH_O,
     "((filename, lineno), ...) where obj was created, most recent first, or None."},
    {"_object_creation", mh_py_object_creation, METH_O,
     "((filename, lineno, function), ...) where obj was created, or None."},
    {"take_snapshot", mh_py_take_snapshot, METH_NOARGS, "SnapshotData of all live traces."},
    {"suspend", mh_py_suspend, METH_NOARGS, "Stop tracing this thread's allocations (nests)."},
    {"resume", mh_py_resume, METH_NOARGS, "Undo one suspend()."},
    {"_set_memory_limit", mh_py_set_memory_limit, METH_O,
     "Test hook: cap memhound's own memory (0 = no cap)."},
    {"pprof_encode", mh_pprof_py_encode, METH_VARARGS,
     "pprof_encode(snapshot_data, time_nanos, period, comments, root_strip=None) -> profile.proto bytes"},
    {NULL, NULL, 0, NULL}
};

#define MH_KIND_ENTRY(id, name, text) {name, text},
static const char *const mh_root_kinds[][2] = {MH_ROOT_KINDS(MH_KIND_ENTRY)};
static const char *const mh_edge_kinds[][2] = {MH_EDGE_KINDS(MH_KIND_ENTRY)};

/* module.`attr` = a read-only {name: text} mapping of heap_kinds.h's table. */
static int
mh_add_kinds(PyObject *m, const char *attr, const char *const (*kinds)[2], size_t n)
{
    PyObject *dict = PyDict_New();
    if (dict == NULL)
        return -1;
    for (size_t i = 0; i < n; i++) {
        PyObject *text = PyUnicode_FromString(kinds[i][1]);
        if (text == NULL || PyDict_SetItemString(dict, kinds[i][0], text) < 0) {
            Py_XDECREF(text);
            Py_DECREF(dict);
            return -1;
        }
        Py_DECREF(text);
    }
    PyObject *proxy = PyDictProxy_New(dict);
    Py_DECREF(dict);
    if (proxy == NULL)
        return -1;
    int r = PyModule_AddObjectRef(m, attr, proxy);
    Py_DECREF(proxy);
    return r;
}

static struct PyModuleDef mh_module = {
    PyModuleDef_HEAD_INIT, "memhound._core", "memhound's C engine.", -1, mh_methods,
    NULL, NULL, NULL, NULL
};

PyMODINIT_FUNC
PyInit__core(void)
{
    PyObject *m = PyModule_Create(&mh_module);
    if (m == NULL)
        return NULL;
    if (PyModule_AddIntConstant(m, "MAX_NFRAME", MH_MAX_NFRAME) < 0
        || PyModule_AddIntConstant(m, "HAS_REFTRACER", mh_compat_has_reftracer()) < 0
        || mh_add_kinds(m, "ROOT_KINDS", mh_root_kinds, sizeof mh_root_kinds / sizeof *mh_root_kinds) < 0
        || mh_add_kinds(m, "EDGE_KINDS", mh_edge_kinds, sizeof mh_edge_kinds / sizeof *mh_edge_kinds) < 0
        || mh_tracer_module_init(m) < 0
        || mh_snapshot_module_init(m) < 0
        || mh_heap_module_init(m) < 0
        || mh_heap_census_module_init(m) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
