/* snapshot_filter.c -- filter_traces() (mh_filter_*): tracemalloc's
 * Filter and DomainFilter semantics over a snapshot's tables.
 *
 * Filters run the fnmatch subset CPython uses, compiled once per filter;
 * the match result is cached per distinct string and per traceback, so a
 * million traces cost a million byte loads.  The result shares the
 * snapshot's tables and copies only the trace columns.
 */
#include "snapshot_filter.h"
#include "memory.h"
#include "snapshot_tables.h"

#include <string.h>

/* ---- fnmatch ----------------------------------------------------------- *
 *
 * The subset of fnmatch.translate() CPython's tracemalloc relies on, with
 * the same results (POSIX: case-sensitive, no separator folding): `*`,
 * `?`, `[set]`, `[!set]`, ranges, and the quirks of translate()'s range
 * handling (empty ranges dropped, `-` literal at the edges).  Compiled to
 * single-character tokens plus stars, matched by the classic
 * backtrack-to-last-star loop (equivalent to translate()'s atomic
 * `(?>.*?fixed)` groups because every token has width one). */

enum { MH_TOK_LIT, MH_TOK_ANY, MH_TOK_STAR, MH_TOK_CLASS, MH_TOK_NEVER };

typedef struct {
    uint8_t type, neg;
    Py_UCS4 c;
    uint32_t rstart, rcount;    /* ranges of a class */
} mh_filter_pat_tok;

typedef struct {
    mh_filter_pat_tok *tok;
    size_t ntok, captok;
    Py_UCS4 *ranges;            /* lo, hi pairs */
    size_t nranges, capranges;  /* counted in Py_UCS4 */
} mh_filter_pat;

#define MH_UNIT_JOIN 0xFFFFFFFEu    /* unescaped '-' between chunks */
#define MH_UNIT_DEL 0xFFFFFFFFu

static void
mh_filter_pat_free(mh_filter_pat *p)
{
    mh_mem_free(p->tok, p->captok * sizeof(mh_filter_pat_tok));
    mh_mem_free(p->ranges, p->capranges * sizeof(Py_UCS4));
    memset(p, 0, sizeof(*p));
}

static int
mh_filter_pat_add(mh_filter_pat *p, uint8_t type, Py_UCS4 c)
{
    if (type == MH_TOK_STAR && p->ntok && p->tok[p->ntok - 1].type == MH_TOK_STAR)
        return 0;
    if (MH_GROW(p->tok, p->captok, p->ntok + 1) < 0)
        return -1;
    mh_filter_pat_tok *t = &p->tok[p->ntok++];
    t->type = type;
    t->neg = 0;
    t->c = c;
    t->rstart = t->rcount = 0;
    return 0;
}

static int
mh_filter_pat_range(mh_filter_pat *p, Py_UCS4 lo, Py_UCS4 hi)
{
    if (MH_GROW(p->ranges, p->capranges, p->nranges + 2) < 0)
        return -1;
    p->ranges[p->nranges++] = lo;
    p->ranges[p->nranges++] = hi;
    p->tok[p->ntok - 1].rcount++;
    return 0;
}

/* Build the class token from translate()'s `stuff`, given as units
 * (literal code points, MH_UNIT_JOIN for an unescaped '-', MH_UNIT_DEL
 * for removed ones), the way sre parses it. */
static int
mh_filter_pat_class(mh_filter_pat *p, Py_UCS4 *u, size_t n)
{
    size_t m = 0;
    for (size_t i = 0; i < n; i++)
        if (u[i] != MH_UNIT_DEL)
            u[m++] = u[i];
    if (m == 0)
        return mh_filter_pat_add(p, MH_TOK_NEVER, 0);
    if (m == 1 && u[0] == '!')
        return mh_filter_pat_add(p, MH_TOK_ANY, 0);
    size_t i = 0;
    int neg = 0;
    if (u[0] == '!') {
        neg = 1;
        i = 1;
    }
    if (mh_filter_pat_add(p, MH_TOK_CLASS, 0) < 0)
        return -1;
    p->tok[p->ntok - 1].neg = (uint8_t)neg;
    p->tok[p->ntok - 1].rstart = (uint32_t)p->nranges;
    while (i < m) {
        Py_UCS4 lo = u[i] == MH_UNIT_JOIN ? '-' : u[i];
        i++;
        if (i < m && u[i] == MH_UNIT_JOIN) {
            i++;
            if (i >= m) {
                if (mh_filter_pat_range(p, lo, lo) < 0 || mh_filter_pat_range(p, '-', '-') < 0)
                    return -1;
                break;
            }
            Py_UCS4 hi = u[i] == MH_UNIT_JOIN ? '-' : u[i];
            i++;
            /* hi < lo is a re.error in CPython; the Python layer compiles
             * the pattern with fnmatch first, so this never matches. */
            if (hi >= lo && mh_filter_pat_range(p, lo, hi) < 0)
                return -1;
        }
        else if (mh_filter_pat_range(p, lo, lo) < 0) {
            return -1;
        }
    }
    return 0;
}

/* translate()'s handling of "[...]": pat[i] is the char after '['; j is
 * the closing ']'. */
static int
mh_filter_pat_bracket(mh_filter_pat *p, const Py_UCS4 *pat, size_t i, size_t j, Py_UCS4 *u)
{
    size_t n = 0;
    int dash = 0;
    for (size_t k = i; k < j; k++)
        dash |= pat[k] == '-';
    if (!dash) {
        for (size_t k = i; k < j; k++)
            u[n++] = pat[k];
        return mh_filter_pat_class(p, u, n);
    }
    size_t k = pat[i] == '!' ? i + 2 : i + 1;
    size_t ci = i;
    int nchunks = 0;
    /* Chunks separated by JOIN units. */
    for (;;) {
        size_t d = k;
        while (d < j && pat[d] != '-')
            d++;
        if (k >= j || d >= j)
            break;
        if (nchunks++)
            u[n++] = MH_UNIT_JOIN;
        for (size_t x = ci; x < d; x++)
            u[n++] = pat[x];
        ci = d + 1;
        k = d + 3;
    }
    if (ci < j) {
        if (nchunks++)
            u[n++] = MH_UNIT_JOIN;
        for (size_t x = ci; x < j; x++)
            u[n++] = pat[x];
    }
    else {
        u[n++] = '-';   /* chunks[-1] += '-' */
    }
    /* Remove empty ranges, from the last join backwards: drop the range's
     * two endpoints and the join (chunks[k-1][:-1] + chunks[k][1:]). */
    for (size_t x = n; x-- > 0;) {
        if (u[x] != MH_UNIT_JOIN)
            continue;
        size_t a = x, b = x;
        while (a > 0 && u[a - 1] == MH_UNIT_DEL)
            a--;
        while (b + 1 < n && u[b + 1] == MH_UNIT_DEL)
            b++;
        if (a == 0 || b + 1 >= n)
            continue;
        if (u[a - 1] > u[b + 1]) {
            u[a - 1] = MH_UNIT_DEL;
            u[x] = MH_UNIT_DEL;
            u[b + 1] = MH_UNIT_DEL;
        }
    }
    return mh_filter_pat_class(p, u, n);
}

static int
mh_filter_pat_compile(mh_filter_pat *p, PyObject *pattern)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(pattern);
    Py_UCS4 *pat = mh_mem_malloc(((size_t)n + 1) * sizeof(Py_UCS4));
    Py_UCS4 *u = mh_mem_malloc(((size_t)n * 2 + 4) * sizeof(Py_UCS4));
    int rc = -1;
    memset(p, 0, sizeof(*p));
    if (pat == NULL || u == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    if (PyUnicode_AsUCS4(pattern, pat, n + 1, 1) == NULL)
        goto done;
    for (size_t i = 0; i < (size_t)n;) {
        Py_UCS4 c = pat[i++];
        int r;
        if (c == '*') {
            r = mh_filter_pat_add(p, MH_TOK_STAR, 0);
        }
        else if (c == '?') {
            r = mh_filter_pat_add(p, MH_TOK_ANY, 0);
        }
        else if (c == '[') {
            size_t j = i;
            if (j < (size_t)n && pat[j] == '!')
                j++;
            if (j < (size_t)n && pat[j] == ']')
                j++;
            while (j < (size_t)n && pat[j] != ']')
                j++;
            if (j >= (size_t)n) {
                r = mh_filter_pat_add(p, MH_TOK_LIT, '[');
            }
            else {
                r = mh_filter_pat_bracket(p, pat, i, j, u);
                i = j + 1;
            }
        }
        else {
            r = mh_filter_pat_add(p, MH_TOK_LIT, c);
        }
        if (r < 0)
            goto done;
    }
    rc = 0;
done:
    mh_mem_free(pat, ((size_t)n + 1) * sizeof(Py_UCS4));
    mh_mem_free(u, ((size_t)n * 2 + 4) * sizeof(Py_UCS4));
    if (rc < 0)
        mh_filter_pat_free(p);
    return rc;
}

static inline int
mh_filter_pat_tok_match(const mh_filter_pat *p, const mh_filter_pat_tok *t, Py_UCS4 c)
{
    switch (t->type) {
    case MH_TOK_LIT:
        return t->c == c;
    case MH_TOK_ANY:
        return 1;
    case MH_TOK_CLASS: {
        const Py_UCS4 *r = p->ranges + t->rstart;
        for (uint32_t i = 0; i < t->rcount; i++)
            if (c >= r[2 * i] && c <= r[2 * i + 1])
                return !t->neg;
        return t->neg;
    }
    default:
        return 0;
    }
}

/* Match the first `len` characters of `s` against the whole pattern. */
static int
mh_filter_pat_match(const mh_filter_pat *p, PyObject *s, Py_ssize_t len)
{
    int kind = PyUnicode_KIND(s);
    const void *data = PyUnicode_DATA(s);
    size_t si = 0, pi = 0, n = (size_t)len, m = p->ntok;
    size_t star = (size_t)-1, mark = 0;
    while (si < n) {
        if (pi < m && p->tok[pi].type == MH_TOK_STAR) {
            star = pi++;
            mark = si;
        }
        else if (pi < m && mh_filter_pat_tok_match(p, &p->tok[pi], PyUnicode_READ(kind, data, si))) {
            pi++;
            si++;
        }
        else if (star != (size_t)-1) {
            pi = star + 1;
            si = ++mark;
        }
        else {
            return 0;
        }
    }
    while (pi < m && p->tok[pi].type == MH_TOK_STAR)
        pi++;
    return pi == m;
}

/* tracemalloc's _normalize_filename() on POSIX: "x.pyc" -> "x.py". */
static Py_ssize_t
mh_filter_normalized_length(PyObject *s)
{
    Py_ssize_t n = PyUnicode_GET_LENGTH(s);
    int kind = PyUnicode_KIND(s);
    const void *d = PyUnicode_DATA(s);
    if (n >= 4 && PyUnicode_READ(kind, d, n - 4) == '.' && PyUnicode_READ(kind, d, n - 3) == 'p'
        && PyUnicode_READ(kind, d, n - 2) == 'y' && PyUnicode_READ(kind, d, n - 1) == 'c')
        return n - 1;
    return n;
}

PyObject *
mh_filter_py_fnmatch(PyObject *cls, PyObject *args)
{
    PyObject *name, *pattern;
    mh_filter_pat p;
    (void)cls;
    if (!PyArg_ParseTuple(args, "UU:_fnmatch", &name, &pattern))
        return NULL;
    if (mh_filter_pat_compile(&p, pattern) < 0)
        return NULL;
    int r = mh_filter_pat_match(&p, name, mh_filter_normalized_length(name));
    mh_filter_pat_free(&p);
    return PyBool_FromLong(r);
}

/* ---- filter_traces() --------------------------------------------------- */

enum { MH_RES_UNKNOWN = 0, MH_RES_FALSE = 1, MH_RES_TRUE = 2, MH_RES_ERROR = 3 };

typedef struct {
    int domain_filter, inclusive, all_frames;
    int has_lineno, lineno_never, has_domain, domain_never;
    int32_t lineno;
    uint32_t domain;
    mh_filter_pat pat;
    uint8_t *fmatch;   /* per string: MH_RES_* of fnmatch */
    uint8_t *tbres;    /* per traceback: MH_RES_* of _match_traceback */
} mh_filter;

static int
mh_filter_int(PyObject *obj, const char *what, int64_t lo, int64_t hi, int *has, int *never,
            int64_t *out)
{
    *has = obj != Py_None;
    *never = 0;
    if (!*has)
        return 0;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "filter %s must be int or None, not %.200s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    int overflow;
    long long v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (v == -1 && PyErr_Occurred())
        return -1;
    if (overflow || v < lo || v > hi)
        *never = 1;   /* equal to no frame/trace */
    else
        *out = v;
    return 0;
}

static int
mh_filter_parse(mh_filter *f, PyObject *spec)
{
    PyObject *pattern, *lineno, *domain;
    int64_t v = 0;
    memset(f, 0, sizeof(*f));
    if (!PyArg_ParseTuple(spec, "ppOOpO:filter spec", &f->domain_filter, &f->inclusive,
                          &pattern, &lineno, &f->all_frames, &domain))
        return -1;
    if (mh_filter_int(domain, "domain", 0, UINT32_MAX, &f->has_domain, &f->domain_never, &v) < 0)
        return -1;
    f->domain = (uint32_t)v;
    if (f->domain_filter)
        return 0;
    if (!PyUnicode_Check(pattern)) {
        PyErr_Format(PyExc_TypeError, "filename_pattern must be str, not %.200s",
                     Py_TYPE(pattern)->tp_name);
        return -1;
    }
    if (mh_filter_int(lineno, "lineno", INT32_MIN, INT32_MAX, &f->has_lineno, &f->lineno_never,
                    &v) < 0)
        return -1;
    f->lineno = (int32_t)v;
    return mh_filter_pat_compile(&f->pat, pattern);
}

static int
mh_filter_tables(mh_filter *f, const mh_snapshot_tables *t)
{
    f->fmatch = mh_mem_calloc(t->nstrings ? t->nstrings : 1, 1);
    f->tbres = mh_mem_calloc(t->ntbs ? t->ntbs : 1, 1);
    if (f->fmatch == NULL || f->tbres == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    return 0;
}

static void
mh_filter_free(mh_filter *f, const mh_snapshot_tables *t)
{
    mh_filter_pat_free(&f->pat);
    mh_mem_free(f->fmatch, t->nstrings ? t->nstrings : 1);
    mh_mem_free(f->tbres, t->ntbs ? t->ntbs : 1);
}

/* Filter._match_frame_impl(): fnmatch on the normalized filename, then
 * the line number. */
static int
mh_filter_frame(mh_filter *f, const mh_snapshot_tables *t, uint32_t fi)
{
    const mh_snapshot_frame *fr = &t->frames[fi];
    uint8_t *m = &f->fmatch[fr->filename];
    if (*m == MH_RES_UNKNOWN) {
        PyObject *s = t->strings[fr->filename];
        *m = mh_filter_pat_match(&f->pat, s, mh_filter_normalized_length(s)) ? MH_RES_TRUE : MH_RES_FALSE;
    }
    if (*m != MH_RES_TRUE)
        return 0;
    if (!f->has_lineno)
        return 1;
    return !f->lineno_never && fr->lineno == f->lineno;
}

/* Filter._match_traceback(). */
static uint8_t
mh_filter_tb(mh_filter *f, const mh_snapshot_tables *t, uint32_t ti)
{
    uint8_t *r = &f->tbres[ti];
    if (*r != MH_RES_UNKNOWN)
        return *r;
    const mh_snapshot_tb *tb = &t->tbs[ti];
    const uint32_t *frames = t->tb_frames + tb->start;
    int res;
    if (f->all_frames) {
        int any = 0;
        for (uint32_t k = 0; k < tb->nframe && !any; k++)
            any = mh_filter_frame(f, t, frames[k]);
        res = any ? f->inclusive : !f->inclusive;
    }
    else if (tb->nframe == 0) {
        return *r = MH_RES_ERROR;
    }
    else {
        res = mh_filter_frame(f, t, frames[0]) ^ !f->inclusive;
    }
    return *r = res ? MH_RES_TRUE : MH_RES_FALSE;
}

/* BaseFilter._match(trace): 1, 0, or -1 with IndexError. */
static int
mh_filter_match(mh_filter *f, const mh_snapshot_tables *t, uint32_t domain, uint32_t ti)
{
    int eqdom = f->has_domain && !f->domain_never && domain == f->domain;
    if (f->domain_filter)
        return eqdom ^ !f->inclusive;
    uint8_t r = mh_filter_tb(f, t, ti);
    if (r == MH_RES_ERROR) {
        PyErr_SetString(PyExc_IndexError, "tuple index out of range");
        return -1;
    }
    int res = r == MH_RES_TRUE;
    if (f->has_domain)
        res = f->inclusive ? (res && eqdom) : (res || !eqdom);
    return res;
}

/* The parsed filters of one filter_traces() call, in the given order. */
typedef struct {
    mh_filter *f;
    size_t n, ninc, parsed;
    uint8_t *verdict;      /* per traceback: 0 unknown, 1 drop, 2 keep; or NULL */
} mh_filter_set;

static void
mh_filter_set_free(mh_filter_set *fs, const mh_snapshot_tables *t)
{
    for (size_t i = 0; i < fs->parsed; i++)
        mh_filter_free(&fs->f[i], t);
    mh_mem_free(fs->f, (fs->n ? fs->n : 1) * sizeof(mh_filter));
    mh_mem_free(fs->verdict, t->ntbs ? t->ntbs : 1);
}

static int
mh_filter_set_parse(mh_filter_set *fs, PyObject *seq, const mh_snapshot_tables *t)
{
    fs->n = (size_t)PySequence_Fast_GET_SIZE(seq);
    fs->f = mh_mem_calloc(fs->n ? fs->n : 1, sizeof(mh_filter));
    if (fs->f == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    int per_tb = 1;
    for (; fs->parsed < fs->n; fs->parsed++) {
        mh_filter *f = &fs->f[fs->parsed];
        if (mh_filter_parse(f, PySequence_Fast_GET_ITEM(seq, (Py_ssize_t)fs->parsed)) < 0
            || mh_filter_tables(f, t) < 0) {
            fs->parsed++;
            return -1;
        }
        fs->ninc += f->inclusive;
        per_tb &= !f->domain_filter && !f->has_domain;
    }
    /* Without domain conditions the verdict depends on the traceback only:
     * decide once per traceback, then each trace is one byte load. */
    if (per_tb) {
        fs->verdict = mh_mem_calloc(t->ntbs ? t->ntbs : 1, 1);
        if (fs->verdict == NULL) {
            PyErr_NoMemory();
            return -1;
        }
    }
    return 0;
}

/* Snapshot._filter_traces() for one trace: kept if any inclusive filter
 * (when there is one) and every exclusive filter says so.  1 keep, 0 drop,
 * -1 error. */
static int
mh_filter_set_keep(mh_filter_set *fs, const mh_snapshot_tables *t, uint32_t dom, uint32_t tb)
{
    if (fs->verdict && fs->verdict[tb])
        return fs->verdict[tb] == 2;
    int keep = fs->ninc == 0;
    for (size_t k = 0; k < fs->n && !keep; k++) {
        if (fs->f[k].inclusive && (keep = mh_filter_match(&fs->f[k], t, dom, tb)) < 0)
            return -1;
    }
    for (size_t k = 0; k < fs->n && keep; k++) {
        if (!fs->f[k].inclusive && (keep = mh_filter_match(&fs->f[k], t, dom, tb)) < 0)
            return -1;
    }
    if (fs->verdict)
        fs->verdict[tb] = keep ? 2 : 1;
    return keep;
}

PyObject *
mh_filter_py_filter(PyObject *snap, PyObject *specs)
{
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    mh_filter_set fs = {0};
    mh_snapshot_object *out = NULL;
    PyObject *seq = PySequence_Fast(specs, "filter specs must be a sequence");
    if (seq == NULL)
        return NULL;
    if (mh_filter_set_parse(&fs, seq, s->t) < 0)
        goto error;
    out = mh_snapshot_new_sharing(s);
    if (out == NULL || mh_snapshot_grow_traces(out, s->ntraces) < 0)
        goto error;
    for (size_t i = 0; i < s->ntraces; i++) {
        int keep = mh_filter_set_keep(&fs, s->t, s->domain[i], s->tb[i]);
        if (keep < 0)
            goto error;
        if (keep) {
            out->domain[out->ntraces] = s->domain[i];
            out->size[out->ntraces] = s->size[i];
            out->tb[out->ntraces] = s->tb[i];
            out->ntraces++;
        }
    }
    goto done;
error:
    Py_CLEAR(out);
done:
    mh_filter_set_free(&fs, s->t);
    Py_DECREF(seq);
    return (PyObject *)out;
}
