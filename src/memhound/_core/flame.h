/* flame.h -- the report's call tree as data (SnapshotData.flame_tree()),
 * registered by the type in snapshot.c. */
#ifndef MH_FLAME_H
#define MH_FLAME_H

#include <Python.h>

/* flame_tree(min_share, root_strip=None): see the method's docstring. */
PyObject *mh_flame_py_tree(PyObject *snap, PyObject *args);

#endif
