/* blocks.c -- see blocks.h. */
#include <string.h>

#include "blocks.h"
#include "memory.h"

#define MH_BLOCKS_MIN 1024
#define MH_BLOCKS_SHRINK_MIN 65536      /* 1 MiB of slots: never shrunk below */

static inline size_t
mh_blocks_home(uintptr_t ptr, size_t capacity)
{
    /* Allocator addresses are 16-byte aligned: drop the constant low bits,
     * then spread the rest over 64 bits before scaling to the capacity. */
    uint64_t h = ((uint64_t)ptr >> 4) * 0x9E3779B97F4A7C15ULL;
    return (size_t)(((unsigned __int128)h * capacity) >> 64);
}

static inline size_t
mh_blocks_next(size_t i, size_t capacity)
{
    return i + 1 == capacity ? 0 : i + 1;
}

static size_t
mh_blocks_lookup(const mh_blocks *t, uintptr_t ptr)
{
    size_t i = mh_blocks_home(ptr, t->capacity);
    while (t->slots[i].ptr != 0 && t->slots[i].ptr != ptr)
        i = mh_blocks_next(i, t->capacity);
    return i;
}

static void
mh_blocks_place(mh_block *slots, size_t capacity, const mh_block *b)
{
    size_t i = mh_blocks_home(b->ptr, capacity);
    while (slots[i].ptr != 0)
        i = mh_blocks_next(i, capacity);
    slots[i] = *b;
}

static int
mh_blocks_resize(mh_blocks *t, size_t capacity)
{
    mh_block *slots = mh_mem_map(capacity * sizeof(mh_block));
    if (slots == NULL)
        return -1;
    for (size_t i = 0; i < t->capacity; i++) {
        if (t->slots[i].ptr != 0)
            mh_blocks_place(slots, capacity, &t->slots[i]);
    }
    mh_mem_unmap(t->slots, t->capacity * sizeof(mh_block));
    t->slots = slots;
    t->capacity = capacity;
    return 0;
}

static int
mh_big_set(mh_blocks *t, uintptr_t ptr, size_t size)
{
    for (size_t i = 0; i < t->nbig; i++) {
        if (t->big[i].ptr == ptr) {
            t->big[i].size = size;
            return 0;
        }
    }
    if (t->nbig == t->big_capacity) {
        size_t cap = t->big_capacity ? t->big_capacity * 2 : 8;
        mh_bigblock *big = mh_mem_realloc(t->big, t->big_capacity * sizeof(mh_bigblock),
                                          cap * sizeof(mh_bigblock));
        if (big == NULL)
            return -1;
        t->big = big;
        t->big_capacity = cap;
    }
    t->big[t->nbig++] = (mh_bigblock){ptr, size};
    return 0;
}

static size_t
mh_big_take(mh_blocks *t, uintptr_t ptr)
{
    for (size_t i = 0; i < t->nbig; i++) {
        if (t->big[i].ptr == ptr) {
            size_t size = t->big[i].size;
            t->big[i] = t->big[--t->nbig];
            return size;
        }
    }
    return 0;
}

size_t
mh_blocks_size(const mh_blocks *t, const mh_block *b)
{
    if (b->size != MH_BIG_SIZE)
        return b->size;
    for (size_t i = 0; i < t->nbig; i++) {
        if (t->big[i].ptr == b->ptr)
            return t->big[i].size;
    }
    return MH_BIG_SIZE;
}

/* Close the gap at `hole` by moving back entries of the run that follows
 * whose home lies at or before it (backward-shift deletion). */
static void
mh_blocks_unlink(mh_blocks *t, size_t hole)
{
    size_t cap = t->capacity;
    for (size_t j = mh_blocks_next(hole, cap); t->slots[j].ptr != 0; j = mh_blocks_next(j, cap)) {
        size_t home = mh_blocks_home(t->slots[j].ptr, cap);
        int movable = hole <= j ? (home <= hole || home > j) : (home <= hole && home > j);
        if (movable) {
            t->slots[hole] = t->slots[j];
            hole = j;
        }
    }
    t->slots[hole].ptr = 0;
}

static int
mh_slots_put(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size)
{
    if ((t->used + 1) * 4 > t->capacity * 3) {
        size_t cap = t->capacity ? t->capacity + t->capacity / 2 : MH_BLOCKS_MIN;
        if (mh_blocks_resize(t, cap) < 0)
            return -1;
    }
    size_t i = mh_blocks_lookup(t, ptr);
    int replaced = t->slots[i].ptr != 0;
    if (replaced) {
        *replaced_size = mh_blocks_size(t, &t->slots[i]);
        if (t->slots[i].size == MH_BIG_SIZE)
            mh_big_take(t, ptr);
    }
    uint32_t slot_size = (uint32_t)size;
    if (size >= MH_BIG_SIZE) {
        if (mh_big_set(t, ptr, size) < 0) {
            if (replaced)       /* keep the table consistent: drop the stale entry */
                mh_blocks_unlink(t, i), t->used--;
            return -1;
        }
        slot_size = MH_BIG_SIZE;
    }
    t->slots[i] = (mh_block){ptr, slot_size, tb};
    if (!replaced)
        t->used++;
    return replaced;
}

static mh_block *
mh_slots_find(mh_blocks *t, uintptr_t ptr)
{
    if (t->used == 0)
        return NULL;
    size_t i = mh_blocks_lookup(t, ptr);
    return t->slots[i].ptr != 0 ? &t->slots[i] : NULL;
}

static int
mh_slots_pop(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb)
{
    if (t->used == 0)
        return 0;
    size_t i = mh_blocks_lookup(t, ptr);
    if (t->slots[i].ptr == 0)
        return 0;
    *size = t->slots[i].size == MH_BIG_SIZE ? mh_big_take(t, ptr) : t->slots[i].size;
    *tb = t->slots[i].tb;
    mh_blocks_unlink(t, i);
    t->used--;
    /* Shrink only big, nearly empty tables, and to a quarter full: programs
     * that fill and empty a batch of objects in a loop would otherwise
     * rehash (and fault in fresh pages) on every cycle. */
    if (t->capacity > MH_BLOCKS_SHRINK_MIN && t->used * 16 < t->capacity) {
        size_t cap = t->used * 4 > MH_BLOCKS_SHRINK_MIN ? t->used * 4 : MH_BLOCKS_SHRINK_MIN;
        (void)mh_blocks_resize(t, cap);   /* failing to shrink is harmless */
    }
    return 1;
}

/* ---------------------------------------------------------------- front */

/* Sizes of 4 GiB and more do not fit a front slot: straight to the table. */
static int
mh_blocks_put_big(mh_blocks *t, mh_block *f, uintptr_t ptr, size_t size, uint32_t tb,
                  size_t *replaced_size)
{
    size_t stale = 0;
    int rc = mh_slots_put(t, ptr, size, tb, &stale);
    if (rc < 0)
        return -1;
    t->count += rc == 0;
    if (f->ptr == ptr) {
        stale += f->size;
        f->ptr = 0;
        t->count--;
        rc = 1;
    }
    if (rc == 1)
        *replaced_size = stale;
    return rc;
}

int
mh_blocks_put_slow(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size)
{
    if (t->front == NULL && (t->front = mh_mem_map(MH_FRONT * sizeof(mh_block))) == NULL)
        return -1;
    mh_block *f = &t->front[mh_front_index(ptr)];
    if (size >= MH_BIG_SIZE)
        return mh_blocks_put_big(t, f, ptr, size, tb, replaced_size);
    if (f->ptr == ptr) {
        *replaced_size = f->size;
        *f = (mh_block){ptr, (uint32_t)size, tb};
        return 1;
    }
    int replaced = 0;
    if (f->ptr != 0) {
        /* Evict the older block.  If the table already had it (a block
         * freed behind the tracer's back), the stale size is reported now. */
        int rc = mh_slots_put(t, f->ptr, f->size, f->tb, replaced_size);
        if (rc < 0)
            return -1;
        if (rc == 1) {
            replaced = 1;
            t->count--;
        }
    }
    *f = (mh_block){ptr, (uint32_t)size, tb};
    t->count++;
    return replaced;
}

mh_block *
mh_blocks_find(mh_blocks *t, uintptr_t ptr)
{
    mh_block *f = mh_front_find(t, ptr);
    return f != NULL ? f : mh_slots_find(t, ptr);
}

int
mh_blocks_pop_slow(mh_blocks *t, uintptr_t ptr, size_t *size, uint32_t *tb)
{
    if (!mh_slots_pop(t, ptr, size, tb))
        return 0;
    t->count--;
    return 1;
}

size_t
mh_blocks_positions(const mh_blocks *t)
{
    return (t->front ? MH_FRONT : 0) + (t->slots ? t->capacity : 0);
}

const mh_block *
mh_blocks_at(const mh_blocks *t, size_t i)
{
    size_t nfront = t->front ? MH_FRONT : 0;
    const mh_block *b = i < nfront ? &t->front[i] : &t->slots[i - nfront];
    return b->ptr != 0 ? b : NULL;
}

void
mh_blocks_mark_old(mh_blocks *t)
{
    size_t nfront = t->front ? MH_FRONT : 0;
    for (size_t i = 0; i < nfront; i++)
        t->front[i].tb |= MH_BLOCK_OLD;
    for (size_t i = 0; t->slots != NULL && i < t->capacity; i++)
        t->slots[i].tb |= MH_BLOCK_OLD;
}

void
mh_blocks_clear(mh_blocks *t)
{
    mh_mem_unmap(t->front, MH_FRONT * sizeof(mh_block));
    mh_mem_unmap(t->slots, t->capacity * sizeof(mh_block));
    mh_mem_free(t->big, t->big_capacity * sizeof(mh_bigblock));
    memset(t, 0, sizeof(*t));
}
