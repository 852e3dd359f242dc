/* fileformat.c -- the memhound snapshot file: dump and load SnapshotData.
 *
 * Layout (all integers little-endian; documented in docs/snapshot-format.md):
 *
 *   header (48 bytes)   magic "\x89MHSNAP\n", format version, byte-order
 *                       mark, header size, section count, traceback limit,
 *                       CRC-32C of the section table, CRC-32C of the header
 *   section table       per section: id, CRC-32C, offset, length (24 bytes)
 *   sections            strings, frames, tracebacks, traces, metadata
 *
 * The sections are the snapshot's own arrays, so dump is a handful of
 * writes and load a handful of bounds checks plus one read per column: the
 * trace section is columns that go to and from memory unchanged.  Every
 * count, length and index is checked against the bytes actually present
 * before use, and every section carries a CRC-32C checksum, so a
 * truncated, corrupted or foreign file gives a ValueError naming the
 * section -- never a crash, and
 * never code execution: nothing in the file is interpreted beyond numbers
 * and UTF-8 text.  The reader skips unknown section ids, so later minor
 * additions stay loadable; incompatible changes bump the format version.
 *
 * Cost: the trace section is 8 bytes per trace when every domain is 0 and
 * sizes fit in 32 bits (else 12-16); CRC-32C runs in hardware where
 * available; load reads the trace columns straight into the snapshot.
 */
#include "fileformat.h"
#include "memory.h"
#include "snapshot_tables.h"

#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#define MH_FILE_MAGIC "\x89MHSNAP\n"
/* Version 2 adds the sampling rate (header bytes 24..31, 0 = exact).  Exact
 * snapshots are still written as version 1, which they are byte for byte,
 * so older readers keep loading them; a sampled one is version 2, which an
 * older reader refuses rather than showing recorded sizes as exact. */
#define MH_FILE_VERSION 2
#define MH_FILE_BOM 0xFEFF
#define MH_FILE_HEADER_SIZE 48
#define MH_FILE_ENTRY_SIZE 24
#define MH_FILE_MAX_SECTIONS 64

/* Trace section flags. */
#define MH_TRACES_DOMAINS 1u        /* a domain column is present */
#define MH_TRACES_WIDE_SIZES 2u     /* sizes are 64-bit (else 32-bit) */

enum {
    MH_SEC_STRINGS = 1,
    MH_SEC_FRAMES = 2,
    MH_SEC_TRACEBACKS = 3,
    MH_SEC_TRACES = 4,
    MH_SEC_METADATA = 5,
    MH_SEC_COUNT = 6
};

static const char *const mh_sec_names[MH_SEC_COUNT] = {
    "unknown", "string", "frame", "traceback", "trace", "metadata"
};

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "memhound snapshot files: big-endian hosts need byte swapping (not implemented)"
#endif

/* ---- CRC-32C (Castagnoli) ------------------------------------------------
 *
 * CRC-32C rather than zlib's CRC-32 because x86-64 (SSE4.2) and ARMv8 compute
 * it in hardware, a small fraction of the cost of writing the file.  The
 * software fallback is slicing-by-8. */

static struct {
    int ready, hw;
    uint32_t table[8][256];
} mh_crc;

static void
mh_crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++)
            c = (c & 1) ? 0x82F63B78u ^ (c >> 1) : c >> 1;
        mh_crc.table[0][i] = c;
    }
    for (uint32_t i = 0; i < 256; i++) {
        for (int t = 1; t < 8; t++) {
            uint32_t c = mh_crc.table[t - 1][i];
            mh_crc.table[t][i] = mh_crc.table[0][c & 0xff] ^ (c >> 8);
        }
    }
#if defined(__x86_64__) && defined(__GNUC__)
    mh_crc.hw = __builtin_cpu_supports("sse4.2");
#endif
    mh_crc.ready = 1;
}

static uint32_t
mh_crc_soft(uint32_t crc, const unsigned char *p, size_t len)
{
    while (len >= 8) {
        uint32_t a, b;
        memcpy(&a, p, 4);
        memcpy(&b, p + 4, 4);
        a ^= crc;
        crc = mh_crc.table[7][a & 0xff] ^ mh_crc.table[6][(a >> 8) & 0xff]
            ^ mh_crc.table[5][(a >> 16) & 0xff] ^ mh_crc.table[4][a >> 24]
            ^ mh_crc.table[3][b & 0xff] ^ mh_crc.table[2][(b >> 8) & 0xff]
            ^ mh_crc.table[1][(b >> 16) & 0xff] ^ mh_crc.table[0][b >> 24];
        p += 8;
        len -= 8;
    }
    while (len--)
        crc = mh_crc.table[0][(crc ^ *p++) & 0xff] ^ (crc >> 8);
    return crc;
}

#if defined(__x86_64__) && defined(__GNUC__)
__attribute__((target("sse4.2"))) static uint32_t
mh_crc_hw(uint32_t crc, const unsigned char *p, size_t len)
{
    uint64_t c = crc;
    while (len >= 8) {
        uint64_t v;
        memcpy(&v, p, 8);
        c = __builtin_ia32_crc32di(c, v);
        p += 8;
        len -= 8;
    }
    crc = (uint32_t)c;
    while (len--)
        crc = __builtin_ia32_crc32qi(crc, *p++);
    return crc;
}
#endif

static uint32_t
mh_fileformat_crc32(uint32_t crc, const void *data, size_t len)
{
    if (!mh_crc.ready)
        mh_crc_init();
    crc = ~crc;
#if defined(__x86_64__) && defined(__GNUC__)
    if (mh_crc.hw)
        return ~mh_crc_hw(crc, data, len);
#endif
    return ~mh_crc_soft(crc, data, len);
}

PyObject *
mh_fileformat_py_crc32c(PyObject *cls, PyObject *args)
{
    Py_buffer view;
    int soft = 0;
    (void)cls;
    if (!PyArg_ParseTuple(args, "y*|p:_crc32c", &view, &soft))
        return NULL;
    if (!mh_crc.ready)
        mh_crc_init();
    uint32_t crc = soft ? ~mh_crc_soft(~0u, view.buf, (size_t)view.len)
                        : mh_fileformat_crc32(0, view.buf, (size_t)view.len);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(crc);
}

/* ---- little-endian helpers --------------------------------------------- */

static inline void mh_put32(unsigned char *p, uint32_t v) { memcpy(p, &v, 4); }
static inline void mh_put64(unsigned char *p, uint64_t v) { memcpy(p, &v, 8); }
static inline uint32_t mh_get32(const unsigned char *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t mh_get64(const unsigned char *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* ---- dump --------------------------------------------------------------- */

/* A section to write: up to four pieces written back to back. */
typedef struct {
    uint32_t id;
    const void *piece[4];
    size_t len[4];
    unsigned char *owned;   /* buffer to free after writing */
    size_t owned_size;
} mh_out_section;

static size_t
mh_out_length(const mh_out_section *s)
{
    return s->len[0] + s->len[1] + s->len[2] + s->len[3];
}

static uint32_t
mh_out_crc(const mh_out_section *s)
{
    uint32_t crc = 0;
    for (int i = 0; i < 4; i++)
        if (s->len[i])
            crc = mh_fileformat_crc32(crc, s->piece[i], s->len[i]);
    return crc;
}

static unsigned char *
mh_out_alloc(mh_out_section *s, size_t size)
{
    s->owned = mh_mem_malloc(size ? size : 1);
    s->owned_size = size ? size : 1;
    if (s->owned == NULL)
        PyErr_NoMemory();
    return s->owned;
}

static int
mh_out_strings(mh_out_section *sec, const mh_snapshot_tables *t, PyObject **encoded)
{
    size_t blob = 0;
    for (uint32_t i = 0; i < t->nstrings; i++) {
        /* surrogatepass: file names with lone surrogates round-trip. */
        encoded[i] = PyUnicode_AsEncodedString(t->strings[i], "utf-8", "surrogatepass");
        if (encoded[i] == NULL)
            return -1;
        if (PyBytes_GET_SIZE(encoded[i]) > (Py_ssize_t)UINT32_MAX) {
            PyErr_SetString(PyExc_OverflowError, "string too long for a snapshot file");
            return -1;
        }
        blob += (size_t)PyBytes_GET_SIZE(encoded[i]);
    }
    size_t head = 4 + 4 * (size_t)t->nstrings;
    unsigned char *buf = mh_out_alloc(sec, head + blob);
    if (buf == NULL)
        return -1;
    mh_put32(buf, t->nstrings);
    unsigned char *q = buf + head;
    for (uint32_t i = 0; i < t->nstrings; i++) {
        size_t n = (size_t)PyBytes_GET_SIZE(encoded[i]);
        mh_put32(buf + 4 + 4 * (size_t)i, (uint32_t)n);
        memcpy(q, PyBytes_AS_STRING(encoded[i]), n);
        q += n;
    }
    sec->piece[0] = buf;
    sec->len[0] = head + blob;
    return 0;
}

static int
mh_out_tables(mh_out_section *frames, mh_out_section *tbs, const mh_snapshot_tables *t)
{
    unsigned char *buf = mh_out_alloc(frames, 4 + 12 * (size_t)t->nframes);
    if (buf == NULL)
        return -1;
    mh_put32(buf, t->nframes);
    for (uint32_t i = 0; i < t->nframes; i++) {
        unsigned char *p = buf + 4 + 12 * (size_t)i;
        mh_put32(p, t->frames[i].filename);
        mh_put32(p + 4, (uint32_t)t->frames[i].lineno);
        mh_put32(p + 8, t->frames[i].function);
    }
    frames->piece[0] = buf;
    frames->len[0] = 4 + 12 * (size_t)t->nframes;

    /* Tracebacks: (nframe, total_nframe) pairs, then their frame indices
     * in order -- each traceback's run is contiguous in the pool. */
    uint64_t pool = 0;
    for (uint32_t i = 0; i < t->ntbs; i++)
        pool += t->tbs[i].nframe;
    buf = mh_out_alloc(tbs, 4 + 8 * (size_t)t->ntbs + 4 * pool);
    if (buf == NULL)
        return -1;
    mh_put32(buf, t->ntbs);
    unsigned char *q = buf + 4 + 8 * (size_t)t->ntbs;
    for (uint32_t i = 0; i < t->ntbs; i++) {
        const mh_snapshot_tb *tb = &t->tbs[i];
        mh_put32(buf + 4 + 8 * (size_t)i, tb->nframe);
        mh_put32(buf + 8 + 8 * (size_t)i, (uint32_t)tb->total_nframe);
        memcpy(q, t->tb_frames + tb->start, 4 * (size_t)tb->nframe);
        q += 4 * (size_t)tb->nframe;
    }
    tbs->piece[0] = buf;
    tbs->len[0] = 4 + 8 * (size_t)t->ntbs + 4 * pool;
    return 0;
}

static int
mh_write_all(int fd, const void *data, size_t len)
{
    const char *p = data;
    while (len) {
        ssize_t n = write(fd, p, len);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Traces: count, flags, then columns; the domain column is left out when
 * every domain is 0 and sizes shrink to 32 bits when they fit -- the usual
 * case, which halves the file.  `countbuf` (16 bytes) must outlive `sec`. */
static int
mh_out_traces(mh_out_section *sec, const mh_snapshot_object *s, unsigned char *countbuf)
{
    uint32_t flags = 0;
    for (size_t i = 0; i < s->ntraces; i++) {
        flags |= (s->domain[i] != 0) ? MH_TRACES_DOMAINS : 0;
        flags |= (s->size[i] > UINT32_MAX) ? MH_TRACES_WIDE_SIZES : 0;
    }
    mh_put64(countbuf, s->ntraces);
    mh_put32(countbuf + 8, flags);
    mh_put32(countbuf + 12, 0);
    sec->piece[0] = countbuf;
    sec->len[0] = 16;
    if (flags & MH_TRACES_DOMAINS) {
        sec->piece[1] = s->domain;
        sec->len[1] = 4 * s->ntraces;
    }
    if (flags & MH_TRACES_WIDE_SIZES) {
        sec->piece[2] = s->size;
        sec->len[2] = 8 * s->ntraces;
    }
    else {
        uint32_t *narrow = (uint32_t *)mh_out_alloc(sec, 4 * s->ntraces);
        if (narrow == NULL)
            return -1;
        for (size_t i = 0; i < s->ntraces; i++)
            narrow[i] = (uint32_t)s->size[i];
        sec->piece[2] = narrow;
        sec->len[2] = 4 * s->ntraces;
    }
    sec->piece[3] = s->tb;
    sec->len[3] = 4 * s->ntraces;
    return 0;
}

/* The header and section table of `nsec` sections into `head`. */
static void
mh_out_header(unsigned char *head, const mh_out_section *sec, int nsec, int traceback_limit,
              uint64_t sample_every)
{
    unsigned version = sample_every ? 2 : 1;
    uint64_t offset = MH_FILE_HEADER_SIZE + (uint64_t)nsec * MH_FILE_ENTRY_SIZE;
    unsigned char *table = head + MH_FILE_HEADER_SIZE;
    for (int i = 0; i < nsec; i++) {
        unsigned char *e = table + MH_FILE_ENTRY_SIZE * i;
        mh_put32(e, sec[i].id);
        mh_put32(e + 4, mh_out_crc(&sec[i]));
        mh_put64(e + 8, offset);
        mh_put64(e + 16, mh_out_length(&sec[i]));
        offset += mh_out_length(&sec[i]);
    }
    memcpy(head, MH_FILE_MAGIC, 8);
    head[8] = version & 0xff;
    head[9] = version >> 8;
    head[10] = MH_FILE_BOM & 0xff;
    head[11] = MH_FILE_BOM >> 8;
    mh_put32(head + 12, MH_FILE_HEADER_SIZE);
    mh_put32(head + 16, (uint32_t)nsec);
    mh_put32(head + 20, (uint32_t)traceback_limit);
    mh_put64(head + 24, sample_every);
    mh_put32(head + 32, mh_fileformat_crc32(0, table, (size_t)nsec * MH_FILE_ENTRY_SIZE));
    mh_put32(head + 36, mh_fileformat_crc32(0, head, 36));
}

/* Write header and sections to the file `fsname` (bytes); OSError names `path`. */
static int
mh_out_write(PyObject *path, PyObject *fsname, const unsigned char *head,
             const mh_out_section *sec, int nsec)
{
    int fd = open(PyBytes_AS_STRING(fsname), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0666);
    if (fd < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        return -1;
    }
    int rc = mh_write_all(fd, head, MH_FILE_HEADER_SIZE + (size_t)nsec * MH_FILE_ENTRY_SIZE);
    for (int i = 0; i < nsec && rc == 0; i++)
        for (int k = 0; k < 4 && rc == 0; k++)
            if (sec[i].len[k])
                rc = mh_write_all(fd, sec[i].piece[k], sec[i].len[k]);
    if (close(fd) < 0)
        rc = -1;
    if (rc < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, path);
        return -1;
    }
    return 0;
}

static PyObject *
mh_fileformat_dump(mh_snapshot_object *s, PyObject *path, PyObject *metadata)
{
    const mh_snapshot_tables *t = s->t;
    mh_out_section sec[5];
    unsigned char countbuf[16];
    unsigned char head[MH_FILE_HEADER_SIZE + 5 * MH_FILE_ENTRY_SIZE];
    PyObject *fsname = NULL, *meta_bytes = NULL, **encoded = NULL;
    PyObject *result = NULL;
    int nsec = 4;
    memset(sec, 0, sizeof(sec));
    memset(head, 0, sizeof(head));

    if (metadata != Py_None && !PyUnicode_Check(metadata)) {
        PyErr_Format(PyExc_TypeError, "metadata must be a JSON str or None, not %.200s",
                     Py_TYPE(metadata)->tp_name);
        return NULL;
    }
    if (!PyUnicode_FSConverter(path, &fsname))
        return NULL;
    encoded = mh_mem_calloc(t->nstrings ? t->nstrings : 1, sizeof(PyObject *));
    if (encoded == NULL) {
        PyErr_NoMemory();
        goto done;
    }
    sec[0].id = MH_SEC_STRINGS;
    sec[1].id = MH_SEC_FRAMES;
    sec[2].id = MH_SEC_TRACEBACKS;
    sec[3].id = MH_SEC_TRACES;
    if (mh_out_strings(&sec[0], t, encoded) < 0 || mh_out_tables(&sec[1], &sec[2], t) < 0
        || mh_out_traces(&sec[3], s, countbuf) < 0)
        goto done;
    if (metadata != Py_None) {
        meta_bytes = PyUnicode_AsEncodedString(metadata, "utf-8", "surrogatepass");
        if (meta_bytes == NULL)
            goto done;
        sec[4].id = MH_SEC_METADATA;
        sec[4].piece[0] = PyBytes_AS_STRING(meta_bytes);
        sec[4].len[0] = (size_t)PyBytes_GET_SIZE(meta_bytes);
        nsec = 5;
    }
    mh_out_header(head, sec, nsec, s->traceback_limit, s->sample_every);
    if (mh_out_write(path, fsname, head, sec, nsec) == 0)
        result = Py_NewRef(Py_None);
done:
    for (int i = 0; i < 5; i++)
        mh_mem_free(sec[i].owned, sec[i].owned_size);
    if (encoded) {
        for (uint32_t i = 0; i < t->nstrings; i++)
            Py_XDECREF(encoded[i]);
        mh_mem_free(encoded, (t->nstrings ? t->nstrings : 1) * sizeof(PyObject *));
    }
    Py_XDECREF(meta_bytes);
    Py_XDECREF(fsname);
    return result;
}

/* ---- load --------------------------------------------------------------- *
 *
 * The file is read with pread(): small sections into buffers, the trace
 * columns straight into the new snapshot's arrays (no second copy).  Each
 * section's checksum is verified before any of its numbers is trusted. */

typedef struct {
    PyObject *name;             /* str, for messages */
    PyObject *path;
    int fd;
    uint64_t size;              /* file size */
    unsigned char *buf[MH_SEC_COUNT];   /* sections read into memory */
    uint64_t off[MH_SEC_COUNT], len[MH_SEC_COUNT];
    uint32_t crc[MH_SEC_COUNT];
    int present[MH_SEC_COUNT];
    uint64_t ntraces;           /* read, not yet index-checked */
} mh_in;

static PyObject *
mh_in_error(mh_in *in, const char *section, const char *fmt, ...)
{
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (section)
        PyErr_Format(PyExc_ValueError, "memhound snapshot file %R: %s: %s", in->name, section, msg);
    else
        PyErr_Format(PyExc_ValueError, "memhound snapshot file %R: %s", in->name, msg);
    return NULL;
}

#define MH_SEC_ERR(in, id, ...)                                                  \
    ({ char _where[32];                                                          \
       snprintf(_where, sizeof(_where), "%s section", mh_sec_names[id]);        \
       mh_in_error((in), _where, __VA_ARGS__); })

/* Read exactly len bytes at off; a short read means the file shrank. */
static int
mh_in_pread(mh_in *in, const char *where, void *dst, size_t len, uint64_t off)
{
    char *p = dst;
    while (len) {
        ssize_t n = pread(in->fd, p, len, (off_t)off);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, in->path);
            return -1;
        }
        if (n == 0) {
            mh_in_error(in, where, "truncated (file shrank while reading)");
            return -1;
        }
        p += n;
        len -= (size_t)n;
        off += (uint64_t)n;
    }
    return 0;
}

static int
mh_in_open(mh_in *in)
{
    PyObject *fsname = NULL;
    int rc = -1;
    char probe;
    off_t size;
    if (!PyUnicode_FSConverter(in->path, &fsname))
        return -1;
    /* The size from lseek(), not fstat(): glibc exports fstat only since
     * 2.33, which would raise the wheels' manylinux floor.  A directory
     * opens but cannot be read: pread() fails with EISDIR. */
    in->fd = open(PyBytes_AS_STRING(fsname), O_RDONLY | O_CLOEXEC);
    if (in->fd < 0 || pread(in->fd, &probe, 1, 0) < 0
            || (size = lseek(in->fd, 0, SEEK_END)) < 0) {
        PyErr_SetFromErrnoWithFilenameObject(PyExc_OSError, in->path);
        goto done;
    }
    in->size = (uint64_t)size;
    rc = 0;
done:
    Py_XDECREF(fsname);
    return rc;
}

static int
mh_in_header(mh_in *in, int *limit, uint64_t *sample_every)
{
    unsigned char d[MH_FILE_HEADER_SIZE];
    size_t have = in->size < MH_FILE_HEADER_SIZE ? (size_t)in->size : MH_FILE_HEADER_SIZE;
    if (have && mh_in_pread(in, "header", d, have, 0) < 0)
        return -1;
    if (have < 8 || memcmp(d, MH_FILE_MAGIC, 8) != 0) {
        if (have > 0 && have < 8 && memcmp(d, MH_FILE_MAGIC, have) == 0)
            return mh_in_error(in, "header", "truncated (%zu bytes)", have), -1;
        return mh_in_error(in, NULL, "not a memhound snapshot file (bad magic number)"), -1;
    }
    if (have < MH_FILE_HEADER_SIZE)
        return mh_in_error(in, "header", "truncated (%zu of %d bytes)", have,
                           MH_FILE_HEADER_SIZE), -1;
    unsigned version = d[8] | (unsigned)d[9] << 8;
    unsigned bom = d[10] | (unsigned)d[11] << 8;
    if (version > MH_FILE_VERSION)
        return mh_in_error(in, "header", "format version %u is newer than this memhound "
                           "supports (%d); upgrade memhound", version, MH_FILE_VERSION), -1;
    if (version == 0)
        return mh_in_error(in, "header", "invalid format version 0"), -1;
    if (bom != MH_FILE_BOM)
        return mh_in_error(in, "header", "unsupported byte order mark 0x%04x", bom), -1;
    if (mh_get32(d + 36) != mh_fileformat_crc32(0, d, 36))
        return mh_in_error(in, "header", "checksum mismatch"), -1;
    uint32_t hsize = mh_get32(d + 12), nsec = mh_get32(d + 16);
    if (hsize != MH_FILE_HEADER_SIZE)
        return mh_in_error(in, "header", "bad header size %u", hsize), -1;
    if (nsec > MH_FILE_MAX_SECTIONS)
        return mh_in_error(in, "header", "too many sections (%u)", nsec), -1;
    *limit = (int32_t)mh_get32(d + 20);
    *sample_every = version >= 2 ? mh_get64(d + 24) : 0;
    if (*sample_every > ((uint64_t)1 << 62))
        return mh_in_error(in, "header", "invalid sampling rate %llu",
                           (unsigned long long)*sample_every), -1;

    unsigned char table[MH_FILE_MAX_SECTIONS * MH_FILE_ENTRY_SIZE];
    size_t tsize = (size_t)nsec * MH_FILE_ENTRY_SIZE;
    if (in->size - MH_FILE_HEADER_SIZE < tsize)
        return mh_in_error(in, "section table", "truncated (%llu of %zu bytes)",
                           (unsigned long long)(in->size - MH_FILE_HEADER_SIZE), tsize), -1;
    if (tsize && mh_in_pread(in, "section table", table, tsize, MH_FILE_HEADER_SIZE) < 0)
        return -1;
    if (mh_get32(d + 32) != mh_fileformat_crc32(0, table, tsize))
        return mh_in_error(in, "section table", "checksum mismatch"), -1;
    for (uint32_t i = 0; i < nsec; i++) {
        const unsigned char *e = table + (size_t)i * MH_FILE_ENTRY_SIZE;
        uint32_t id = mh_get32(e);
        uint64_t off = mh_get64(e + 8), len = mh_get64(e + 16);
        if (id == 0 || id >= MH_SEC_COUNT)
            continue;   /* unknown section: a later minor addition */
        if (in->present[id])
            return MH_SEC_ERR(in, id, "appears twice"), -1;
        if (off > in->size || len > in->size - off)
            return MH_SEC_ERR(in, id, "truncated (needs bytes %llu..%llu, file has %llu)",
                              (unsigned long long)off, (unsigned long long)(off + len),
                              (unsigned long long)in->size), -1;
        in->present[id] = 1;
        in->off[id] = off;
        in->len[id] = len;
        in->crc[id] = mh_get32(e + 4);
    }
    for (int id = MH_SEC_STRINGS; id <= MH_SEC_TRACES; id++)
        if (!in->present[id])
            return MH_SEC_ERR(in, id, "missing"), -1;
    return 0;
}

/* Read a small section into memory and verify its checksum. */
static int
mh_in_section(mh_in *in, int id)
{
    char where[32];
    snprintf(where, sizeof(where), "%s section", mh_sec_names[id]);
    size_t len = (size_t)in->len[id];
    in->buf[id] = mh_mem_malloc(len ? len : 1);
    if (in->buf[id] == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    if (len && mh_in_pread(in, where, in->buf[id], len, in->off[id]) < 0)
        return -1;
    if (mh_fileformat_crc32(0, in->buf[id], len) != in->crc[id])
        return MH_SEC_ERR(in, id, "checksum mismatch"), -1;
    return 0;
}

/* Checksum of a section streamed through a small buffer (to tell
 * corruption from a malformed but intact section). */
static int
mh_in_stream_crc(mh_in *in, int id, uint32_t *crc)
{
    unsigned char chunk[65536];
    uint64_t off = in->off[id], left = in->len[id];
    *crc = 0;
    while (left) {
        size_t n = left < sizeof(chunk) ? (size_t)left : sizeof(chunk);
        if (mh_in_pread(in, "trace section", chunk, n, off) < 0)
            return -1;
        *crc = mh_fileformat_crc32(*crc, chunk, n);
        off += n;
        left -= n;
    }
    return 0;
}

/* Check that a section holds `head` bytes plus `count` items of `item`
 * bytes; `exact` also requires nothing else. */
static int
mh_in_fits(mh_in *in, int id, uint64_t count, uint64_t item, uint64_t head, int exact)
{
    uint64_t len = in->len[id];
    if (len < head)
        return MH_SEC_ERR(in, id, "too short (%llu bytes)", (unsigned long long)len), -1;
    uint64_t room = (len - head) / item;
    if (count > room || (exact && count * item != len - head))
        return MH_SEC_ERR(in, id, "count %llu does not match section length %llu",
                          (unsigned long long)count, (unsigned long long)len), -1;
    return 0;
}

/* The trace columns, read in place.  Returns 0, or -1 with an error. */
static int
mh_in_traces(mh_in *in, mh_snapshot_object *s)
{
    const int id = MH_SEC_TRACES;
    unsigned char head[16];
    uint64_t len = in->len[id], off = in->off[id];
    uint32_t crc;
    if (len < 16) {
        if (mh_in_stream_crc(in, id, &crc) < 0)
            return -1;
        if (crc != in->crc[id])
            return MH_SEC_ERR(in, id, "checksum mismatch"), -1;
        return MH_SEC_ERR(in, id, "too short (%llu bytes)", (unsigned long long)len), -1;
    }
    if (mh_in_pread(in, "trace section", head, 16, off) < 0)
        return -1;
    uint64_t n = mh_get64(head);
    uint32_t flags = mh_get32(head + 8);
    uint64_t per = 4 + ((flags & MH_TRACES_DOMAINS) ? 4 : 0)
                 + ((flags & MH_TRACES_WIDE_SIZES) ? 8 : 4);
    if ((flags & ~(MH_TRACES_DOMAINS | MH_TRACES_WIDE_SIZES)) || n > (len - 16) / per
        || n * per != len - 16) {
        /* Malformed: corruption (checksum) or a lying writer (layout). */
        if (mh_in_stream_crc(in, id, &crc) < 0)
            return -1;
        if (crc != in->crc[id])
            return MH_SEC_ERR(in, id, "checksum mismatch"), -1;
        if (flags & ~(MH_TRACES_DOMAINS | MH_TRACES_WIDE_SIZES))
            return MH_SEC_ERR(in, id, "unknown flags 0x%x", flags), -1;
        return MH_SEC_ERR(in, id, "count %llu does not match section length %llu",
                          (unsigned long long)n, (unsigned long long)len), -1;
    }
    in->ntraces = n;
    if (n == 0)
        return mh_fileformat_crc32(0, head, 16) == in->crc[id]
            ? 0 : (MH_SEC_ERR(in, id, "checksum mismatch"), -1);
    if (mh_snapshot_grow_traces(s, (size_t)n) < 0)
        return -1;
    size_t cn = (size_t)n;
    off += 16;
    crc = mh_fileformat_crc32(0, head, 16);
    if (flags & MH_TRACES_DOMAINS) {
        if (mh_in_pread(in, "trace section", s->domain, 4 * cn, off) < 0)
            return -1;
        crc = mh_fileformat_crc32(crc, s->domain, 4 * cn);
        off += 4 * cn;
    }
    else {
        memset(s->domain, 0, 4 * cn);
    }
    size_t szlen = (flags & MH_TRACES_WIDE_SIZES) ? 8 * cn : 4 * cn;
    if (mh_in_pread(in, "trace section", s->size, szlen, off) < 0)
        return -1;
    crc = mh_fileformat_crc32(crc, s->size, szlen);
    off += szlen;
    if (mh_in_pread(in, "trace section", s->tb, 4 * cn, off) < 0)
        return -1;
    crc = mh_fileformat_crc32(crc, s->tb, 4 * cn);
    if (crc != in->crc[id])
        return MH_SEC_ERR(in, id, "checksum mismatch"), -1;
    if (!(flags & MH_TRACES_WIDE_SIZES)) {
        /* Widen 32-bit sizes in place, from the end (each write lands at
         * or after the element it reads). */
        const uint32_t *narrow = (const uint32_t *)s->size;
        for (size_t i = cn; i-- > 0;)
            s->size[i] = narrow[i];
    }
    return 0;
}

static int
mh_in_strings(mh_in *in, mh_snapshot_tables *t)
{
    const unsigned char *p = in->buf[MH_SEC_STRINGS];
    if (mh_in_fits(in, MH_SEC_STRINGS, 0, 1, 4, 0) < 0)
        return -1;
    uint32_t n = mh_get32(p);
    if (mh_in_fits(in, MH_SEC_STRINGS, n, 4, 4, 0) < 0)
        return -1;
    uint64_t blob = in->len[MH_SEC_STRINGS] - 4 - 4 * (uint64_t)n, total = 0;
    for (uint32_t i = 0; i < n; i++)
        total += mh_get32(p + 4 + 4 * (size_t)i);
    if (total != blob)
        return MH_SEC_ERR(in, MH_SEC_STRINGS, "string lengths add up to %llu bytes, section "
                          "holds %llu", (unsigned long long)total, (unsigned long long)blob), -1;
    if (mh_snapshot_tables_reserve(t, n, 0, 0, 0) < 0)
        return -1;
    const unsigned char *q = p + 4 + 4 * (size_t)n;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t len = mh_get32(p + 4 + 4 * (size_t)i);
        PyObject *s = PyUnicode_DecodeUTF8((const char *)q, len, "surrogatepass");
        if (s == NULL) {
            PyErr_Clear();
            return MH_SEC_ERR(in, MH_SEC_STRINGS, "string %u is not valid UTF-8", i), -1;
        }
        Py_hash_t h = PyObject_Hash(s);   /* cannot fail for str */
        t->strings[t->nstrings] = s;
        t->string_hash[t->nstrings] = mh_index_hash32((uint64_t)h);
        t->nstrings++;
        q += len;
    }
    return 0;
}

static int
mh_in_frames(mh_in *in, mh_snapshot_tables *t)
{
    const unsigned char *p = in->buf[MH_SEC_FRAMES];
    if (mh_in_fits(in, MH_SEC_FRAMES, 0, 1, 4, 0) < 0)
        return -1;
    uint32_t n = mh_get32(p);
    if (mh_in_fits(in, MH_SEC_FRAMES, n, 12, 4, 1) < 0
        || mh_snapshot_tables_reserve(t, 0, n, 0, 0) < 0)
        return -1;
    for (uint32_t i = 0; i < n; i++) {
        const unsigned char *e = p + 4 + 12 * (size_t)i;
        mh_snapshot_frame f = {mh_get32(e), (int32_t)mh_get32(e + 4), mh_get32(e + 8)};
        if (f.filename >= t->nstrings)
            return MH_SEC_ERR(in, MH_SEC_FRAMES, "frame %u: filename index %u out of range "
                              "(%u strings)", i, f.filename, t->nstrings), -1;
        if (f.function != MH_NO_STRING && f.function >= t->nstrings)
            return MH_SEC_ERR(in, MH_SEC_FRAMES, "frame %u: function index %u out of range "
                              "(%u strings)", i, f.function, t->nstrings), -1;
        t->frames[i] = f;
        t->frame_hash[i] = 0;
    }
    t->nframes = n;
    return 0;
}

static int
mh_in_tracebacks(mh_in *in, mh_snapshot_tables *t)
{
    const unsigned char *p = in->buf[MH_SEC_TRACEBACKS];
    if (mh_in_fits(in, MH_SEC_TRACEBACKS, 0, 1, 4, 0) < 0)
        return -1;
    uint32_t n = mh_get32(p);
    if (mh_in_fits(in, MH_SEC_TRACEBACKS, n, 8, 4, 0) < 0)
        return -1;
    uint64_t pool = 0;
    for (uint32_t i = 0; i < n; i++)
        pool += mh_get32(p + 4 + 8 * (size_t)i);
    uint64_t rest = in->len[MH_SEC_TRACEBACKS] - 4 - 8 * (uint64_t)n;
    if (pool * 4 != rest)
        return MH_SEC_ERR(in, MH_SEC_TRACEBACKS, "frame counts add up to %llu frames, section "
                          "holds %llu bytes of frame indices", (unsigned long long)pool,
                          (unsigned long long)rest), -1;
    if (mh_snapshot_tables_reserve(t, 0, 0, n, pool) < 0)
        return -1;
    const unsigned char *q = p + 4 + 8 * (size_t)n;
    if (pool)
        memcpy(t->tb_frames, q, 4 * (size_t)pool);
    uint64_t start = 0;
    for (uint32_t i = 0; i < n; i++) {
        uint32_t nframe = mh_get32(p + 4 + 8 * (size_t)i);
        int32_t total = (int32_t)mh_get32(p + 8 + 8 * (size_t)i);
        if (total < MH_TOTAL_NONE)
            return MH_SEC_ERR(in, MH_SEC_TRACEBACKS, "traceback %u: invalid total_nframe %d",
                              i, total), -1;
        for (uint32_t k = 0; k < nframe; k++) {
            uint32_t f = t->tb_frames[start + k];
            if (f >= t->nframes)
                return MH_SEC_ERR(in, MH_SEC_TRACEBACKS, "traceback %u: frame index %u out of "
                                  "range (%u frames)", i, f, t->nframes), -1;
        }
        t->tbs[i].start = start;
        t->tbs[i].nframe = nframe;
        t->tbs[i].total_nframe = total;
        t->tb_hash[i] = 0;
        start += nframe;
    }
    t->ntbs = n;
    t->ntb_frames = pool;
    return 0;
}

static int
mh_in_check_traces(mh_in *in, mh_snapshot_object *s)
{
    uint32_t ntbs = s->t->ntbs, bad = 0;
    for (size_t i = 0; i < s->ntraces; i++)
        bad |= s->tb[i] >= ntbs;
    if (!bad)
        return 0;
    for (size_t i = 0; i < s->ntraces; i++)
        if (s->tb[i] >= ntbs)
            return MH_SEC_ERR(in, MH_SEC_TRACES, "trace %zu: traceback index %u out of "
                              "range (%u tracebacks)", i, s->tb[i], ntbs), -1;
    return 0;
}

static PyObject *
mh_fileformat_load(PyObject *path)
{
    mh_in in;
    int limit = 0;
    uint64_t sample_every = 0;
    PyObject *snap = NULL, *meta = NULL, *result = NULL;
    memset(&in, 0, sizeof(in));
    in.fd = -1;
    in.path = path;
    in.name = PyObject_Str(path);
    if (in.name == NULL)
        return NULL;
    if (mh_in_open(&in) < 0 || mh_in_header(&in, &limit, &sample_every) < 0)
        goto done;
    snap = mh_snapshot_new(limit);
    if (snap == NULL)
        goto done;
    mh_snapshot_set_sample_every(snap, sample_every);
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    /* Checksums first, in file order, so a damaged file is reported as
     * such before any of its numbers is believed. */
    for (int id = MH_SEC_STRINGS; id < MH_SEC_COUNT; id++) {
        if (!in.present[id])
            continue;
        if (id == MH_SEC_TRACES ? mh_in_traces(&in, s) < 0 : mh_in_section(&in, id) < 0)
            goto done;
    }
    if (mh_in_strings(&in, s->t) < 0 || mh_in_frames(&in, s->t) < 0
        || mh_in_tracebacks(&in, s->t) < 0)
        goto done;
    s->ntraces = (size_t)in.ntraces;   /* fits: validated against the section */
    if (mh_in_check_traces(&in, s) < 0)
        goto done;
    if (in.present[MH_SEC_METADATA]) {
        meta = PyUnicode_DecodeUTF8((const char *)in.buf[MH_SEC_METADATA],
                                    (Py_ssize_t)in.len[MH_SEC_METADATA], "surrogatepass");
        if (meta == NULL) {
            PyErr_Clear();
            MH_SEC_ERR(&in, MH_SEC_METADATA, "not valid UTF-8");
            goto done;
        }
    }
    else {
        meta = Py_NewRef(Py_None);
    }
    result = PyTuple_Pack(2, snap, meta);
done:
    Py_XDECREF(snap);
    Py_XDECREF(meta);
    Py_XDECREF(in.name);
    for (int id = 0; id < MH_SEC_COUNT; id++)
        mh_mem_free(in.buf[id], in.len[id] ? (size_t)in.len[id] : 1);
    if (in.fd >= 0)
        close(in.fd);
    return result;
}

/* ---- the methods ------------------------------------------------------- */

PyObject *
mh_fileformat_py_dump(PyObject *snap, PyObject *args)
{
    mh_snapshot_object *s = (mh_snapshot_object *)snap;
    PyObject *path, *metadata = Py_None;
    int limit = s->traceback_limit, saved = s->traceback_limit;
    if (!PyArg_ParseTuple(args, "O|Oi:dump", &path, &metadata, &limit))
        return NULL;
    /* Snapshot.traceback_limit is a plain attribute that may differ. */
    s->traceback_limit = limit;
    PyObject *r = mh_fileformat_dump(s, path, metadata);
    s->traceback_limit = saved;
    return r;
}

PyObject *
mh_fileformat_py_load(PyObject *cls, PyObject *path)
{
    (void)cls;
    return mh_fileformat_load(path);
}
