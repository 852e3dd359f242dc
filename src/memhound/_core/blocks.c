/* blocks.c -- see blocks.h. */
#include "blocks.h"
#include "memory.h"

#include <string.h>

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
        /* First the size the last session needed, if memory allows: a guess. */
        int sized = t->capacity == 0 && t->hint / 3 * 4 + 1 > cap
                    && mh_blocks_resize(t, t->hint / 3 * 4 + 1) == 0;
        if (!sized && mh_blocks_resize(t, cap) < 0)
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
    if (!replaced && ++t->used > t->hint)
        t->hint = t->used;
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


/* ---------------------------------------------------------------- pools */

/* The leaf for addresses with `key`, remembered as the last one; NULL if
 * there is none. */
mh_pool **
mh_dir_leaf(mh_blocks *t, uintptr_t key)
{
    for (int k = 0; k < t->nleaves; k++) {
        if (t->leaves[k].key == key) {
            t->last_key = key;
            t->last_leaf = t->leaves[k].entries;
            return t->last_leaf;
        }
    }
    return NULL;
}

void
mh_blocks_use_pools(mh_blocks *t, int on)
{
    t->use_pools = on;
}

static mh_block *
mh_sub_new(mh_blocks *t)
{
    if (t->nspare_subs > 0)
        return t->spare_subs[--t->nspare_subs];
    return mh_mem_calloc(MH_SUB, sizeof(mh_block));
}

/* The entry of the pool holding `ptr`, a block of `size` bytes, made on
 * demand; NULL if `ptr` is not at a block position of that pool (not a
 * pymalloc block) or memory ran out. */
static mh_pool *
mh_pool_get(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t *pos)
{
    uintptr_t base = ptr & ~(MH_POOL_SIZE - 1);
    uint32_t stride = (uint32_t)((size + MH_COMPAT_ALIGN - 1) & ~(size_t)(MH_COMPAT_ALIGN - 1));
    uintptr_t first = base + MH_COMPAT_POOL_OVERHEAD;
    /* Check the position before making anything: a small block that is not
     * pymalloc's (realloc keeps malloc's blocks in malloc) must not cost a
     * pool entry. */
    if (ptr < first || (ptr - first) % stride != 0)
        return NULL;
    uint32_t nslots = (uint32_t)((MH_POOL_SIZE - MH_COMPAT_POOL_OVERHEAD) / stride);
    uint32_t i = (uint32_t)((ptr - first) / stride);
    if (i >= nslots)
        return NULL;
    uintptr_t key = ptr >> MH_DIR_SHIFT;
    mh_pool **leaf = mh_dir_leaf(t, key);
    if (leaf == NULL) {
        if (t->nleaves == MH_DIR_LEAVES || (leaf = mh_mem_map(MH_DIR_LEAF * sizeof(mh_pool *))) == NULL)
            return NULL;
        t->leaves[t->nleaves].key = key;
        t->leaves[t->nleaves++].entries = leaf;
        t->last_key = key;
        t->last_leaf = leaf;
    }
    if (t->npools == t->pools_capacity) {
        size_t cap = t->pools_capacity ? t->pools_capacity * 2 : 64;
        mh_pool **pools = mh_mem_realloc(t->pools, t->pools_capacity * sizeof(mh_pool *),
                                         cap * sizeof(mh_pool *));
        if (pools == NULL)
            return NULL;
        t->pools = pools;
        t->pools_capacity = cap;
    }
    mh_pool *p = t->nspare_pools > 0 ? t->spare_pools[--t->nspare_pools]
                                     : mh_mem_calloc(1, sizeof(mh_pool));
    if (p == NULL)
        return NULL;
    p->first = first;
    p->stride = stride;
    p->magic = (uint32_t)((((uint64_t)1 << 32) + stride - 1) / stride);
    p->nslots = nslots;
    p->count = 0;
    p->retired = 0;
    p->index = t->npools;
    t->pools[t->npools++] = p;
    leaf[(ptr >> MH_COMPAT_POOL_BITS) & (MH_DIR_LEAF - 1)] = p;
    *pos = i;
    return p;
}

/* Put a small block into its pool entry: 0 new, 1 replaced, 2 when `ptr`
 * is not at a block position or no memory is left for its entry (the
 * caller uses the other parts, which may still have room). */
static int
mh_pool_put(mh_blocks *t, uintptr_t ptr, size_t size, uint32_t tb, size_t *replaced_size)
{
    uint32_t i;
    mh_pool *p = mh_pool_find(t, ptr, &i);
    if (p == NULL) {
        /* An entry for another stride (a block freed behind the tracer's
         * back, or not pymalloc's): the position decides, not the size. */
        mh_pool **leaf = t->last_leaf ? mh_dir_leaf(t, ptr >> MH_DIR_SHIFT) : NULL;
        if (leaf != NULL && leaf[(ptr >> MH_COMPAT_POOL_BITS) & (MH_DIR_LEAF - 1)] != NULL)
            return 2;
        if (!t->use_pools)
            return 2;
        p = mh_pool_get(t, ptr, size, &i);
        if (p == NULL)
            return 2;
    }
    mh_block **sub = &p->sub[i >> MH_SUB_BITS];
    if (*sub == NULL && (*sub = mh_sub_new(t)) == NULL) {
        if (p->count == 0)
            mh_pool_emptied(t, p);
        return 2;
    }
    mh_block *s = &(*sub)[i & (MH_SUB - 1)];
    if (s->ptr == ptr) {
        *replaced_size = s->size;
        s->size = (uint32_t)size;
        s->tb = tb;
        return 1;
    }
    *s = (mh_block){ptr, (uint32_t)size, tb};
    p->count++;
    t->count++;
    return 0;
}

static void
mh_sub_release(mh_blocks *t, mh_block **sub)
{
    if (*sub == NULL)
        return;
    if (t->nspare_subs < MH_SPARE_SUBS)
        t->spare_subs[t->nspare_subs++] = *sub;
    else
        mh_mem_free(*sub, MH_SUB * sizeof(mh_block));
    *sub = NULL;
}

/* Remove an entry without traced blocks from the directory and free it.
 * Released memory is kept for reuse up to a few entries: its slots are
 * empty already. */
static void
mh_pool_release(mh_blocks *t, mh_pool *p)
{
    for (size_t k = 0; k < MH_POOL_SUBS; k++)
        mh_sub_release(t, &p->sub[k]);
    uintptr_t ptr = p->first;
    mh_dir_leaf(t, ptr >> MH_DIR_SHIFT)[(ptr >> MH_COMPAT_POOL_BITS) & (MH_DIR_LEAF - 1)] = NULL;
    mh_pool *last = t->pools[--t->npools];
    t->pools[p->index] = last;
    last->index = p->index;
    if (t->nspare_pools < MH_SPARE_POOLS)
        t->spare_pools[t->nspare_pools++] = p;
    else
        mh_mem_free(p, sizeof(mh_pool));
}

/* Called when entry `p` has no traced block left.  It is retired: it stays
 * in the directory, with its sub-arrays, until MH_RETIRED entries emptied
 * after it, and only then is released if still empty.  A pool that holds
 * only short-lived traced blocks (temporaries among untraced objects)
 * would otherwise make and release its entry on every allocation.  Keeping
 * it is safe whatever the memory becomes meanwhile: slots are matched by
 * address (blocks.h). */
void
mh_pool_emptied(mh_blocks *t, mh_pool *p)
{
    if (p->retired)
        return;
    mh_pool *old = t->retired[t->retired_next];
    if (old != NULL) {
        old->retired = 0;
        if (old->count == 0)
            mh_pool_release(t, old);
    }
    p->retired = 1;
    t->retired[t->retired_next] = p;
    t->retired_next = (t->retired_next + 1) % MH_RETIRED;
}

static void
mh_pools_clear(mh_blocks *t)
{
    for (size_t j = 0; j < t->npools; j++) {
        mh_pool *p = t->pools[j];
        for (size_t k = 0; k < MH_POOL_SUBS; k++)
            mh_mem_free(p->sub[k], p->sub[k] ? MH_SUB * sizeof(mh_block) : 0);
        mh_mem_free(p, sizeof(mh_pool));
    }
    for (int k = 0; k < t->nspare_subs; k++)
        mh_mem_free(t->spare_subs[k], MH_SUB * sizeof(mh_block));
    for (int k = 0; k < t->nspare_pools; k++)
        mh_mem_free(t->spare_pools[k], sizeof(mh_pool));
    mh_mem_free(t->pools, t->pools_capacity * sizeof(mh_pool *));
    for (int k = 0; k < t->nleaves; k++)
        mh_mem_unmap(t->leaves[k].entries, MH_DIR_LEAF * sizeof(mh_pool *));
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
    if (size - 1 < MH_COMPAT_SMALL_MAX && (t->use_pools || t->last_leaf != NULL)) {
        int rc = mh_pool_put(t, ptr, size, tb, replaced_size);
        if (rc != 2)
            return rc;
    }
    if (t->use_pools && t->front == NULL) {
        /* Next to pymalloc's blocks, the others are few and large: the
         * front's megabyte would cost more than it saves. */
        int rc = mh_slots_put(t, ptr, size, tb, replaced_size);
        t->count += rc == 0;
        return rc;
    }
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
    uint32_t i;
    mh_pool *p = mh_pool_find(t, ptr, &i);
    mh_block *s = p != NULL ? mh_pool_slot(p, i) : NULL;
    if (s != NULL && s->ptr == ptr)
        return s;
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

/* Positions: the front, the probed table, then MH_SUBS_ALL positions per
 * pool entry (MH_SUB per sub-array, present or not). */
#define MH_SUBS_ALL (MH_POOL_SUBS * MH_SUB)

size_t
mh_blocks_positions(const mh_blocks *t)
{
    return (t->front ? MH_FRONT : 0) + (t->slots ? t->capacity : 0) + t->npools * MH_SUBS_ALL;
}

const mh_block *
mh_blocks_at(const mh_blocks *t, size_t i)
{
    size_t nfront = t->front ? MH_FRONT : 0;
    size_t nslots = t->slots ? t->capacity : 0;
    const mh_block *b;
    if (i < nfront) {
        b = &t->front[i];
    } else if (i < nfront + nslots) {
        b = &t->slots[i - nfront];
    } else {
        i -= nfront + nslots;
        b = mh_pool_slot(t->pools[i / MH_SUBS_ALL], (uint32_t)(i % MH_SUBS_ALL));
        if (b == NULL)
            return NULL;
    }
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
    for (size_t j = 0; j < t->npools; j++) {
        for (size_t k = 0; k < MH_POOL_SUBS; k++) {
            mh_block *sub = t->pools[j]->sub[k];
            for (size_t i = 0; sub != NULL && i < MH_SUB; i++)
                sub[i].tb |= MH_BLOCK_OLD;
        }
    }
}

void
mh_blocks_clear(mh_blocks *t)
{
    mh_mem_unmap(t->front, MH_FRONT * sizeof(mh_block));
    mh_mem_unmap(t->slots, t->capacity * sizeof(mh_block));
    mh_mem_free(t->big, t->big_capacity * sizeof(mh_bigblock));
    mh_pools_clear(t);
    int use_pools = t->use_pools;
    size_t hint = t->hint;
    memset(t, 0, sizeof(*t));
    t->use_pools = use_pools;
    t->hint = hint;
}
