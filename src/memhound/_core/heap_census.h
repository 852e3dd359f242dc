/* heap_census.h -- the live heap at one moment, for `memhound attach --census`.
 *
 * One GIL-holding call counts every live object by type (count and bytes)
 * from the census, builds the heap graph (heap_graph.c) and ranks the
 * biggest holders with their paths from named roots (heap_label.c): no
 * Python code of user objects runs, and the collector is disabled for the
 * call, so no object the call looks at can be freed under it.
 */
#ifndef MH_HEAP_CENSUS_H
#define MH_HEAP_CENSUS_H

#include <Python.h>

int mh_heap_census_module_init(PyObject *module);

#endif
