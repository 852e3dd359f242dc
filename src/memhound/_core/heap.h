/* heap.h -- the object graph for the leak finder (heap.c).
 *
 * Called once from module init: adds the heap-graph functions/types to the
 * module.  See heap.c for the design.
 */
#ifndef MH_HEAP_H
#define MH_HEAP_H

#include <Python.h>

int mh_heap_module_init(PyObject *module);

#endif
