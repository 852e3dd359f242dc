/* blocks.h -- the live-block table (mh_blocks_*).
 *
 * Maps the address of every traced memory block to its size and traceback id,
 * in two levels of 16-byte slots {address, size, traceback}:
 *
 * - The front: 65536 slots indexed by address bits 4..19, no hashing and no
 *   probing.  A new block always goes there; the block it displaces moves to
 *   the probed table.  The allocator hands out neighbouring and recently
 *   freed addresses, so the blocks of a program's working set land in
 *   neighbouring, cache-warm slots, and a block freed before it is displaced
 *   never touches the probed table.  Cost: 1 MiB of address space per
 *   table, mapped on the first block; only pages that addresses map to take
 *   memory.
 * - The probed table: open addressing with linear probing; the slot index is
 *   the high half of (mixed address x capacity), so the capacity need not be
 *   a power of two.  It grows by 1.5x when 3/4 full, so a block there costs
 *   21-32 bytes; a table of more than 65536 slots shrinks
 *   to 1/4 full when under 1/16 full.  Deletion shifts the following run back
 *   instead of leaving tombstones, keeping probe runs short under churn.
 *
 * Sizes of 4 GiB and more do not fit the slot; they are kept in a small side
 * list (there can only be a handful of such blocks).
 *
 * Slots live in anonymous mmap memory (memory.h), so the table never
 * allocates through the hooks it serves.  Not thread-safe: the caller holds
 * the GIL or the table's lock.
 */
#ifndef MH_BLOCKS_H
#define MH_BLOCKS_H

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

typedef struct {
    mh_block *front;            /* MH_FRONT slots, or NULL before the first block */
    mh_block *slots;
    size_t capacity, used;      /* used: slots taken in `slots` */
    size_t count;               /* live blocks: front + slots */
    mh_bigblock *big;
    size_t nbig, big_capacity;
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

/* The out-of-line cases of mh_blocks_put() and mh_blocks_pop(): a front
 * slot taken by another block, a big block, the probed table. */
int mh_blocks_put_slow(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size);
int mh_blocks_pop_slow(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb);

/* Record `ptr`.  If it was already present (a block freed behind the
 * tracer's back), its old size is stored in *replaced_size and 1 returned;
 * 0 for a new block; -1 when the table cannot grow (nothing changed).
 * Inline for the common case, an empty front slot: the allocator hooks call
 * it for every block. */
static inline int
mh_blocks_put(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size)
{
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
