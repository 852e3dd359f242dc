/* blocks.h -- the live-block table (mh_blocks_*).
 *
 * Maps the address of every traced memory block to its size and traceback id
 * in 16-byte slots {address, size, traceback}, in three parts:
 *
 * - Pools (pymalloc's blocks, MEM and OBJ domains, when pymalloc is the
 *   allocator below memhound): one entry per 16 KiB pool that holds traced
 *   blocks, its slots indexed by block number, (address - first block) /
 *   block size (compat.h gives the geometry).  Neighbouring blocks get
 *   neighbouring slots, so a growing heap fills the table in address order
 *   and a free finds its slot next to the ones just used: no hashing, no
 *   probing, no cache miss the heap itself does not have.  A pool's slots
 *   come in sub-arrays of 64, allocated when a block lands in them and kept
 *   while the entry lives (temporaries would otherwise make and free one
 *   per allocation), so a pool with a few traced blocks among untraced
 *   ones stays small.  The
 *   pool is found through a directory: leaves of 16384 pools (256 MiB of
 *   address space, pymalloc's arenas come from few such regions), the last
 *   leaf used checked first.  An
 *   entry and its sub-arrays are released when their last traced block is
 *   freed (freed pymalloc memory may be reused by malloc), after the next
 *   16 entries that emptied: a block that lives and dies alone in a pool
 *   then costs no new entry.
 *   The slot is chosen by address alone and stores the address, so the
 *   table stays exact whatever the memory is: a block whose address does
 *   not fall on a block position of its pool's entry goes to the parts
 *   below, and every lookup checks the pool part first, then the others.
 * - The front: 65536 slots indexed by address bits 4..19, no hashing and no
 *   probing, for every block when pymalloc is not below memhound (with
 *   pymalloc, the few other blocks go straight to the probed table).  A new
 *   block always goes there;
 *   the block it displaces moves to the probed table.  Cost: 1 MiB of
 *   address space per table, mapped on the first block; only pages that
 *   addresses map to take memory.
 * - The probed table: open addressing with linear probing; the slot index is
 *   the high half of (mixed address x capacity), so the capacity need not be
 *   a power of two.  It grows by 1.5x when 3/4 full, so a block there costs
 *   21-32 bytes; a table of more than 65536 slots shrinks
 *   to 1/4 full when under 1/16 full.  Deletion shifts the following run back
 *   instead of leaving tombstones, keeping probe runs short under churn.  A
 *   cleared table starts again at the size the previous session needed,
 *   instead of growing through every size again.
 *
 * Sizes of 4 GiB and more do not fit the slot; they are kept in a small side
 * list (there can only be a handful of such blocks).
 *
 * Slots live in memhound's own memory (memory.h), so the table never
 * allocates through the hooks it serves.  Not thread-safe: the caller holds
 * the GIL or the table's lock.
 */
#ifndef MH_BLOCKS_H
#define MH_BLOCKS_H

#include "compat.h"

#include <stddef.h>
#include <stdint.h>

typedef struct {
    uintptr_t ptr;          /* 0 = empty slot */
    uint32_t size;          /* UINT32_MAX: real size in the big list */
    uint32_t tb;
} mh_block;

typedef struct {
    uintptr_t ptr;
    size_t size;
} mh_bigblock;

#define MH_FRONT_BITS 16
#define MH_FRONT ((size_t)1 << MH_FRONT_BITS)

#define MH_POOL_SIZE ((uintptr_t)1 << MH_COMPAT_POOL_BITS)
#define MH_SUB_BITS 6
#define MH_SUB ((uint32_t)1 << MH_SUB_BITS)                   /* slots per sub-array */
#define MH_POOL_SLOTS ((MH_POOL_SIZE - MH_COMPAT_POOL_OVERHEAD) / MH_COMPAT_ALIGN)
#define MH_POOL_SUBS ((MH_POOL_SLOTS + MH_SUB - 1) / MH_SUB)
/* The directory: up to MH_DIR_LEAVES leaves of MH_DIR_LEAF pool entries,
 * each leaf for 256 MiB of address space (pymalloc's arenas come from a few
 * such regions), found by a compare with the last leaf used. */
#define MH_DIR_LEAF_BITS 14
#define MH_DIR_LEAF ((size_t)1 << MH_DIR_LEAF_BITS)
#define MH_DIR_SHIFT (MH_COMPAT_POOL_BITS + MH_DIR_LEAF_BITS)
#define MH_DIR_LEAVES 64
#define MH_SPARE_SUBS 64
#define MH_SPARE_POOLS 16
#define MH_RETIRED 16

typedef struct {
    uintptr_t first;            /* address of the pool's block 0 */
    uint32_t stride;            /* block size */
    uint32_t magic;             /* ceil(2^32 / stride): division by multiplication */
    uint32_t nslots;            /* blocks the pool holds */
    uint32_t count;             /* traced blocks in it */
    uint32_t retired;           /* 1 while in mh_blocks.retired */
    size_t index;               /* position in mh_blocks.pools */
    mh_block *sub[MH_POOL_SUBS];
} mh_pool;

typedef struct {
    mh_block *front;            /* MH_FRONT slots, or NULL before the first block */
    mh_block *slots;
    size_t capacity, used;      /* used: slots taken in `slots` */
    size_t count;               /* live blocks: pools + front + slots */
    mh_bigblock *big;
    size_t nbig, big_capacity;
    /* Kept by mh_blocks_clear(): */
    int use_pools;              /* new small blocks may go to pool entries */
    size_t hint;                /* most slots used in `slots` by the last session */
    /* The pool part: the directory's leaves (key = address >> MH_DIR_SHIFT)
     * and the last one found. */
    struct { uintptr_t key; mh_pool **entries; } leaves[MH_DIR_LEAVES];
    int nleaves;
    uintptr_t last_key;
    mh_pool **last_leaf;        /* NULL until the first pool entry */
    mh_pool **pools;            /* every entry, for iteration */
    size_t npools, pools_capacity;
    mh_block *spare_subs[MH_SPARE_SUBS];
    mh_pool *spare_pools[MH_SPARE_POOLS];
    int nspare_subs, nspare_pools;
    mh_pool *retired[MH_RETIRED];   /* emptied entries still in the directory */
    int retired_next;
} mh_blocks;

#define MH_BIG_SIZE UINT32_MAX

/* The leak finder marks the blocks alive at its census "old" in the top bit
 * of their traceback id (traceback ids stay below it, tracebacks.h): a block
 * allocated since has the bit clear, also when it reuses an old address.
 * Every reader of a slot's traceback goes through mh_block_tb(). */
#define MH_BLOCK_OLD 0x80000000u

static inline uint32_t
mh_block_tb(const mh_block *b)
{
    return b->tb & ~MH_BLOCK_OLD;
}

static inline int
mh_block_is_old(const mh_block *b)
{
    return (b->tb & MH_BLOCK_OLD) != 0;
}

static inline size_t
mh_front_index(uintptr_t ptr)
{
    return (ptr >> 4) & (MH_FRONT - 1);
}

/* The front slot of `ptr` if it holds `ptr`, else NULL. */
static inline mh_block *
mh_front_find(mh_blocks *t, uintptr_t ptr)
{
    if (t->front == NULL || ptr == 0)
        return NULL;
    mh_block *f = &t->front[mh_front_index(ptr)];
    return f->ptr == ptr ? f : NULL;
}

mh_pool **mh_dir_leaf(mh_blocks *t, uintptr_t key);

/* The pool entry whose block positions include `ptr`, and the position in
 * *pos; NULL if there is none.  A compare and a load through the
 * directory, one multiplication instead of a division. */
static inline mh_pool *
mh_pool_find(mh_blocks *t, uintptr_t ptr, uint32_t *pos)
{
    if (t->last_leaf == NULL)
        return NULL;
    uintptr_t key = ptr >> MH_DIR_SHIFT;
    mh_pool **leaf = key == t->last_key ? t->last_leaf : mh_dir_leaf(t, key);
    if (leaf == NULL)
        return NULL;
    mh_pool *p = leaf[(ptr >> MH_COMPAT_POOL_BITS) & (MH_DIR_LEAF - 1)];
    if (p == NULL)
        return NULL;
    uintptr_t off = ptr - p->first;
    if (off >= MH_POOL_SIZE)
        return NULL;
    uint32_t i = (uint32_t)(((uint64_t)off * p->magic) >> 32);
    if ((uintptr_t)i * p->stride != off || i >= p->nslots)
        return NULL;
    *pos = i;
    return p;
}

/* The slot of position `i` of `p`, NULL while its sub-array is absent. */
static inline mh_block *
mh_pool_slot(const mh_pool *p, uint32_t i)
{
    mh_block *sub = p->sub[i >> MH_SUB_BITS];
    return sub != NULL ? &sub[i & (MH_SUB - 1)] : NULL;
}

/* The out-of-line cases of mh_blocks_put() and mh_blocks_pop(): a new pool
 * entry or sub-array, a front slot taken by another block, a big block, the
 * probed table; releasing an emptied pool entry. */
int mh_blocks_put_slow(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size);
int mh_blocks_pop_slow(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb);
void mh_pool_emptied(mh_blocks *t, mh_pool *p);

/* Whether new blocks of 1 to MH_COMPAT_SMALL_MAX bytes may go to pool
 * entries (pymalloc below memhound, mh_compat_pymalloc_below()).  Blocks
 * already in the table stay where they are and are found either way. */
void mh_blocks_use_pools(mh_blocks *t, int on);

/* Record `ptr`.  If it was already present (a block freed behind the
 * tracer's back), its old size is stored in *replaced_size and 1 returned;
 * 0 for a new block; -1 when the table cannot grow (nothing changed).
 * Inline for the common case, an empty front slot: the allocator hooks call
 * it for every block. */
static inline int
mh_blocks_put(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size)
{
    if (t->last_leaf != NULL && size - 1 < MH_COMPAT_SMALL_MAX) {
        uint32_t i;
        mh_pool *p = mh_pool_find(t, ptr, &i);
        mh_block *s = p != NULL ? mh_pool_slot(p, i) : NULL;
        if (s != NULL && s->ptr == 0) {
            *s = (mh_block){ptr, (uint32_t)size, tb};
            p->count++;
            t->count++;
            return 0;
        }
        return mh_blocks_put_slow(t, ptr, size, tb, replaced_size);
    }
    if (t->front != NULL && size < MH_BIG_SIZE) {
        mh_block *f = &t->front[mh_front_index(ptr)];
        if (f->ptr == 0) {
            *f = (mh_block){ptr, (uint32_t)size, tb};
            t->count++;
            return 0;
        }
    }
    return mh_blocks_put_slow(t, ptr, size, tb, replaced_size);
}

/* Remove `ptr`; 1 and its size/traceback if it was traced, else 0.  Inline
 * for the common case, `ptr` in its front slot. */
static inline int
mh_blocks_pop(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb)
{
    uint32_t i;
    mh_pool *p = mh_pool_find(t, ptr, &i);
    if (p != NULL) {
        mh_block *s = mh_pool_slot(p, i);
        if (s != NULL && s->ptr == ptr) {
            *size = s->size;
            *tb = s->tb;
            s->ptr = 0;
            t->count--;
            if (--p->count == 0)
                mh_pool_emptied(t, p);
            return 1;
        }
    }
    mh_block *f = mh_front_find(t, ptr);
    if (f == NULL)
        return mh_blocks_pop_slow(t, ptr, size, tb);
    *size = f->size;
    *tb = f->tb;
    f->ptr = 0;
    t->count--;
    return 1;
}

/* The slot of `ptr`, or NULL. */
mh_block *mh_blocks_find(mh_blocks *t, uintptr_t ptr);

size_t mh_blocks_size(const mh_blocks *t, const mh_block *b);

void mh_blocks_clear(mh_blocks *t);

/* Set MH_BLOCK_OLD on every live block. */
void mh_blocks_mark_old(mh_blocks *t);

/* Iteration: positions 0 .. mh_blocks_positions() - 1; mh_blocks_at() is
 * the live block at a position or NULL. */
size_t mh_blocks_positions(const mh_blocks *t);
const mh_block *mh_blocks_at(const mh_blocks *t, size_t i);

#endif
