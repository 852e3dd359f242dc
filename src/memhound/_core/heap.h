/* heap.h -- the object graph for the leak finder.
 *
 * heap_graph.c  the census (address set of every live object) and the graph:
 *               nodes, forward edges (CSR), reference counts found, roots
 *               and the breadth-first search from the roots.
 * heap_label.c  names of the edges on a chosen path (global, attribute,
 *               key, index, closure variable, frame local, ...).
 * heap.c        the Python types _core.HeapCensus and _core.HeapGraph.
 *
 * All functions run with the GIL held and never call Python code: no
 * __eq__, __hash__ or __repr__ of user objects, no attribute lookups that
 * could run descriptors.  Memory comes from memory.h.
 */
#ifndef MH_HEAP_H
#define MH_HEAP_H

#include <Python.h>
#include <stdint.h>

int mh_heap_module_init(PyObject *module);

/* ---- address set: open addressing (index.h), 8-byte slots --------------- */
typedef struct {
    uintptr_t *slots;
    size_t cap;
    size_t count;
    size_t ntracked;          /* census: GC-tracked objects seen */
    size_t nrefs;             /* census: references to GC objects seen */
} mh_heap_set;

void mh_heap_set_free(mh_heap_set *s);

/* Every object reachable from the GC-tracked objects and from the fast
 * locals of every thread's frames, including untracked str/int/tuple/...
 * Returns 0, or -1 with MemoryError set. */
int mh_heap_census_take(mh_heap_set *s);

/* ---- graph --------------------------------------------------------------- */

/* parent[] values >= MH_PARENT_SPECIAL mark roots or unreached nodes. */
#define MH_PARENT_SPECIAL   0xC0000000u
#define MH_PARENT_UNREACHED 0xFFFFFFFFu
#define MH_PARENT_MODULE    0xFFFFFFFEu
#define MH_PARENT_CLASS     0xFFFFFFFDu
#define MH_PARENT_EXTERNAL  0xFFFFFFFCu
/* MH_PARENT_SPECIAL + k: held by the k-th thread-stack reference;
 * MH_PARENT_REGISTRY + k: the k-th registry root (at most
 * MH_MAX_REGISTRIES; thread-stack references never reach that range: each
 * costs 40 bytes, 0x30000000 of them would be 30 GB). */
#define MH_PARENT_REGISTRY  0xF0000000u
#define MH_MAX_REGISTRIES   4096u
#define MH_MAX_NODES        (MH_PARENT_SPECIAL - 0x01000000u)

#define MH_NODE_SURVIVOR 0x01   /* not in the census: created since */
#define MH_NODE_EXTERNAL 0x02   /* refcount exceeds the references found
                                   (computed for unreached nodes only) */
#define MH_NODE_MODULE   0x04
#define MH_NODE_TYPE     0x08
#define MH_NODE_HELD     0x10   /* the graph holds a reference (mh_heap_graph_hold) */
#define MH_NODE_REGISTRY 0x80   /* one of the interpreter's registries
                                   (heap_roots.c): g->registries says which */

/* A reference from a fast local of a running frame (a thread-stack root). */
typedef struct {
    PyObject *code;           /* borrowed: kept alive by the running frame */
    unsigned long thread_id;
    uint32_t node;
    int32_t local;            /* index into co_localsplusnames */
    int32_t line;
    int32_t depth;            /* 0 = the thread's newest frame */
} mh_heap_stackref;

/* One of the interpreter's registries found as a node (heap_roots.c). */
#define MH_REGISTRY_LABEL 72
typedef struct {
    uint32_t node;
    uint32_t first;           /* the first registry of the same kind and label
                                 (one per atexit callback on 3.11-3.13): what
                                 they hold is grouped together */
    uint8_t kind;             /* mh_root_kind */
    char label[MH_REGISTRY_LABEL];
} mh_heap_registry;

/* 12 bytes: the table is the biggest structure of the build. */
typedef struct __attribute__((packed)) {
    PyObject *key;
    uint32_t idx;
} mh_heap_slot;

typedef struct {
    PyObject **nodes;         /* borrowed; valid while the graph is open */
    uint32_t n, cap_nodes, hint_nodes;
    uint8_t *flags;
    uint32_t *found;          /* references found per node (in-degree) */
    uint32_t *fwd_off;        /* CSR: edges of node i are fwd[fwd_off[i]..fwd_off[i+1]) */
    uint32_t *fwd;
    size_t nedges, cap_edges;
    mh_heap_slot *table;      /* address -> node index; freed after the build */
    size_t tcap, tcount;
    mh_heap_stackref *stack;
    size_t nstack, cap_stack;
    int stack_held;           /* the stack refs' code objects are referenced */
    mh_heap_registry *registries;   /* registry roots, in search order */
    uint32_t nregistries, cap_registries;
    uint32_t *parent;         /* BFS tree from the roots */
    uint32_t *order;          /* nodes in BFS order, nreached of them */
    uint32_t *anchor;         /* survivors: nearest pre-existing holder */
    uint32_t nreached;
    uint32_t nsurvivors;
    PyObject *self_obj;       /* memhound's census object: never a node */
    const char *skip_prefix;  /* frames of files under it are memhound's own */
    size_t skip_len;
    size_t mem_now, mem_peak; /* bytes of this graph's own arrays */
    double t_nodes, t_edges, t_bfs;
} mh_heap_graph;

/* Build the graph of every object not in `census` or reachable through a
 * GC-tracked container, then run the root search.  The census is freed once
 * the edges are known (before the search, to lower the peak memory);
 * `self_obj` (the census object) is never a node.
 * Returns 0, or -1 with an exception set (the graph is then freed). */
int mh_heap_graph_build(mh_heap_graph *g, mh_heap_set *census,
                        PyObject *self_obj, const char *skip_prefix);
void mh_heap_graph_free(mh_heap_graph *g);

/* Once the build returns, other threads may run (the leak finder runs
 * Python code while the graph is open) and free any object the graph only
 * points to.  mh_heap_graph_hold() takes a reference to every node that is
 * read after the build -- the survivors and every node on their paths from
 * the roots (MH_NODE_HELD) -- and to the code objects of the thread-stack
 * roots; only those may be dereferenced afterwards.  Call it in the same
 * GIL-holding stretch as the build.  mh_heap_graph_unhold() drops them
 * (it may run finalizers of objects that died meanwhile). */
void mh_heap_graph_hold(mh_heap_graph *g);
void mh_heap_graph_unhold(mh_heap_graph *g);
/* References held from outside Python objects (refcount - found, minus
 * the graph's own reference of a held node).  Held nodes only, after the
 * build. */
Py_ssize_t mh_heap_graph_extra(const mh_heap_graph *g, uint32_t i);

/* ---- registry roots (heap_roots.c) --------------------------------------
 * The interpreter's registries: os.register_at_fork and atexit callbacks,
 * signal handlers, sys.modules, codec search functions, warnings filters
 * and registries, threading's bookkeeping, audit hooks.  Called once per
 * registry object with its root kind (heap_kinds.h) and label; GIL held, no
 * Python code of user objects runs (only module dicts are read, and the
 * builtin _signal.getsignal() is called).  Returns 0, or -1 when `fn` did. */
typedef int (*mh_registry_fn)(PyObject *obj, int kind, const char *label, void *arg);
int mh_heap_registries_each(mh_registry_fn fn, void *arg);

/* The index of the registry whose node is `node`, or -1 (heap_graph.c). */
int mh_heap_registry_of(const mh_heap_graph *g, uint32_t node);

/* The path from the root to node `i` as a list of
 * (kind, label, target type name, target is a survivor) tuples; the first
 * tuple is the root.  Paths longer than MH_PATH_MAX edges keep their two
 * ends around one ("elided", "N more steps", "", False) tuple. */
#define MH_PATH_MAX 64
/* New reference, or NULL with an exception set. */
PyObject *mh_heap_path(const mh_heap_graph *g, uint32_t i);

/* The blocks allocated since the census (mh_tracer_mark_blocks()) and still
 * alive whose object is not a node of `g` (heap_orphans.c): a list of
 * (type or None, creation frames, count, bytes, kind) per kind ("object",
 * "interned", "raw"), type and traceback.  Blocks whose newest frame is in
 * a file under `skip` are left out.  New reference, or NULL with an
 * exception set. */
PyObject *mh_heap_orphans(const mh_heap_graph *g, const char *skip);


/* Grouping (heap_group.c): (tree, cross) where tree lists
 * (node, survivor parent or -1, root kind, thread id) per survivor -- root
 * kind and thread id only for heads, the survivors whose parent is old:
 * 0 unknown, 1 module, 2 class, 3 thread stack, 4 external, 5 registry
 * (then the "thread id" is the registry's mh_root_kind) -- and cross
 * lists (survivor, head) for the edges from a survivor to a head that is
 * not the head's parent.  New reference, or NULL with an exception set. */
PyObject *mh_heap_group_links(const mh_heap_graph *g);
/* Creation traceback of the storage block of a list, dict or set -- the
 * line that last grew it -- or None (heap_growth.c).  New reference. */
PyObject *mh_heap_storage_creation(PyObject *container);

#endif
