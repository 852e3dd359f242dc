/* snapshot_group.h -- grouping a snapshot's traces by location or traceback
 * (mh_group_*): statistics(), compare_to(), and the keys flame.c builds its
 * tree from.
 *
 * A grouping context gives every (filename, lineno) a dense "location" id
 * and every group key (a run of locations, oldest first) a dense key id.
 * Strings are unified by value, so the keys of two snapshots (compare_to)
 * or of tables holding duplicate strings (a loaded file) share one id
 * space.  The context borrows every string and function name from the
 * snapshots it was filled from: they must outlive it.  GIL held.
 */
#ifndef MH_SNAPSHOT_GROUP_H
#define MH_SNAPSHOT_GROUP_H

#include "snapshot_tables.h"

enum { MH_KEY_LINENO = 0, MH_KEY_FILENAME = 1, MH_KEY_TRACEBACK = 2 };

typedef struct {
    uint32_t uid;          /* unified string id */
    int32_t lineno;
    PyObject *function;    /* borrowed from a snapshot's tables, or NULL */
} mh_group_loc;

/* Zero-initialise, fill with mh_group_add(), release with mh_group_free(). */
typedef struct {
    int mode, cumulative;
    /* strings unified by value */
    PyObject **ustr;
    uint32_t *uhash;
    size_t nu, capu, capuh;
    mh_index uidx;
    uint32_t *urank;
    /* locations: (uid, lineno) */
    mh_group_loc *loc;
    uint32_t *lhash;
    size_t nloc, caploc, caplh;
    mh_index lidx;
    PyObject **ltuple;
    /* keys: runs of locations, oldest first */
    uint32_t *kpool;
    size_t nkpool, capkpool;
    uint64_t *kstart;
    uint32_t *klen, *khash;
    size_t nkey, capks, capkl, capkh;
    mh_index kidx;
    uint64_t *ksize[2], *kcount[2];
    size_t capsz[2], capct[2];
    /* scratch */
    uint32_t *seq;
    size_t capseq;
} mh_group;

/* Add the traces of `s` to side 0 (the new snapshot) or 1 (the old one):
 * one pass sums them per traceback, then per key.  0, or -1 with an
 * exception set. */
int mh_group_add(mh_group *g, const mh_snapshot_object *s, int side);
/* Unified id of string `s` with hash `h` (mh_snapshot_str_hash), and
 * location id of (uid, lineno): both interned. */
int64_t mh_group_uid(mh_group *g, PyObject *s, uint32_t h);
int64_t mh_group_loc_id(mh_group *g, uint32_t uid, int32_t lineno, PyObject *function);
/* Rank the unified strings (once every string is known), then list the
 * keys with a count in tracemalloc's order: statistics() order, or
 * compare_to() order when `old` was added as side 1. */
int mh_group_rank(mh_group *g);
int mh_group_order(mh_group *g, const mh_snapshot_object *old, uint32_t **order, size_t *norder);
void mh_group_free(mh_group *g);

/* For comparison functions: order by x, descending. */
#define MH_CMP_DESC(x, y) do { if ((x) != (y)) return (x) > (y) ? -1 : 1; } while (0)

/* SnapshotData.statistics(mode, cumulative), SnapshotData.compare_to(old, mode, cumulative). */
PyObject *mh_group_py_statistics(PyObject *snap, PyObject *args);
PyObject *mh_group_py_compare_to(PyObject *snap, PyObject *args);

#endif
