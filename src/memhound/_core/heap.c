/* heap.c -- placeholder until the heap graph lands. */
#include "heap.h"

int mh_heap_module_init(PyObject *module) { (void)module; return 0; }
