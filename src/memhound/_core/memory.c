/* memory.c -- see memory.h. */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

#include "memory.h"

static struct {
    _Atomic size_t used;
    _Atomic size_t limit;
} mh_mem;

static int
mh_mem_reserve(size_t size)
{
    size_t limit = atomic_load_explicit(&mh_mem.limit, memory_order_relaxed);
    size_t prev = atomic_fetch_add_explicit(&mh_mem.used, size, memory_order_relaxed);
    if (limit != 0 && prev + size > limit) {
        atomic_fetch_sub_explicit(&mh_mem.used, size, memory_order_relaxed);
        return -1;
    }
    return 0;
}

static void
mh_mem_release(size_t size)
{
    atomic_fetch_sub_explicit(&mh_mem.used, size, memory_order_relaxed);
}

void *
mh_mem_malloc(size_t size)
{
    if (mh_mem_reserve(size) < 0)
        return NULL;
    void *p = malloc(size ? size : 1);
    if (p == NULL)
        mh_mem_release(size);
    return p;
}

void *
mh_mem_calloc(size_t nelem, size_t elsize)
{
    if (elsize != 0 && nelem > (size_t)-1 / elsize)
        return NULL;
    size_t size = nelem * elsize;
    if (mh_mem_reserve(size) < 0)
        return NULL;
    void *p = calloc(nelem ? nelem : 1, elsize ? elsize : 1);
    if (p == NULL)
        mh_mem_release(size);
    return p;
}

void *
mh_mem_realloc(void *ptr, size_t old_size, size_t new_size)
{
    if (new_size > old_size && mh_mem_reserve(new_size - old_size) < 0)
        return NULL;
    void *p = realloc(ptr, new_size ? new_size : 1);
    if (p == NULL) {
        if (new_size > old_size)
            mh_mem_release(new_size - old_size);
        return NULL;
    }
    if (new_size < old_size)
        mh_mem_release(old_size - new_size);
    return p;
}

void
mh_mem_free(void *ptr, size_t size)
{
    if (ptr == NULL)
        return;
    free(ptr);
    mh_mem_release(size);
}

void *
mh_mem_map(size_t size)
{
    if (size == 0 || mh_mem_reserve(size) < 0)
        return NULL;
    void *p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
        mh_mem_release(size);
        return NULL;
    }
    return p;
}

void
mh_mem_unmap(void *ptr, size_t size)
{
    if (ptr == NULL)
        return;
    munmap(ptr, size);
    mh_mem_release(size);
}

size_t
mh_mem_used(void)
{
    return atomic_load_explicit(&mh_mem.used, memory_order_relaxed);
}

void
mh_mem_set_limit(size_t limit)
{
    atomic_store_explicit(&mh_mem.limit, limit, memory_order_relaxed);
}
