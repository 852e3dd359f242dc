/* snapshot.c -- placeholder until the analysis code lands. */
#include "snapshot.h"

int mh_snapshot_module_init(PyObject *module) { (void)module; return 0; }
