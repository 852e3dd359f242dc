/* tracebacks.h -- interned raw tracebacks (mh_tb_*).
 *
 * A traceback is a run of raw frames (code object, instruction index), newest
 * first, plus the depth of the whole stack.  Identical tracebacks are stored
 * once and named by a 32-bit id, so a live block costs 4 bytes of traceback.
 * Id 0 is the empty traceback (an allocation with no Python frame).
 *
 * Storage: one array of entries (hash, nframe, total, offset), one arena of
 * frames, and an open-addressing index of ids keyed by hash (load <= 1/2).
 * Interning costs one hash over the frames and, on a hit, one memcmp.
 * Tracebacks are never freed one by one -- only all at once by
 * mh_tb_clear() -- so ids stay valid for as long as any trace uses them.
 *
 * Every code object in a stored traceback is kept alive by a strong
 * reference until mh_tb_clear(): a dead code object's address could be
 * reused by a new one, which would then inherit the old frames.
 * Only called with the GIL held.
 */
#ifndef MH_TRACEBACKS_H
#define MH_TRACEBACKS_H

#include <stddef.h>
#include <stdint.h>

#include "compat.h"

#define MH_TB_EMPTY 0u
#define MH_TB_ERROR UINT32_MAX
/* Ids stay below the block table's "old" mark bit (blocks.h). */
#define MH_TB_LIMIT 0x7FFFFFFFu

typedef struct {
    uint32_t hash;
    uint16_t nframe;
    uint16_t total;
    uint32_t offset;        /* first frame in mh_tb_table.frames */
} mh_tb;

typedef struct {
    mh_tb *entries;
    size_t count, capacity;
    mh_rawframe *frames;
    size_t nframes, frames_capacity;
    uint32_t *index;        /* id + 1, 0 = empty slot */
    size_t index_capacity;  /* power of two */
} mh_tb_table;

/* Id of the traceback made of `frames[0..n)` with stack depth `total`;
 * MH_TB_ERROR when memory for a new entry cannot be had.  The lookup is
 * inline (it runs on every allocation); only a miss calls mh_tb_insert. */
static inline uint32_t mh_tb_intern(mh_tb_table *t, const mh_rawframe *frames, int n, int total);

uint32_t mh_tb_insert(mh_tb_table *t, const mh_rawframe *frames, int n, int total,
                      uint32_t hash);

static inline const mh_tb *
mh_tb_get(const mh_tb_table *t, uint32_t id)
{
    return &t->entries[id];
}

static inline const mh_rawframe *
mh_tb_frames(const mh_tb_table *t, const mh_tb *tb)
{
    return &t->frames[tb->offset];
}

/* Mixes the newest MH_TB_HASHED frames fully and only adds the code objects
 * of deeper ones: deep stacks that share their newest frames differ in depth
 * or code far more often than in their deep instruction offsets, and the
 * full comparison on lookup settles the rest.  Deep tracebacks cost far
 * less to hash. */
#define MH_TB_HASHED 6

static inline uint32_t
mh_tb_hash(const mh_rawframe *frames, int n, int total)
{
    uint64_t h = 0xcbf29ce484222325ULL ^ ((uint64_t)total << 16) ^ (uint64_t)n;
    uint64_t deep = 0;
    for (int i = MH_TB_HASHED; i < n; i++)
        deep += (uint64_t)(uintptr_t)frames[i].code;
    h ^= deep;
    for (int i = 0; i < n && i < MH_TB_HASHED; i++) {
        h ^= (uint64_t)(uintptr_t)frames[i].code;
        h *= 0x9E3779B97F4A7C15ULL;
        h ^= (uint64_t)(uint32_t)frames[i].lasti;
        h *= 0xBF58476D1CE4E5B9ULL;
        h ^= h >> 29;
    }
    return (uint32_t)(h ^ (h >> 32));
}

static inline int
mh_tb_equal(const mh_tb_table *t, const mh_tb *tb, const mh_rawframe *frames, int n, int total)
{
    if (tb->nframe != n || tb->total != total)
        return 0;
    /* Inline loop: most tracebacks are 1-3 frames, where a memcmp call costs
     * more than the comparison. */
    const mh_rawframe *stored = &t->frames[tb->offset];
    for (int i = 0; i < n; i++) {
        if (stored[i].code != frames[i].code || stored[i].lasti != frames[i].lasti)
            return 0;
    }
    return 1;
}

static inline uint32_t
mh_tb_intern(mh_tb_table *t, const mh_rawframe *frames, int n, int total)
{
    if (n == 0 && total == 0)
        return MH_TB_EMPTY;
    uint32_t hash = mh_tb_hash(frames, n, total);
    if (t->index_capacity != 0) {
        size_t mask = t->index_capacity - 1;
        for (size_t i = hash & mask; t->index[i] != 0; i = (i + 1) & mask) {
            const mh_tb *tb = &t->entries[t->index[i] - 1];
            if (tb->hash == hash && mh_tb_equal(t, tb, frames, n, total))
                return t->index[i] - 1;
        }
    }
    return mh_tb_insert(t, frames, n, total, hash);
}

/* Drop every traceback.  The code objects they held are appended to
 * `*codes` (an mh_mem array the caller must release with Py_DECREF on each
 * and mh_mem_free) so that the caller can release them once its own state
 * is consistent: a DECREF may free memory and re-enter the hooks. */
void mh_tb_clear(mh_tb_table *t, PyObject ***codes, size_t *ncodes);

#endif
