/* snapshot.c -- placeholder until the analysis code lands: a SnapshotData is
 * a list of raw (domain, size, frames, total_nframe) tuples. */
#include "snapshot.h"

PyObject *mh_snapshot_new(int traceback_limit) { (void)traceback_limit; return PyList_New(0); }

int64_t
mh_snapshot_add_frame(PyObject *snap, PyObject *filename, int lineno, PyObject *function)
{
    (void)function;
    PyObject *frames = PyObject_GetAttrString(snap, "__frames__");
    (void)frames;
    PyErr_Clear();
    PyObject *key = Py_BuildValue("(Oi)", filename, lineno);
    PyObject *store = PyList_GET_SIZE(snap) >= 0 ? PySys_GetObject("_mh_frames") : NULL;
    if (store == NULL) {
        store = PyList_New(0);
        PySys_SetObject("_mh_frames", store);
        Py_DECREF(store);
    }
    PyList_Append(store, key);
    Py_DECREF(key);
    return PyList_GET_SIZE(store) - 1;
}

int64_t
mh_snapshot_add_traceback(PyObject *snap, const uint32_t *frames, int nframe, int total_nframe)
{
    (void)snap;
    PyObject *store = PySys_GetObject("_mh_frames");
    PyObject *tbs = PySys_GetObject("_mh_tbs");
    if (tbs == NULL) {
        tbs = PyList_New(0);
        PySys_SetObject("_mh_tbs", tbs);
        Py_DECREF(tbs);
    }
    PyObject *t = PyTuple_New(nframe ? nframe : 1);
    if (nframe == 0)
        PyTuple_SET_ITEM(t, 0, Py_BuildValue("(si)", "<unknown>", 0));
    for (int i = 0; i < nframe; i++) {
        PyObject *f = PyList_GET_ITEM(store, frames[i]);
        Py_INCREF(f);
        PyTuple_SET_ITEM(t, i, f);
    }
    PyObject *e = Py_BuildValue("(Ni)", t, total_nframe);
    PyList_Append(tbs, e);
    Py_DECREF(e);
    return PyList_GET_SIZE(tbs) - 1;
}

int
mh_snapshot_add_trace(PyObject *snap, unsigned int domain, size_t size, uint32_t traceback)
{
    PyObject *tbs = PySys_GetObject("_mh_tbs");
    PyObject *e = PyList_GET_ITEM(tbs, traceback);
    PyObject *t = Py_BuildValue("(InOO)", domain, (Py_ssize_t)size, PyTuple_GET_ITEM(e, 0),
                                PyTuple_GET_ITEM(e, 1));
    PyList_Append(snap, t);
    Py_DECREF(t);
    return 0;
}

int mh_snapshot_reserve_traces(PyObject *snap, size_t n) { (void)snap; (void)n; return 0; }

int mh_snapshot_module_init(PyObject *module) { (void)module; return 0; }
