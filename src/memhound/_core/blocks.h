/* blocks.h -- the live-block table (mh_blocks_*).
 *
 * Maps the address of every traced memory block to its size and traceback id.
 * Open addressing with linear probing over 16-byte slots {address, size,
 * traceback}; the slot index is the high half of (mixed address x capacity),
 * so the capacity need not be a power of two.  The table grows by 1.5x when
 * 3/4 full, so a live block costs 21-32 bytes (tracemalloc: ~92); a table of
 * more than 65536 slots shrinks to 1/4 full when under 1/16 full.  Deletion shifts the following run back instead
 * of leaving tombstones, keeping probe runs short under churn.
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

typedef struct {
    mh_block *slots;
    size_t capacity, count;
    mh_bigblock *big;
    size_t nbig, big_capacity;
} mh_blocks;

/* Record `ptr`.  If it was already present (a block freed behind the
 * tracer's back), its old size is stored in *replaced_size and 1 returned;
 * 0 for a new block; -1 when the table cannot grow (nothing changed). */
int mh_blocks_put(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size);

/* Remove `ptr`; 1 and its size/traceback if it was traced, else 0. */
int mh_blocks_pop(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb);

/* The slot of `ptr`, or NULL. */
mh_block *mh_blocks_find(mh_blocks *t, uintptr_t ptr);

size_t mh_blocks_size(const mh_blocks *t, const mh_block *b);

void mh_blocks_clear(mh_blocks *t);

size_t mh_blocks_memory(const mh_blocks *t);

#define MH_BLOCKS_FOREACH(t, b) \
    for (mh_block *b = (t)->slots; (t)->slots && b < (t)->slots + (t)->capacity; b++) \
        if (b->ptr != 0)

#endif
