/* flame.h -- the report's call tree as data (SnapshotData.flame_tree()),
 * registered by the type in snapshot.c. */
#ifndef MH_FLAME_H
#define MH_FLAME_H

#include <Python.h>

/* flame_tree(min_share, root_strip=None): see the method's docstring.
 * root_strip may carry a fourth item, `collapse`: files whose frames are
 * left out of every traceback except as its most recent frame. */
PyObject *mh_flame_py_tree(PyObject *snap, PyObject *args);

#endif
