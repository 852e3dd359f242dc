/* tracer.c -- placeholder; the engine lands next. */
#include "tracer.h"

static int mh_nyi(void) { PyErr_SetString(PyExc_NotImplementedError, "engine not built yet"); return -1; }
int mh_tracer_start(int nframe) { (void)nframe; return mh_nyi(); }
int mh_tracer_stop(void) { return 0; }
int mh_tracer_is_tracing(void) { return 0; }
int mh_tracer_clear(void) { return 0; }
void mh_tracer_traced_memory(size_t *c, size_t *p) { *c = *p = 0; }
void mh_tracer_reset_peak(void) {}
int mh_tracer_traceback_limit(void) { return 1; }
size_t mh_tracer_self_memory(void) { return 0; }
PyObject *mh_tracer_object_traceback(PyObject *o, int f) { (void)o; (void)f; Py_RETURN_NONE; }
PyObject *mh_tracer_take_snapshot(void) { mh_nyi(); return NULL; }
void mh_tracer_suspend(void) {}
void mh_tracer_resume(void) {}
void mh_tracer_set_memory_limit(size_t l) { (void)l; }
int mh_tracer_module_init(PyObject *m) { (void)m; return 0; }
