/* memory.h -- the tracer's own memory.
 *
 * memhound never allocates its bookkeeping through PyMem_* (that would
 * recurse into its own hooks and be traced): small structures come from the
 * C library, large tables from anonymous mmap so that growing and shrinking
 * them returns pages to the system and RSS measures them exactly.
 *
 * Every byte is counted (mh_mem_used(), reported by
 * get_tracemalloc_memory()), and a test-only limit makes allocations fail on
 * purpose so that the out-of-memory paths can be tested.
 */
#ifndef MH_MEMORY_H
#define MH_MEMORY_H

#include <stddef.h>

void *mh_mem_malloc(size_t size);
void *mh_mem_calloc(size_t nelem, size_t elsize);
void *mh_mem_realloc(void *ptr, size_t old_size, size_t new_size);
void mh_mem_free(void *ptr, size_t size);

/* Zeroed, page-backed memory for big tables. */
void *mh_mem_map(size_t size);
void mh_mem_unmap(void *ptr, size_t size);

size_t mh_mem_used(void);
/* 0 = no limit.  Allocations that would push mh_mem_used() above the limit
 * fail (test hook for the out-of-memory paths). */
void mh_mem_set_limit(size_t limit);

#endif
