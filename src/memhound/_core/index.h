/* index.h -- open addressing for the cold-path tables (mh_index_*).
 *
 * Used by the heap census set and node table (heap_graph.c), the snapshot
 * tables' intern indexes, the raw-tuple cache (snapshot.c) and the grouping
 * keys (snapshot_group.c).  Policy shared by all of them:
 *
 * - One mixing function: the first round of murmur3's 64-bit finalizer.
 *   Keys are addresses (aligned, clustered) or combinations of small
 *   integers; the slot comes from the high bits of the hash, which the
 *   multiply fills from every input bit, and the xor-shift before it folds
 *   the high input bits down.  One multiply: the heap tables hash every
 *   object of the heap, twice with the prefetch.
 * - The home slot is the high half of (hash x capacity): a capacity need not
 *   be a power of two, so a table can be sized to fit.
 * - Linear probing, and keys are never removed (these tables are built,
 *   read, then freed): an empty slot ends every probe run, no tombstones.
 * - Each table keeps its own load limit and grows by re-placing every entry
 *   in a new array.
 *
 * mh_index itself is the index for tables whose entries live in arrays of
 * their own with a 32-bit hash each: its slots hold entry numbers, so
 * growing reads the stored hashes and never re-hashes a key.
 *
 * The allocation hot path keeps cheaper hashes of its own: the live-block
 * table (blocks.c) multiplies the address once, the traceback index
 * (tracebacks.h) hashes a run of frames in one pass.
 */
#ifndef MH_INDEX_H
#define MH_INDEX_H

#include <Python.h>
#include <stdint.h>

#include "memory.h"

static inline uint64_t
mh_index_mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdULL;
    x ^= x >> 33;
    return x;
}

/* The 32-bit hash that mh_index entries keep. */
static inline uint32_t
mh_index_hash32(uint64_t x)
{
    return (uint32_t)(mh_index_mix(x) >> 32);
}

static inline size_t
mh_index_home(uint64_t hash, size_t capacity)
{
    return (size_t)(((unsigned __int128)hash * capacity) >> 64);
}

static inline size_t
mh_index_next(size_t i, size_t capacity)
{
    return i + 1 == capacity ? 0 : i + 1;
}

/* ---- mh_index: entry numbers keyed by the entries' stored hashes -------- */

#define MH_INDEX_NONE UINT32_MAX

typedef struct {
    uint32_t *slots;            /* entry + 1; 0 = empty */
    size_t capacity, used;      /* capacity 0 until the first entry */
} mh_index;

static inline size_t
mh_index_home32(uint32_t hash, size_t capacity)
{
    return mh_index_home((uint64_t)hash << 32, capacity);
}

static inline void
mh_index_free(mh_index *ix)
{
    mh_mem_free(ix->slots, ix->capacity * sizeof(uint32_t));
    ix->slots = NULL;
    ix->capacity = ix->used = 0;
}

/* Room for entry n, given the hashes of entries 0..n-1: at most half full,
 * so that a miss stays short.  0, or -1 with MemoryError set. */
static inline int
mh_index_reserve(mh_index *ix, const uint32_t *hashes, size_t n)
{
    if ((n + 1) * 2 <= ix->capacity)
        return 0;
    size_t capacity = ix->capacity ? ix->capacity * 2 : 64;
    while ((n + 1) * 2 > capacity)
        capacity *= 2;
    uint32_t *slots = mh_mem_calloc(capacity, sizeof(uint32_t));
    if (slots == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    for (size_t e = 0; e < n; e++) {
        size_t i = mh_index_home32(hashes[e], capacity);
        while (slots[i])
            i = mh_index_next(i, capacity);
        slots[i] = (uint32_t)(e + 1);
    }
    mh_index_free(ix);
    ix->slots = slots;
    ix->capacity = capacity;
    ix->used = n;
    return 0;
}

typedef int (*mh_index_eq_fn)(const void *probe, uint32_t entry);

/* The entry equal to `probe` (eq decides), or MH_INDEX_NONE with *slot set
 * to where it goes.  The index must have been reserved. */
static inline uint32_t
mh_index_find(const mh_index *ix, uint32_t hash, const uint32_t *hashes, mh_index_eq_fn eq,
              const void *probe, size_t *slot)
{
    size_t i = mh_index_home32(hash, ix->capacity);
    uint32_t s;
    while ((s = ix->slots[i]) != 0) {
        if (hashes[s - 1] == hash && eq(probe, s - 1))
            return s - 1;
        i = mh_index_next(i, ix->capacity);
    }
    *slot = i;
    return MH_INDEX_NONE;
}

static inline void
mh_index_insert(mh_index *ix, size_t slot, uint32_t entry)
{
    ix->slots[slot] = entry + 1;
    ix->used++;
}

#endif
