/* nullhook.c -- the floor of every allocator-hook tracer, for the benchmarks.
 *
 * start() installs allocators on the RAW, MEM and OBJ domains that only call
 * the allocators they replaced (what any tracer built on PyMem_SetAllocator
 * -- tracemalloc, memray with Python allocators, memhound -- pays before
 * doing any work of its own); start(reftracer=True) also installs a
 * reference tracer that returns at once (3.13+; memhound installs one to
 * re-stamp objects taken from free lists).  stop() puts the old ones back.
 *
 * benchmarks/worker.py compiles it on first use (modes "nullhook" and
 * "nullhook:ref"); it is never part of memhound.
 */
#include <Python.h>

static PyMemAllocatorEx nh_saved[3];
static PyMemAllocatorDomain const nh_domains[3] = {PYMEM_DOMAIN_RAW, PYMEM_DOMAIN_MEM, PYMEM_DOMAIN_OBJ};
static int nh_on, nh_ref_on;

static void *
nh_malloc(void *ctx, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    return a->malloc(a->ctx, size);
}

static void *
nh_calloc(void *ctx, size_t nelem, size_t elsize)
{
    PyMemAllocatorEx *a = ctx;
    return a->calloc(a->ctx, nelem, elsize);
}

static void *
nh_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    return a->realloc(a->ctx, ptr, size);
}

static void
nh_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *a = ctx;
    a->free(a->ctx, ptr);
}

#if PY_VERSION_HEX >= 0x030D0000
static int
nh_reftrace(PyObject *op, PyRefTracerEvent event, void *data)
{
    (void)op, (void)event, (void)data;
    return 0;
}
#endif

static PyObject *
nh_start(PyObject *self, PyObject *args, PyObject *kwargs)
{
    static char *names[] = {"reftracer", NULL};
    int reftracer = 0;
    (void)self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "|p", names, &reftracer))
        return NULL;
    if (nh_on) {
        PyErr_SetString(PyExc_RuntimeError, "nullhook: already started");
        return NULL;
    }
#if PY_VERSION_HEX < 0x030D0000
    if (reftracer) {
        PyErr_SetString(PyExc_RuntimeError, "nullhook: reference tracers need CPython 3.13+");
        return NULL;
    }
#endif
    for (int i = 0; i < 3; i++) {
        PyMemAllocatorEx hook = {&nh_saved[i], nh_malloc, nh_calloc, nh_realloc, nh_free};
        PyMem_GetAllocator(nh_domains[i], &nh_saved[i]);
        PyMem_SetAllocator(nh_domains[i], &hook);
    }
    nh_on = 1;
#if PY_VERSION_HEX >= 0x030D0000
    if (reftracer) {
        if (PyRefTracer_SetTracer(nh_reftrace, NULL) < 0)
            return NULL;
        nh_ref_on = 1;
    }
#endif
    Py_RETURN_NONE;
}

static PyObject *
nh_stop(PyObject *self, PyObject *unused)
{
    (void)self, (void)unused;
#if PY_VERSION_HEX >= 0x030D0000
    if (nh_ref_on && PyRefTracer_SetTracer(NULL, NULL) < 0)
        return NULL;
#endif
    nh_ref_on = 0;
    if (nh_on)
        for (int i = 0; i < 3; i++)
            PyMem_SetAllocator(nh_domains[i], &nh_saved[i]);
    nh_on = 0;
    Py_RETURN_NONE;
}

static PyMethodDef nh_methods[] = {
    {"start", (PyCFunction)(void (*)(void))nh_start, METH_VARARGS | METH_KEYWORDS,
     "start(reftracer=False): forwarding allocators on every domain."},
    {"stop", nh_stop, METH_NOARGS, "stop(): the replaced allocators back."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef nh_module = {PyModuleDef_HEAD_INIT, "_mh_nullhook", NULL, -1, nh_methods};

PyMODINIT_FUNC
PyInit__mh_nullhook(void)
{
    return PyModule_Create(&nh_module);
}
