/* heap_group.c -- what the leak finder needs to put one leak in one group.
 *
 * The root search gives every survivor its shortest path; the first
 * survivor on it (its "head") is what an old object holds directly.  Every
 * other survivor is kept by the survivor before it on the path, so it
 * belongs to the head's group.  Heads may still be kept by another
 * survivor: a running thread's Thread object is held by threading's
 * bookkeeping and its own stack, and by the leaked object that started it.
 * The leak finder decides which holds count (memhound.leaks); this file
 * only reports, from the graph it already has:
 *
 *   - per survivor, its parent when that parent is a survivor, and for the
 *     heads the kind of root their path starts from (and the thread id for
 *     a thread stack);
 *   - the edges from a survivor to a head other than the head's parent:
 *     the candidates for "kept by another survivor".
 *
 * Cost: one pass over the survivors and their out-edges, plus a walk up the
 * parent chain of each head (bounded: MH_ROOT_WALK_MAX steps).  Nothing
 * here runs Python code.
 */
#include "heap.h"

/* Root kinds of a head's path, as small ints for Python (memhound.leaks
 * spells them; the path's first step names the root precisely). */
enum {
    MH_GROUP_ROOT_UNKNOWN = 0,   /* unreached, or a path too long to walk */
    MH_GROUP_ROOT_MODULE = 1,
    MH_GROUP_ROOT_CLASS = 2,
    MH_GROUP_ROOT_THREAD = 3,
    MH_GROUP_ROOT_EXTERNAL = 4,
    MH_GROUP_ROOT_REGISTRY = 5,  /* one of the interpreter's registries */
};

/* Heads sit close to their root in the leaks that matter here (thread
 * stacks, registries); a longer walk is not worth its cost per head. */
#define MH_ROOT_WALK_MAX 4096

static inline int
mh_is_survivor(const mh_heap_graph *g, uint32_t i)
{
    return (g->flags[i] & MH_NODE_SURVIVOR) != 0;
}

/* Root kind of node i's path; *tid gets the thread id of a stack root, or
 * the registry's kind (mh_root_kind) for a registry. */
static int
mh_group_root(const mh_heap_graph *g, uint32_t i, unsigned long *tid)
{
    *tid = 0;
    uint32_t k = i;
    for (int steps = 0; steps < MH_ROOT_WALK_MAX; steps++) {
        uint32_t p = g->parent[k];
        if (p == MH_PARENT_UNREACHED)
            return MH_GROUP_ROOT_UNKNOWN;
        if (p == MH_PARENT_MODULE)
            return MH_GROUP_ROOT_MODULE;
        if (p == MH_PARENT_CLASS)
            return MH_GROUP_ROOT_CLASS;
        if (p == MH_PARENT_EXTERNAL)
            return MH_GROUP_ROOT_EXTERNAL;
        if (p >= MH_PARENT_REGISTRY && p - MH_PARENT_REGISTRY < g->nregistries) {
            *tid = g->registries[p - MH_PARENT_REGISTRY].kind;
            return MH_GROUP_ROOT_REGISTRY;
        }
        if (p >= MH_PARENT_SPECIAL) {
            size_t ref = p - MH_PARENT_SPECIAL;
            if (ref < g->nstack) {
                *tid = g->stack[ref].thread_id;
                return MH_GROUP_ROOT_THREAD;
            }
            return MH_GROUP_ROOT_UNKNOWN;
        }
        k = p;
    }
    return MH_GROUP_ROOT_UNKNOWN;
}

static int
mh_is_head(const mh_heap_graph *g, uint32_t i)
{
    uint32_t p = g->parent[i];
    return p >= MH_PARENT_SPECIAL || !mh_is_survivor(g, p);
}

/* (node, survivor parent or -1, root kind, thread id) for one survivor. */
static PyObject *
mh_group_node_tuple(const mh_heap_graph *g, uint32_t i)
{
    long long parent = -1;
    int root = MH_GROUP_ROOT_UNKNOWN;
    unsigned long tid = 0;
    if (mh_is_head(g, i))
        root = mh_group_root(g, i, &tid);
    else
        parent = g->parent[i];
    return Py_BuildValue("(ILik)", i, parent, root, tid);
}

PyObject *
mh_heap_group_links(const mh_heap_graph *g)
{
    PyObject *tree = PyList_New(0), *cross = PyList_New(0), *res = NULL;
    if (tree == NULL || cross == NULL)
        goto done;
    for (uint32_t i = 0; i < g->n; i++) {
        if (!mh_is_survivor(g, i))
            continue;
        PyObject *t = mh_group_node_tuple(g, i);
        if (t == NULL || PyList_Append(tree, t) < 0) {
            Py_XDECREF(t);
            goto done;
        }
        Py_DECREF(t);
        for (uint32_t e = g->fwd_off[i]; e < g->fwd_off[i + 1]; e++) {
            uint32_t c = g->fwd[e];
            if (c == i || !mh_is_survivor(g, c) || !mh_is_head(g, c) || g->parent[c] == i)
                continue;
            PyObject *edge = Py_BuildValue("(II)", i, c);
            if (edge == NULL || PyList_Append(cross, edge) < 0) {
                Py_XDECREF(edge);
                goto done;
            }
            Py_DECREF(edge);
        }
    }
    res = PyTuple_Pack(2, tree, cross);
done:
    Py_XDECREF(tree);
    Py_XDECREF(cross);
    return res;
}
