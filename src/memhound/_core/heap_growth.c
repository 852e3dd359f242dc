/* heap_growth.c -- which line grows a container: the creation traceback of
 * its storage.
 *
 * A list's item array, a dict's entry table and a set's hash table are
 * memory blocks of their own, reallocated when the container grows.  While
 * memhound traces, the block's traceback is the line that last grew it
 * (`_history.append(order)`), which the leak finder names in its hints.
 * Only the public object structs are read (ob_item, ma_keys/ma_values,
 * table/smalltable); a container whose storage is not a block of its own
 * (a split dict, a set in its small table, any other type) has no answer.
 * Nothing here runs Python code.
 */
#include "heap.h"
#include "tracer.h"

/* Start of the storage block of `o`, or NULL. */
static const void *
mh_storage_block(PyObject *o)
{
    if (PyList_Check(o))
        return ((PyListObject *)o)->ob_item;
    if (PyDict_Check(o)) {
        PyDictObject *d = (PyDictObject *)o;
        /* Split tables share their keys with the class: they do not grow
         * with this dict. */
        return d->ma_values == NULL ? (const void *)d->ma_keys : NULL;
    }
    if (PyAnySet_Check(o)) {
        PySetObject *s = (PySetObject *)o;
        return s->table == s->smalltable ? NULL : (const void *)s->table;
    }
    return NULL;
}

PyObject *
mh_heap_storage_creation(PyObject *container)
{
    return mh_tracer_block_creation(mh_storage_block(container));
}
