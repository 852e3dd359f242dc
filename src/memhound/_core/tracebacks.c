/* tracebacks.c -- see tracebacks.h. */
#include <string.h>

#include "memory.h"
#include "tracebacks.h"

#define MH_TB_MIN_INDEX 1024

/* Grow `*arr` (elements of `elsize`) so that it holds at least `need`. */
static int
mh_tb_reserve(void **arr, size_t *capacity, size_t need, size_t elsize)
{
    if (need <= *capacity)
        return 0;
    size_t cap = *capacity ? *capacity : 256;
    while (cap < need)
        cap *= 2;
    void *p = mh_mem_realloc(*arr, *capacity * elsize, cap * elsize);
    if (p == NULL)
        return -1;
    *arr = p;
    *capacity = cap;
    return 0;
}

static void
mh_tb_index_insert(uint32_t *index, size_t capacity, uint32_t hash, uint32_t id)
{
    size_t mask = capacity - 1;
    for (size_t i = hash & mask;; i = (i + 1) & mask) {
        if (index[i] == 0) {
            index[i] = id + 1;
            return;
        }
    }
}

static int
mh_tb_index_grow(mh_tb_table *t)
{
    size_t cap = t->index_capacity ? t->index_capacity * 2 : MH_TB_MIN_INDEX;
    uint32_t *index = mh_mem_calloc(cap, sizeof(uint32_t));
    if (index == NULL)
        return -1;
    for (size_t id = 0; id < t->count; id++)
        mh_tb_index_insert(index, cap, t->entries[id].hash, (uint32_t)id);
    mh_mem_free(t->index, t->index_capacity * sizeof(uint32_t));
    t->index = index;
    t->index_capacity = cap;
    return 0;
}

/* Entry 0, the empty traceback, exists from the first intern on. */
static int
mh_tb_ensure_empty(mh_tb_table *t)
{
    if (t->count > 0)
        return 0;
    if (mh_tb_reserve((void **)&t->entries, &t->capacity, 1, sizeof(mh_tb)) < 0
        || mh_tb_index_grow(t) < 0)
        return -1;
    t->entries[0] = (mh_tb){mh_tb_hash(NULL, 0, 0), 0, 0, 0};
    t->count = 1;
    mh_tb_index_insert(t->index, t->index_capacity, t->entries[0].hash, 0);
    return 0;
}

/* Called on an intern miss: store a new traceback. */
uint32_t
mh_tb_insert(mh_tb_table *t, const mh_rawframe *frames, int n, int total, uint32_t hash)
{
    if (t->count == 0 && mh_tb_ensure_empty(t) < 0)
        return MH_TB_ERROR;
    if (t->count >= MH_TB_LIMIT
        || mh_tb_reserve((void **)&t->entries, &t->capacity, t->count + 1, sizeof(mh_tb)) < 0
        || mh_tb_reserve((void **)&t->frames, &t->frames_capacity, t->nframes + (size_t)n,
                         sizeof(mh_rawframe)) < 0)
        return MH_TB_ERROR;
    if ((t->count + 1) * 2 > t->index_capacity) {
        if (mh_tb_index_grow(t) < 0)
            return MH_TB_ERROR;
    }
    uint32_t id = (uint32_t)t->count++;
    t->entries[id] = (mh_tb){hash, (uint16_t)n, (uint16_t)total, (uint32_t)t->nframes};
    if (n > 0)      /* frames may be NULL for a frameless traceback */
        memcpy(&t->frames[t->nframes], frames, (size_t)n * sizeof(mh_rawframe));
    for (int k = 0; k < n; k++)
        Py_INCREF(frames[k].code);
    t->nframes += (size_t)n;
    mh_tb_index_insert(t->index, t->index_capacity, hash, id);
    return id;
}

void
mh_tb_clear(mh_tb_table *t, PyObject ***codes, size_t *ncodes)
{
    *codes = NULL;
    *ncodes = 0;
    if (t->nframes > 0) {
        *codes = mh_mem_malloc(t->nframes * sizeof(PyObject *));
        if (*codes != NULL) {
            for (size_t i = 0; i < t->nframes; i++)
                (*codes)[i] = t->frames[i].code;
            *ncodes = t->nframes;
        }
        /* Without memory for the list the references leak: better than
         * releasing them while the tables are half torn down. */
    }
    mh_mem_free(t->entries, t->capacity * sizeof(mh_tb));
    mh_mem_free(t->frames, t->frames_capacity * sizeof(mh_rawframe));
    mh_mem_free(t->index, t->index_capacity * sizeof(uint32_t));
    memset(t, 0, sizeof(*t));
}
