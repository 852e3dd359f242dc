/* pprof.c -- a snapshot as an uncompressed pprof profile (profile.proto).
 *
 * The profile is built from the same per-traceback totals as statistics()
 * (snapshot_group.c, traceback grouping), so whatever weights those totals
 * carry (sampled snapshots) the profile carries too, and a loaded file's
 * duplicate strings are unified by value.  Layout:
 *
 * - sample types inuse_objects/count and inuse_space/bytes (the default):
 *   memhound records live blocks only, so there are no alloc_* values;
 * - one sample per distinct traceback, location ids leaf first;
 * - one location per distinct (filename, lineno), one line each; one
 *   function per distinct (name, filename).  A frame whose function name is
 *   unknown (stdlib snapshots) gets a function named "file:line", so that
 *   pprof's per-function views do not merge unrelated lines;
 * - a traceback without frames gets the location "<unknown>", line 0, as
 *   tracemalloc exports it;
 * - the string table with "" first, time, period and comments as given.
 *
 * The encoder writes each message's length from its fields' sizes, so the
 * profile is written once, front to back, into memhound's own memory and
 * copied into one bytes object.  No mapping is written: there are no
 * addresses.  Costs: O(traces) for the one pass of the grouping, then
 * O(tracebacks + frames + strings).
 */
#include "pprof.h"

#include "memory.h"
#include "snapshot_group.h"

#include <stdio.h>
#include <string.h>

/* profile.proto field numbers */
enum {
    PB_SAMPLE_TYPE = 1, PB_SAMPLE = 2, PB_LOCATION = 4, PB_FUNCTION = 5, PB_STRING = 6,
    PB_TIME = 9, PB_PERIOD_TYPE = 11, PB_PERIOD = 12, PB_COMMENT = 13, PB_DEFAULT_TYPE = 14
};

typedef struct {
    uint8_t *p;
    size_t n, cap;
} mh_pbuf;

static int
mh_pbuf_reserve(mh_pbuf *b, size_t more)
{
    if (b->cap - b->n >= more)
        return 0;
    size_t cap = b->cap ? b->cap : 4096;
    while (cap - b->n < more)
        cap *= 2;
    uint8_t *p = mh_mem_realloc(b->p, b->cap, cap);
    if (p == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->p = p;
    b->cap = cap;
    return 0;
}

static size_t
mh_varint_len(uint64_t v)
{
    size_t n = 1;
    while (v >= 0x80) {
        v >>= 7;
        n++;
    }
    return n;
}

/* Room must have been reserved (10 bytes per varint at most). */
static void
mh_put_varint(mh_pbuf *b, uint64_t v)
{
    while (v >= 0x80) {
        b->p[b->n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b->p[b->n++] = (uint8_t)v;
}

/* Field numbers are below 16: every tag is one byte. */
static void
mh_put_key(mh_pbuf *b, int field, int wire)
{
    b->p[b->n++] = (uint8_t)((field << 3) | wire);
}

static size_t
mh_field_varint_len(uint64_t v)
{
    return 1 + mh_varint_len(v);
}

static void
mh_put_field_varint(mh_pbuf *b, int field, uint64_t v)
{
    mh_put_key(b, field, 0);
    mh_put_varint(b, v);
}

/* The key and length of a length-delimited field of `len` bytes. */
static int
mh_pbuf_open(mh_pbuf *b, int field, size_t len)
{
    if (mh_pbuf_reserve(b, 11 + len) < 0)
        return -1;
    mh_put_key(b, field, 2);
    mh_put_varint(b, len);
    return 0;
}

typedef struct {
    mh_group g;
    mh_pbuf out;
    mh_pbuf strings;          /* the string table, already encoded */
    uint32_t nstrings;
    uint32_t *usid;           /* pprof string of each unified string, or MH_NONE32 */
    size_t nusid;
    uint32_t *lname;          /* unified function name of each location, or MH_NONE32 */
    size_t nlname;
    /* functions, keyed by (name string, file string) */
    uint64_t *fkey;
    uint32_t *fhash;
    size_t nfunc, capfkey, capfhash;
    mh_index fidx;
    uint8_t *strip;           /* per unified string: MH_PPROF_STRIP_*, or NULL */
    uint32_t strip_depth;
} mh_pprof;

enum { MH_PPROF_STRIP_FILE = 1, MH_PPROF_STRIP_THEN = 2 };

static void
mh_pprof_free(mh_pprof *pp)
{
    mh_mem_free(pp->out.p, pp->out.cap);
    mh_mem_free(pp->strings.p, pp->strings.cap);
    mh_mem_free(pp->usid, pp->nusid * sizeof(uint32_t));
    mh_mem_free(pp->lname, pp->nlname * sizeof(uint32_t));
    mh_mem_free(pp->fkey, pp->capfkey * sizeof(uint64_t));
    mh_mem_free(pp->fhash, pp->capfhash * sizeof(uint32_t));
    mh_index_free(&pp->fidx);
    mh_mem_free(pp->strip, pp->nusid);
    mh_group_free(&pp->g);
}

/* Append a string to the table; its index, or -1 with an exception set. */
static int64_t
mh_pprof_add_bytes(mh_pprof *pp, const char *s, size_t len)
{
    if (mh_pbuf_open(&pp->strings, PB_STRING, len) < 0)
        return -1;
    memcpy(pp->strings.p + pp->strings.n, s, len);
    pp->strings.n += len;
    return pp->nstrings++;
}

/* UTF-8 of a str; lone surrogates (undecodable file names) are escaped, as
 * protobuf strings must be valid UTF-8. */
static int64_t
mh_pprof_add_str(mh_pprof *pp, PyObject *s, const char *suffix)
{
    Py_ssize_t len;
    PyObject *escaped = NULL;
    const char *utf8 = PyUnicode_AsUTF8AndSize(s, &len);
    if (utf8 == NULL) {
        PyErr_Clear();
        escaped = PyUnicode_AsEncodedString(s, "utf-8", "backslashreplace");
        if (escaped == NULL)
            return -1;
        utf8 = PyBytes_AS_STRING(escaped);
        len = PyBytes_GET_SIZE(escaped);
    }
    size_t slen = suffix ? strlen(suffix) : 0;
    int64_t sid;
    if (mh_pbuf_open(&pp->strings, PB_STRING, (size_t)len + slen) < 0) {
        sid = -1;
    }
    else {
        memcpy(pp->strings.p + pp->strings.n, utf8, (size_t)len);
        if (slen)       /* memcpy from NULL is undefined even for 0 bytes (UBSan) */
            memcpy(pp->strings.p + pp->strings.n + len, suffix, slen);
        pp->strings.n += (size_t)len + slen;
        sid = pp->nstrings++;
    }
    Py_XDECREF(escaped);
    return sid;
}

static int64_t
mh_pprof_usid(mh_pprof *pp, uint32_t uid)
{
    if (pp->usid[uid] == MH_NONE32) {
        int64_t sid = mh_pprof_add_str(pp, pp->g.ustr[uid], NULL);
        if (sid < 0)
            return -1;
        pp->usid[uid] = (uint32_t)sid;
    }
    return pp->usid[uid];
}

static int
mh_pprof_fkey_eq(const void *probe, uint32_t e)
{
    const void *const *c = probe;
    const mh_pprof *pp = c[0];
    return pp->fkey[e] == *(const uint64_t *)c[1];
}

static size_t
mh_pprof_value_type_len(uint32_t type, uint32_t unit)
{
    return mh_field_varint_len(type) + mh_field_varint_len(unit);
}

static int
mh_pprof_value_type(mh_pbuf *b, int field, uint32_t type, uint32_t unit)
{
    if (mh_pbuf_open(b, field, mh_pprof_value_type_len(type, unit)) < 0)
        return -1;
    mh_put_field_varint(b, 1, type);
    mh_put_field_varint(b, 2, unit);
    return 0;
}

/* Function id (1-based) of (name, file), written on first use. */
static int64_t
mh_pprof_function(mh_pprof *pp, uint32_t name, uint32_t file)
{
    uint64_t key = ((uint64_t)name << 32) | file;
    uint32_t h = mh_index_hash32(key);
    size_t slot;
    if (mh_index_reserve(&pp->fidx, pp->fhash, pp->nfunc) < 0)
        return -1;
    const void *probe[2] = {pp, &key};
    uint32_t e = mh_index_find(&pp->fidx, h, pp->fhash, mh_pprof_fkey_eq, probe, &slot);
    if (e != MH_INDEX_NONE)
        return (int64_t)e + 1;
    if (MH_GROW(pp->fkey, pp->capfkey, pp->nfunc + 1) < 0
        || MH_GROW(pp->fhash, pp->capfhash, pp->nfunc + 1) < 0)
        return -1;
    e = (uint32_t)pp->nfunc++;
    pp->fkey[e] = key;
    pp->fhash[e] = h;
    mh_index_insert(&pp->fidx, slot, e);
    uint64_t id = (uint64_t)e + 1;
    size_t len = mh_field_varint_len(id) + 2 * mh_field_varint_len(name)
                 + mh_field_varint_len(file);
    if (mh_pbuf_open(&pp->out, PB_FUNCTION, len) < 0)
        return -1;
    mh_put_field_varint(&pp->out, 1, id);
    mh_put_field_varint(&pp->out, 2, name);
    mh_put_field_varint(&pp->out, 3, name);     /* system_name */
    mh_put_field_varint(&pp->out, 4, file);
    return (int64_t)id;
}

static int
mh_pprof_location(mh_pprof *pp, uint64_t id, uint64_t function, int64_t lineno)
{
    size_t line_len = mh_field_varint_len(function) + mh_field_varint_len((uint64_t)lineno);
    size_t len = mh_field_varint_len(id) + 1 + mh_varint_len(line_len) + line_len;
    if (mh_pbuf_open(&pp->out, PB_LOCATION, len) < 0)
        return -1;
    mh_put_field_varint(&pp->out, 1, id);
    mh_put_key(&pp->out, 4, 2);
    mh_put_varint(&pp->out, line_len);
    mh_put_field_varint(&pp->out, 1, function);
    mh_put_field_varint(&pp->out, 2, (uint64_t)lineno);
    return 0;
}

/* Every location of the grouping (ids 1..nloc). */
static int
mh_pprof_locations(mh_pprof *pp)
{
    mh_group *g = &pp->g;
    for (size_t l = 0; l < g->nloc; l++) {
        const mh_group_loc *loc = &g->loc[l];
        int64_t file = mh_pprof_usid(pp, loc->uid), name;
        if (file < 0)
            return -1;
        if (pp->lname[l] != MH_NONE32) {
            name = mh_pprof_usid(pp, pp->lname[l]);
        }
        else {
            char suffix[16];
            snprintf(suffix, sizeof suffix, ":%d", (int)loc->lineno);
            name = mh_pprof_add_str(pp, g->ustr[loc->uid], suffix);
        }
        if (name < 0)
            return -1;
        int64_t fid = mh_pprof_function(pp, (uint32_t)name, (uint32_t)file);
        if (fid < 0 || mh_pprof_location(pp, l + 1, (uint64_t)fid, loc->lineno) < 0)
            return -1;
    }
    return 0;
}

/* Where the kept part of a key (oldest first) starts: after the last
 * root_strip file among the first `depth` frames and the then_files frames
 * right after it; 0 when that would leave nothing. */
static uint32_t
mh_pprof_strip_start(const mh_pprof *pp, const uint32_t *seq, uint32_t len)
{
    if (pp->strip == NULL)
        return 0;
    uint32_t start = 0;
    for (uint32_t i = 0; i < len && i < pp->strip_depth; i++) {
        if (pp->strip[pp->g.loc[seq[i]].uid] & MH_PPROF_STRIP_FILE)
            start = i + 1;
    }
    while (start && start < len && (pp->strip[pp->g.loc[seq[start]].uid] & MH_PPROF_STRIP_THEN))
        start++;
    return start < len ? start : 0;
}

static int
mh_pprof_strip_mark(mh_pprof *pp, PyObject *files, uint8_t bit)
{
    for (Py_ssize_t j = 0; j < PyTuple_GET_SIZE(files); j++) {
        PyObject *f = PyTuple_GET_ITEM(files, j);
        if (!PyUnicode_Check(f)) {
            PyErr_SetString(PyExc_TypeError, "pprof_encode(): root_strip files must be str");
            return -1;
        }
        for (size_t u = 0; u < pp->g.nu; u++) {
            if (mh_snapshot_str_eq(pp->g.ustr[u], f))
                pp->strip[u] |= bit;
        }
    }
    return 0;
}

static int
mh_pprof_strip_init(mh_pprof *pp, PyObject *root_strip)
{
    PyObject *files, *then_files;
    if (root_strip == Py_None)
        return 0;
    if (!PyTuple_Check(root_strip)) {
        PyErr_SetString(PyExc_TypeError,
                        "pprof_encode(): root_strip must be None or (files, then_files, depth)");
        return -1;
    }
    if (!PyArg_ParseTuple(root_strip, "O!O!I:pprof_encode root_strip", &PyTuple_Type, &files,
                          &PyTuple_Type, &then_files, &pp->strip_depth))
        return -1;
    pp->strip = mh_mem_calloc(pp->nusid, 1);
    if (pp->strip == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return mh_pprof_strip_mark(pp, files, MH_PPROF_STRIP_FILE) < 0
           || mh_pprof_strip_mark(pp, then_files, MH_PPROF_STRIP_THEN) < 0 ? -1 : 0;
}

/* One sample per key: location ids leaf first, values (count, size). */
static int
mh_pprof_samples(mh_pprof *pp, uint64_t unknown_loc)
{
    mh_group *g = &pp->g;
    for (size_t k = 0; k < g->nkey; k++) {
        uint64_t count = g->kcount[0][k], size = g->ksize[0][k];
        if (count == 0 && size == 0)
            continue;
        const uint32_t *seq = g->kpool + g->kstart[k];
        uint32_t len = g->klen[k];
        uint32_t start = mh_pprof_strip_start(pp, seq, len);
        size_t locs_len = 0;
        if (len == 0)
            locs_len = mh_varint_len(unknown_loc);
        for (uint32_t i = start; i < len; i++)
            locs_len += mh_varint_len((uint64_t)seq[i] + 1);
        size_t values_len = mh_varint_len(count) + mh_varint_len(size);
        size_t total = 1 + mh_varint_len(locs_len) + locs_len
                       + 1 + mh_varint_len(values_len) + values_len;
        if (mh_pbuf_open(&pp->out, PB_SAMPLE, total) < 0)
            return -1;
        mh_put_key(&pp->out, 1, 2);
        mh_put_varint(&pp->out, locs_len);
        if (len == 0)
            mh_put_varint(&pp->out, unknown_loc);
        for (uint32_t i = len; i > start; i--)
            mh_put_varint(&pp->out, (uint64_t)seq[i - 1] + 1);
        mh_put_key(&pp->out, 2, 2);
        mh_put_varint(&pp->out, values_len);
        mh_put_varint(&pp->out, count);
        mh_put_varint(&pp->out, size);
    }
    return 0;
}

static int
mh_pprof_build(mh_pprof *pp, mh_snapshot_object *snap, long long time_nanos, long long period,
               PyObject *comments, PyObject *root_strip)
{
    mh_group *g = &pp->g;
    g->mode = MH_KEY_TRACEBACK;
    if (mh_group_add(g, snap, 0) < 0)
        return -1;
    /* Function names join the unified strings, so that equal names share
     * one pprof string. */
    pp->nlname = g->nloc ? g->nloc : 1;
    pp->lname = mh_mem_malloc(pp->nlname * sizeof(uint32_t));
    if (pp->lname == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int has_unknown = 0;
    for (size_t k = 0; k < g->nkey; k++)
        has_unknown |= g->klen[k] == 0;
    for (size_t l = 0; l < g->nloc; l++) {
        pp->lname[l] = MH_NONE32;
        PyObject *fn = g->loc[l].function;
        if (fn != NULL) {
            uint32_t h;
            int64_t u;
            if (mh_snapshot_str_hash(fn, &h) < 0 || (u = mh_group_uid(g, fn, h)) < 0)
                return -1;
            pp->lname[l] = (uint32_t)u;
        }
    }
    pp->nusid = g->nu ? g->nu : 1;
    pp->usid = mh_mem_malloc(pp->nusid * sizeof(uint32_t));
    if (pp->usid == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    memset(pp->usid, 0xff, pp->nusid * sizeof(uint32_t));
    if (mh_pprof_strip_init(pp, root_strip) < 0)
        return -1;

    static const char *const fixed[] = {"", "inuse_objects", "count", "inuse_space", "bytes",
                                        "space"};
    for (size_t i = 0; i < sizeof fixed / sizeof *fixed; i++) {
        if (mh_pprof_add_bytes(pp, fixed[i], strlen(fixed[i])) < 0)
            return -1;
    }
    if (mh_pprof_value_type(&pp->out, PB_SAMPLE_TYPE, 1, 2) < 0
        || mh_pprof_value_type(&pp->out, PB_SAMPLE_TYPE, 3, 4) < 0
        || mh_pprof_locations(pp) < 0)
        return -1;
    uint64_t unknown_loc = g->nloc + 1;
    if (has_unknown) {
        int64_t s = mh_pprof_add_bytes(pp, "<unknown>", 9), fid;
        if (s < 0 || (fid = mh_pprof_function(pp, (uint32_t)s, (uint32_t)s)) < 0
            || mh_pprof_location(pp, unknown_loc, (uint64_t)fid, 0) < 0)
            return -1;
    }
    if (mh_pprof_samples(pp, unknown_loc) < 0)
        return -1;
    for (Py_ssize_t i = 0; i < PyTuple_GET_SIZE(comments); i++) {
        PyObject *c = PyTuple_GET_ITEM(comments, i);
        if (!PyUnicode_Check(c)) {
            PyErr_SetString(PyExc_TypeError, "pprof_encode(): comments must be str");
            return -1;
        }
        int64_t s = mh_pprof_add_str(pp, c, NULL);
        if (s < 0 || mh_pbuf_reserve(&pp->out, 11) < 0)
            return -1;
        mh_put_field_varint(&pp->out, PB_COMMENT, (uint64_t)s);
    }
    if (mh_pbuf_reserve(&pp->out, 40) < 0
        || mh_pprof_value_type(&pp->out, PB_PERIOD_TYPE, 5, 4) < 0)
        return -1;
    mh_put_field_varint(&pp->out, PB_TIME, (uint64_t)time_nanos);
    mh_put_field_varint(&pp->out, PB_PERIOD, (uint64_t)period);
    mh_put_field_varint(&pp->out, PB_DEFAULT_TYPE, 3);
    return 0;
}

PyObject *
mh_pprof_py_encode(PyObject *self, PyObject *args)
{
    PyObject *snap, *comments, *root_strip = Py_None;
    long long time_nanos, period;
    (void)self;
    if (!PyArg_ParseTuple(args, "O!LLO!|O:pprof_encode", &mh_snapshot_type, &snap, &time_nanos,
                          &period, &PyTuple_Type, &comments, &root_strip))
        return NULL;
    mh_pprof pp;
    memset(&pp, 0, sizeof pp);
    PyObject *result = NULL;
    if (mh_pprof_build(&pp, (mh_snapshot_object *)snap, time_nanos, period, comments,
                       root_strip) == 0) {
        result = PyBytes_FromStringAndSize(NULL, (Py_ssize_t)(pp.out.n + pp.strings.n));
        if (result != NULL) {
            char *p = PyBytes_AS_STRING(result);
            memcpy(p, pp.out.p, pp.out.n);
            memcpy(p + pp.out.n, pp.strings.p, pp.strings.n);
        }
    }
    mh_pprof_free(&pp);
    return result;
}
