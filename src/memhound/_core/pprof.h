/* pprof.h -- a snapshot as a pprof profile (profile.proto, uncompressed):
 * the encoding behind `memhound export --format pprof` and `memhound run
 * --pprof`.  GIL held; the caller suspends tracing (the result is memhound's
 * own object).
 */
#ifndef MH_PPROF_H
#define MH_PPROF_H

#include <Python.h>

/* _core.pprof_encode(snapshot_data, time_nanos, period, comments, root_strip)
 * -> bytes.  See pprof.c for the profile's layout. */
PyObject *mh_pprof_py_encode(PyObject *self, PyObject *args);

#endif
