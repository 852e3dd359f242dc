/* flame.c -- the HTML report's call tree (SnapshotData.flame_tree()).
 *
 * The flame graph is the per-traceback totals merged into a prefix tree
 * keyed by location, root = oldest frame, returned as flat lists: no Python
 * object per trace or per traceback.  It is built one level at a time (no
 * recursion on traceback depth): each node owns a contiguous run of a
 * member permutation, split by the member's location at the current depth
 * in first-seen order (a stable counting sort), so node and frame numbering
 * is exactly that of the Python builder in report/_aggregate.py.  Groups
 * smaller than `threshold` are folded into their parent and never walked
 * deeper.  Locations are dense ids (snapshot_group.h), so the split needs
 * no hash table: a stamp per location says whether the current node has
 * seen it.  The caller may name root frames to leave out and files whose
 * frames collapse into their caller (root_strip); this file knows nothing of
 * who put them there.
 *
 * Costs: O(sum of walked depths) time, ~40 bytes per distinct traceback of
 * temporaries, Python objects only for the results.
 */
#include "flame.h"
#include "memory.h"
#include "snapshot_group.h"

#include <stdlib.h>
#include <string.h>

typedef struct {
    const uint32_t **seq;       /* per member: locations, oldest first */
    uint32_t *len;
    uint64_t *size, *count;
    size_t n;
} mh_flame_members;

typedef struct {
    uint32_t *parent, *fid;     /* MH_NONE32 for the root */
    uint64_t *size, *count;
    size_t n, cap_p, cap_f, cap_s, cap_c;
} mh_flame_nodes;

typedef struct {
    uint32_t node;
    size_t start, n;            /* run of the member permutation */
} mh_flame_run;

static void
mh_flame_nodes_free(mh_flame_nodes *t)
{
    mh_mem_free(t->parent, t->cap_p * sizeof(uint32_t));
    mh_mem_free(t->fid, t->cap_f * sizeof(uint32_t));
    mh_mem_free(t->size, t->cap_s * sizeof(uint64_t));
    mh_mem_free(t->count, t->cap_c * sizeof(uint64_t));
}

static int64_t
mh_flame_node_add(mh_flame_nodes *t, uint32_t parent, uint32_t fid, uint64_t size, uint64_t count)
{
    size_t n = t->n + 1;
    if (n >= MH_NONE32) {
        PyErr_NoMemory();
        return -1;
    }
    if (MH_GROW(t->parent, t->cap_p, n) < 0 || MH_GROW(t->fid, t->cap_f, n) < 0
        || MH_GROW(t->size, t->cap_s, n) < 0 || MH_GROW(t->count, t->cap_c, n) < 0)
        return -1;
    t->parent[t->n] = parent;
    t->fid[t->n] = fid;
    t->size[t->n] = size;
    t->count[t->n] = count;
    return (int64_t)t->n++;
}

/* Per location: its group in the node being split (valid while `stamp` is
 * that node's), and its frame id in the tree (MH_NONE32 until it has one). */
typedef struct {
    uint32_t stamp, group, frame;
} mh_flame_locslot;

/* Per group of the node being split: a child-to-be. */
typedef struct {
    uint32_t loc, n, node;      /* node: MH_NONE32 when folded */
    size_t off;                 /* where its members go in the next level */
    uint64_t size, count;
} mh_flame_child;

/* Scratch of the level splits. */
typedef struct {
    mh_flame_locslot *loc;      /* per location */
    mh_flame_child *child;      /* per location: a node has at most one child each */
    uint32_t *floc;             /* per tree frame: its location */
    size_t nloc, nframes;
} mh_flame_split;

static void
mh_flame_split_free(mh_flame_split *sp)
{
    size_t n = sp->nloc ? sp->nloc : 1;
    mh_mem_free(sp->loc, n * sizeof(mh_flame_locslot));
    mh_mem_free(sp->child, n * sizeof(mh_flame_child));
    mh_mem_free(sp->floc, n * sizeof(uint32_t));
}

static int
mh_flame_split_init(mh_flame_split *sp, size_t nloc)
{
    size_t n = nloc ? nloc : 1;
    sp->nloc = nloc;
    sp->loc = mh_mem_malloc(n * sizeof(mh_flame_locslot));
    sp->child = mh_mem_malloc(n * sizeof(mh_flame_child));
    sp->floc = mh_mem_malloc(n * sizeof(uint32_t));
    if (!sp->loc || !sp->child || !sp->floc) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < n; i++)
        sp->loc[i] = (mh_flame_locslot){0, 0, MH_NONE32};
    return 0;
}

/* Split one node's run at `depth` into children, appending the kept
 * children's runs to *next (members placed in `out`). */
static int
mh_flame_split_run(mh_flame_split *sp, const mh_flame_members *m, mh_flame_nodes *t,
                   const mh_flame_run *run, const uint32_t *in, uint32_t *out, size_t *nout,
                   mh_flame_run *next, size_t *nnext, uint32_t depth, double threshold,
                   uint64_t *folded)
{
    size_t nchild = 0;
    uint32_t stamp = run->node + 1;
    for (size_t i = run->start; i < run->start + run->n; i++) {
        uint32_t mi = in[i];
        if (m->len[mi] <= depth)
            continue;
        mh_flame_locslot *ls = &sp->loc[m->seq[mi][depth]];
        if (ls->stamp != stamp) {
            ls->stamp = stamp;
            ls->group = (uint32_t)nchild;
            sp->child[nchild++] = (mh_flame_child){m->seq[mi][depth], 0, MH_NONE32, 0, 0, 0};
        }
        mh_flame_child *c = &sp->child[ls->group];
        c->n++;
        c->size += m->size[mi];
        c->count += m->count[mi];
    }
    for (size_t ci = 0; ci < nchild; ci++) {
        mh_flame_child *c = &sp->child[ci];
        if (c->size == 0 || (double)c->size < threshold) {
            (*folded)++;
            continue;
        }
        mh_flame_locslot *ls = &sp->loc[c->loc];
        if (ls->frame == MH_NONE32) {
            ls->frame = (uint32_t)sp->nframes;
            sp->floc[sp->nframes++] = c->loc;
        }
        int64_t node = mh_flame_node_add(t, run->node, ls->frame, c->size, c->count);
        if (node < 0)
            return -1;
        c->node = (uint32_t)node;
        c->off = *nout;
        next[*nnext] = (mh_flame_run){(uint32_t)node, *nout, c->n};
        (*nnext)++;
        *nout += c->n;
    }
    for (size_t i = run->start; i < run->start + run->n; i++) {
        uint32_t mi = in[i];
        if (m->len[mi] <= depth)
            continue;
        mh_flame_child *c = &sp->child[sp->loc[m->seq[mi][depth]].group];
        if (c->node != MH_NONE32)
            out[c->off++] = mi;
    }
    return 0;
}

/* Breadth-first build: level after level until no run goes deeper. */
static int
mh_flame_build(mh_flame_split *sp, const mh_flame_members *m, mh_flame_nodes *t,
              double threshold, uint64_t *folded)
{
    size_t n = m->n ? m->n : 1;
    uint32_t *in = mh_mem_malloc(n * sizeof(uint32_t));
    uint32_t *out = mh_mem_malloc(n * sizeof(uint32_t));
    mh_flame_run *cur = mh_mem_malloc(n * sizeof(mh_flame_run));
    mh_flame_run *next = mh_mem_malloc(n * sizeof(mh_flame_run));
    int rc = -1;
    if (!in || !out || !cur || !next) {
        PyErr_NoMemory();
        goto done;
    }
    for (size_t i = 0; i < m->n; i++)
        in[i] = (uint32_t)i;
    size_t ncur = 1;
    cur[0].node = 0;
    cur[0].start = 0;
    cur[0].n = m->n;
    for (uint32_t depth = 0; ncur; depth++) {
        size_t nnext = 0, nout = 0;
        for (size_t r = 0; r < ncur; r++) {
            if (mh_flame_split_run(sp, m, t, &cur[r], in, out, &nout, next, &nnext, depth,
                                  threshold, folded) < 0)
                goto done;
        }
        uint32_t *tp = in; in = out; out = tp;
        mh_flame_run *rp = cur; cur = next; next = rp;
        ncur = nnext;
    }
    rc = 0;
done:
    mh_mem_free(in, n * sizeof(uint32_t));
    mh_mem_free(out, n * sizeof(uint32_t));
    mh_mem_free(cur, n * sizeof(mh_flame_run));
    mh_mem_free(next, n * sizeof(mh_flame_run));
    return rc;
}

/* Frames to leave out (flame_tree()'s root_strip): flag[uid] says whether
 * a string is one of `files` (MH_STRIP_FILE), `then_files` (MH_STRIP_THEN)
 * or `collapse` (MH_STRIP_COLLAPSE). */
enum { MH_STRIP_FILE = 1, MH_STRIP_THEN = 2, MH_STRIP_COLLAPSE = 4 };

typedef struct {
    uint8_t *flag;              /* per unified string; NULL: strip nothing */
    size_t nflag;
    uint32_t depth;
    int collapse;               /* some string is MH_STRIP_COLLAPSE */
    uint32_t *pool;             /* collapsed copies of the members' locations */
    size_t npool;
} mh_flame_strip;

/* Where the kept part of a traceback starts: after the last `files` frame
 * among the first `depth` from the root, and the `then_files` frames right
 * after it. */
static uint32_t
mh_flame_strip_start(const mh_flame_strip *sp, const mh_group *g, const uint32_t *seq,
                     uint32_t len)
{
    uint32_t start = 0;
    for (uint32_t i = 0; i < len && i < sp->depth; i++) {
        if (sp->flag[g->loc[seq[i]].uid] & MH_STRIP_FILE)
            start = i + 1;
    }
    while (start && start < len && (sp->flag[g->loc[seq[start]].uid] & MH_STRIP_THEN))
        start++;
    return start;
}

static int
mh_flame_strip_files(PyObject *files)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(files); j++) {
        if (!PyUnicode_Check(PyTuple_GET_ITEM(files, j))) {
            PyErr_SetString(PyExc_TypeError, "flame_tree(): root_strip files must be str");
            return -1;
        }
    }
    return 0;
}

static void
mh_flame_strip_mark(mh_flame_strip *sp, const mh_group *g, PyObject *files, uint8_t bit)
{
    for (size_t u = 0; u < g->nu; u++) {
        for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(files); j++) {
            if (mh_snapshot_str_eq(g->ustr[u], PyTuple_GET_ITEM(files, j)))
                sp->flag[u] |= bit;
        }
    }
}

/* Flag the strings of `root_strip` (None, or (files, then_files, depth)). */
static int
mh_flame_strip_init(mh_flame_strip *sp, const mh_group *g, PyObject *root_strip)
{
    PyObject *files, *then_files, *collapse = NULL;
    if (root_strip == Py_None)
        return 0;
    if (!PyTuple_Check(root_strip)) {
        PyErr_SetString(PyExc_TypeError, "flame_tree(): root_strip must be None or "
                        "(files, then_files, depth[, collapse])");
        return -1;
    }
    if (!PyArg_ParseTuple(root_strip, "O!O!I|O!:flame_tree root_strip", &PyTuple_Type, &files,
                          &PyTuple_Type, &then_files, &sp->depth, &PyTuple_Type, &collapse)
        || mh_flame_strip_files(files) < 0 || mh_flame_strip_files(then_files) < 0
        || (collapse && mh_flame_strip_files(collapse) < 0))
        return -1;
    sp->nflag = g->nu ? g->nu : 1;
    sp->flag = mh_mem_calloc(sp->nflag, 1);
    if (sp->flag == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mh_flame_strip_mark(sp, g, files, MH_STRIP_FILE);
    mh_flame_strip_mark(sp, g, then_files, MH_STRIP_THEN);
    if (collapse != NULL) {
        mh_flame_strip_mark(sp, g, collapse, MH_STRIP_COLLAPSE);
        for (size_t u = 0; u < g->nu && !sp->collapse; u++)
            sp->collapse = (sp->flag[u] & MH_STRIP_COLLAPSE) != 0;
    }
    return 0;
}

static PyObject *
mh_flame_u64_list(const uint64_t *v, const uint32_t *index, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromUnsignedLongLong(v[index ? index[i] : i]);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

static PyObject *
mh_flame_i32_list(const uint32_t *v, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        PyObject *x = PyLong_FromLong(v[i] == MH_NONE32 ? -1L : (long)v[i]);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

/* [(filename, lineno, function or None)] of locations. */
static PyObject *
mh_flame_loc_list(const mh_group *g, const uint32_t *locs, size_t n)
{
    PyObject *list = PyList_New((Py_ssize_t)n);
    for (size_t i = 0; list && i < n; i++) {
        const mh_group_loc *l = &g->loc[locs[i]];
        PyObject *x = Py_BuildValue("(OlO)", g->ustr[l->uid], (long)l->lineno,
                                    l->function ? l->function : Py_None);
        if (x == NULL)
            Py_CLEAR(list);
        else
            PyList_SET_ITEM(list, (Py_ssize_t)i, x);
    }
    return list;
}

typedef struct {
    uint64_t *size, *count;      /* per location */
    uint32_t *order;             /* leaf locations: first seen, then sorted */
    size_t n, nloc;
} mh_flame_sites;

static void
mh_flame_sites_free(mh_flame_sites *st)
{
    size_t n = st->nloc ? st->nloc : 1;
    mh_mem_free(st->size, n * sizeof(uint64_t));
    mh_mem_free(st->count, n * sizeof(uint64_t));
    mh_mem_free(st->order, n * sizeof(uint32_t));
}

static void
mh_flame_members_free(mh_flame_members *m, size_t cap)
{
    mh_mem_free(m->seq, cap * sizeof(*m->seq));
    mh_mem_free(m->len, cap * sizeof(uint32_t));
    mh_mem_free(m->size, cap * sizeof(uint64_t));
    mh_mem_free(m->count, cap * sizeof(uint64_t));
}

/* Members (sorted distinct tracebacks, root frames stripped, empty ones
 * mapped to `unknown`) and leaf sums per location. */
static void
mh_flame_members_fill(mh_group *g, const uint32_t *order, size_t norder,
                      const mh_flame_strip *strip, const uint32_t *unknown, mh_flame_members *m,
                      mh_flame_sites *st)
{
    for (size_t i = 0; i < norder; i++) {
        uint32_t k = order[i];
        const uint32_t *seq = g->kpool + g->kstart[k];
        uint32_t len = g->klen[k];
        if (strip->flag) {
            uint32_t start = mh_flame_strip_start(strip, g, seq, len);
            seq += start;
            len -= start;
        }
        if (len == 0) {
            seq = unknown;
            len = 1;
        }
        m->seq[i] = seq;
        m->len[i] = len;
        m->size[i] = g->ksize[0][k];
        m->count[i] = g->kcount[0][k];
        uint32_t leaf = seq[len - 1];
        if (st->count[leaf] == 0 && st->size[leaf] == 0)
            st->order[st->n++] = leaf;
        st->size[leaf] += m->size[i];
        st->count[leaf] += m->count[i];
    }
    m->n = norder;
}

/* Is the location of a non-leaf frame one that collapses into its caller? */
static inline int
mh_flame_collapses(const mh_flame_strip *sp, const mh_group *g, uint32_t loc)
{
    return (sp->flag[g->loc[loc].uid] & MH_STRIP_COLLAPSE) != 0;
}

/* Leave out the collapsing frames of every member but its leaf (what a
 * site allocated stays its own): members that have any get a copy in
 * sp->pool, the others keep pointing into the grouping's pool. */
static int
mh_flame_members_collapse(mh_flame_strip *sp, const mh_group *g, mh_flame_members *m)
{
    if (!sp->collapse)
        return 0;
    size_t need = 0;
    for (size_t i = 0; i < m->n; i++) {
        for (uint32_t j = 0; j + 1 < m->len[i]; j++) {
            if (mh_flame_collapses(sp, g, m->seq[i][j])) {
                need += m->len[i];
                break;
            }
        }
    }
    if (need == 0)
        return 0;
    sp->pool = mh_mem_malloc(need * sizeof(uint32_t));
    if (sp->pool == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    sp->npool = need;
    size_t used = 0;
    for (size_t i = 0; i < m->n; i++) {
        const uint32_t *seq = m->seq[i];
        uint32_t len = m->len[i], j = 0;
        while (j + 1 < len && !mh_flame_collapses(sp, g, seq[j]))
            j++;
        if (j + 1 >= len)
            continue;
        uint32_t *out = sp->pool + used, n = 0;
        for (uint32_t k = 0; k + 1 < len; k++) {
            if (!mh_flame_collapses(sp, g, seq[k]))
                out[n++] = seq[k];
        }
        out[n++] = seq[len - 1];
        m->seq[i] = out;
        m->len[i] = n;
        used += len;
    }
    return 0;
}

typedef struct {
    uint64_t size, count;
    uint32_t pos, loc;
} mh_flame_site_rec;

static int
mh_flame_site_cmp(const void *a, const void *b)
{
    const mh_flame_site_rec *x = a, *y = b;
    MH_CMP_DESC(x->size, y->size);
    MH_CMP_DESC(x->count, y->count);
    return (x->pos > y->pos) - (x->pos < y->pos);
}

/* Sites biggest first, ties in first-seen order (what the report's stable
 * sort of the first-seen dict gives), so Python sorts presorted data. */
static int
mh_flame_sites_sort(mh_flame_sites *st)
{
    mh_flame_site_rec *rec = mh_mem_malloc((st->n ? st->n : 1) * sizeof(mh_flame_site_rec));
    if (rec == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t i = 0; i < st->n; i++) {
        uint32_t l = st->order[i];
        rec[i] = (mh_flame_site_rec){st->size[l], st->count[l], (uint32_t)i, l};
    }
    qsort(rec, st->n, sizeof(mh_flame_site_rec), mh_flame_site_cmp);
    for (size_t i = 0; i < st->n; i++)
        st->order[i] = rec[i].loc;
    mh_mem_free(rec, (st->n ? st->n : 1) * sizeof(mh_flame_site_rec));
    return 0;
}

static PyObject *
mh_flame_result(const mh_group *g, const mh_flame_nodes *t, const mh_flame_split *sp,
               const mh_flame_sites *st, uint64_t folded)
{
    PyObject *frames = mh_flame_loc_list(g, sp->floc, sp->nframes);
    PyObject *parent = frames ? mh_flame_i32_list(t->parent, t->n) : NULL;
    PyObject *fid = parent ? mh_flame_i32_list(t->fid, t->n) : NULL;
    PyObject *size = fid ? mh_flame_u64_list(t->size, NULL, t->n) : NULL;
    PyObject *count = size ? mh_flame_u64_list(t->count, NULL, t->n) : NULL;
    PyObject *sites = count ? mh_flame_loc_list(g, st->order, st->n) : NULL;
    PyObject *ssize = sites ? mh_flame_u64_list(st->size, st->order, st->n) : NULL;
    PyObject *scount = ssize ? mh_flame_u64_list(st->count, st->order, st->n) : NULL;
    if (scount == NULL) {
        Py_XDECREF(frames);
        Py_XDECREF(parent);
        Py_XDECREF(fid);
        Py_XDECREF(size);
        Py_XDECREF(count);
        Py_XDECREF(sites);
        Py_XDECREF(ssize);
        return NULL;
    }
    return Py_BuildValue("(NNNNNKNNN)", frames, parent, fid, size, count,
                         (unsigned long long)folded, sites, ssize, scount);
}

/* Members and sites sized for the grouping context `g`. */
static int
mh_flame_alloc(const mh_group *g, size_t norder, mh_flame_members *m, size_t *mcap,
               mh_flame_sites *st)
{
    size_t nloc = g->nloc ? g->nloc : 1;
    *mcap = norder ? norder : 1;
    m->seq = mh_mem_malloc(*mcap * sizeof(*m->seq));
    m->len = mh_mem_malloc(*mcap * sizeof(uint32_t));
    m->size = mh_mem_malloc(*mcap * sizeof(uint64_t));
    m->count = mh_mem_malloc(*mcap * sizeof(uint64_t));
    st->nloc = g->nloc;
    st->size = mh_mem_calloc(nloc, sizeof(uint64_t));
    st->count = mh_mem_calloc(nloc, sizeof(uint64_t));
    st->order = mh_mem_malloc(nloc * sizeof(uint32_t));
    if (!m->seq || !m->len || !m->size || !m->count || !st->size || !st->count || !st->order) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

/* The traceback grouping of `s` plus the location ("<unknown>", 0) that
 * stands for an empty traceback; *unknown is its location id. */
static int
mh_flame_group(mh_group *g, mh_snapshot_object *s, PyObject *unknown_name, uint32_t *unknown)
{
    uint32_t uhash;
    if (mh_snapshot_str_hash(unknown_name, &uhash) < 0)
        return -1;
    g->mode = MH_KEY_TRACEBACK;
    if (mh_group_add(g, s, 0) < 0)
        return -1;
    int64_t uid = mh_group_uid(g, unknown_name, uhash);
    int64_t uloc = uid < 0 ? -1 : mh_group_loc_id(g, (uint32_t)uid, 0, NULL);
    if (uloc < 0)
        return -1;
    *unknown = (uint32_t)uloc;
    return mh_group_rank(g);
}

PyObject *
mh_flame_py_tree(PyObject *snap, PyObject *args)
{
    double share;
    PyObject *root_strip = Py_None;
    if (!PyArg_ParseTuple(args, "d|O:flame_tree", &share, &root_strip))
        return NULL;
    mh_group g = {0};
    mh_flame_strip strip = {0};
    mh_flame_members m = {0};
    mh_flame_nodes t = {0};
    mh_flame_split sp = {0};
    mh_flame_sites st = {0};
    uint32_t *order = NULL, unknown = 0;
    size_t norder = 0, mcap = 0;
    uint64_t total_size = 0, total_count = 0, folded = 0;
    PyObject *result = NULL;
    PyObject *unknown_name = PyUnicode_FromString("<unknown>");
    if (unknown_name == NULL
        || mh_flame_group(&g, (mh_snapshot_object *)snap, unknown_name, &unknown) < 0
        || mh_group_order(&g, NULL, &order, &norder) < 0
        || mh_flame_strip_init(&strip, &g, root_strip) < 0
        || mh_flame_alloc(&g, norder, &m, &mcap, &st) < 0)
        goto done;
    mh_flame_members_fill(&g, order, norder, &strip, &unknown, &m, &st);
    if (mh_flame_members_collapse(&strip, &g, &m) < 0)
        goto done;
    for (size_t i = 0; i < m.n; i++) {
        total_size += m.size[i];
        total_count += m.count[i];
    }
    if (mh_flame_sites_sort(&st) < 0 || mh_flame_split_init(&sp, g.nloc) < 0
        || mh_flame_node_add(&t, MH_NONE32, MH_NONE32, total_size, total_count) < 0
        || mh_flame_build(&sp, &m, &t, (double)total_size * share, &folded) < 0)
        goto done;
    result = mh_flame_result(&g, &t, &sp, &st, folded);
done:
    mh_mem_free(strip.flag, strip.nflag);
    mh_mem_free(strip.pool, strip.npool * sizeof(uint32_t));
    mh_mem_free(order, (g.nkey ? g.nkey : 1) * sizeof(uint32_t));
    mh_flame_members_free(&m, mcap);
    mh_flame_sites_free(&st);
    mh_flame_split_free(&sp);
    mh_flame_nodes_free(&t);
    mh_group_free(&g);
    Py_XDECREF(unknown_name);    /* borrowed by g until here */
    return result;
}
