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
#include <stdlib.h>
#include <string.h>

#include "compat.h"
#include "heap.h"
#include "heap_census.h"
#include "heap_kinds.h"
#include "memory.h"
#include "pprof.h"
#include "snapshot.h"
#include "tracer.h"

/* MEMHOUND_SAMPLE_SEED=N fixes the sampling seed (reproducible runs) unless
 * _set_sample_seed() did. */
static int mh_seed_set_by_call;

static int
mh_seed_from_env(void)
{
    if (mh_seed_set_by_call)
        return 0;
    const char *text = getenv("MEMHOUND_SAMPLE_SEED");
    if (text == NULL || *text == '\0') {
        mh_tracer_set_sample_seed(0, 0);
        return 0;
    }
    /* Decimal digits by hand: built with glibc 2.38+ headers, strtoull()
     * becomes __isoc23_strtoull, which would raise the wheels' manylinux
     * floor from glibc 2.17 to 2.38. */
    uint64_t seed = 0;
    for (const char *p = text; *p != '\0'; p++) {
        unsigned digit = (unsigned)(*p - '0');
        if (digit > 9 || seed > (UINT64_MAX - digit) / 10) {
            PyErr_Format(PyExc_ValueError,
                         "MEMHOUND_SAMPLE_SEED must be a non-negative integer, not '%.100s'", text);
            return -1;
        }
        seed = seed * 10 + digit;
    }
    mh_tracer_set_sample_seed(1, seed);
    return 0;
}

/* MEMHOUND_EXACT_DEPTH=1: count the whole stack at every capture, as
 * tracemalloc does (compat.c explains the reuse it turns off). */
static int
mh_depth_reuse_from_env(void)
{
    const char *text = getenv("MEMHOUND_EXACT_DEPTH");
    if (text == NULL || *text == '\0' || strcmp(text, "0") == 0) {
        mh_compat_set_depth_reuse(1);
        return 0;
    }
    if (strcmp(text, "1") == 0) {
        mh_compat_set_depth_reuse(0);
        return 0;
    }
    PyErr_Format(PyExc_ValueError, "MEMHOUND_EXACT_DEPTH must be 0 or 1, not '%.100s'", text);
    return -1;
}

static PyObject *
mh_py_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *kwlist[] = {"nframe", "sample_every", NULL};
    PyObject *arg = NULL, *rate = NULL;
    int nframe = 1;
    unsigned long long sample_every = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|OO:start", kwlist, &arg, &rate))
        return NULL;
    if (rate != NULL && rate != Py_None) {
        if (!PyLong_Check(rate) || PyBool_Check(rate)) {
            PyErr_Format(PyExc_TypeError, "sample_every must be an int (bytes), not %.200s",
                         Py_TYPE(rate)->tp_name);
            return NULL;
        }
        PyObject *zero = PyLong_FromLong(0);
        int sign = zero ? PyObject_RichCompareBool(rate, zero, Py_LT) : -1;
        Py_XDECREF(zero);
        if (sign < 0)
            return NULL;
        sample_every = sign ? 0 : PyLong_AsUnsignedLongLong(rate);
        if (sign || (sample_every == (unsigned long long)-1 && PyErr_Occurred())
            || sample_every > ((unsigned long long)1 << 62)) {
            PyErr_Clear();
            PyErr_SetString(PyExc_ValueError,
                            "sample_every must be 0 (exact) or a number of bytes in [1; 2**62]");
            return NULL;
        }
    }
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
    if (sample_every && mh_seed_from_env() < 0)
        return NULL;
    if (!mh_tracer_is_tracing() && mh_depth_reuse_from_env() < 0)
        return NULL;
    if (mh_tracer_start(nframe, (uint64_t)sample_every) < 0)
        return NULL;
    Py_RETURN_NONE;
}

static PyObject *
mh_py_get_sample_every(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    return PyLong_FromUnsignedLongLong(mh_tracer_sample_every());
}

static PyObject *
mh_py_set_sample_seed(PyObject *self, PyObject *arg)
{
    (void)self;
    if (arg == Py_None) {
        mh_seed_set_by_call = 0;
        mh_tracer_set_sample_seed(0, 0);
        Py_RETURN_NONE;
    }
    unsigned long long seed = PyLong_AsUnsignedLongLongMask(arg);
    if (seed == (unsigned long long)-1 && PyErr_Occurred())
        return NULL;
    mh_seed_set_by_call = 1;
    mh_tracer_set_sample_seed(1, (uint64_t)seed);
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
mh_py_depth_counts(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
    uint64_t counted, reused;
    mh_compat_depth_counts(&counted, &reused);
    return Py_BuildValue("(KK)", (unsigned long long)counted, (unsigned long long)reused);
}

/* call_traced(fn, *args): fn(*args) with this thread's tracing resumed and
 * the caller's frame as the root of every traceback taken meanwhile. */
static PyObject *
mh_py_call_traced(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs < 1) {
        PyErr_SetString(PyExc_TypeError, "call_traced() needs a function to call");
        return NULL;
    }
    void *previous = mh_compat_set_root(mh_compat_newest_frame(PyThreadState_Get()));
    mh_tracer_resume();
    PyObject *result = PyObject_Vectorcall(args[0], args + 1, (size_t)(nargs - 1), NULL);
    mh_tracer_suspend();
    mh_compat_set_root(previous);
    return result;
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
    {"_depth_counts", mh_py_depth_counts, METH_NOARGS,
     "_depth_counts() -> (counted, reused): captures since start() that counted the frames "
     "under the captured ones, and captures that reused an earlier count."},
    {"start", (PyCFunction)(void (*)(void))mh_py_start, METH_VARARGS | METH_KEYWORDS,
     "start(nframe=1, sample_every=0)\n--\n\nStart tracing Python memory allocations; "
     "sample_every > 0 records one allocation per that many bytes on average."},
    {"get_sample_every", mh_py_get_sample_every, METH_NOARGS,
     "The sampling rate in bytes (0 = exact or not tracing)."},
    {"_set_sample_seed", mh_py_set_sample_seed, METH_O,
     "Test hook: fix the sampling seed from the next start() on (None = random)."},
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
    {"call_traced", (PyCFunction)(void (*)(void))mh_py_call_traced, METH_FASTCALL,
     "call_traced(fn, *args)\n--\n\nfn(*args) with this thread's tracing resumed (under "
     "suspend()) and the caller's frame as the root of the tracebacks taken meanwhile: "
     "the caller's frames and those below it are in none."},
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
