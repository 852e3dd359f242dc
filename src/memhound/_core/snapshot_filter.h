/* snapshot_filter.h -- SnapshotData.filter() and its fnmatch, registered by
 * the type in snapshot.c. */
#ifndef MH_SNAPSHOT_FILTER_H
#define MH_SNAPSHOT_FILTER_H

#include <Python.h>

/* filter([(is_domain_filter, inclusive, pattern, lineno, all_frames, domain), ...]). */
PyObject *mh_filter_py_filter(PyObject *snap, PyObject *specs);
/* _fnmatch(filename, pattern): tracemalloc's filename match (test hook). */
PyObject *mh_filter_py_fnmatch(PyObject *cls, PyObject *args);

#endif
