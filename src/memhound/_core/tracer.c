/* tracer.c -- the tracing engine: allocator hooks, start/stop, and the
 * export of its tables into snapshots and tracebacks (the conversion into
 * Python objects of what the engine records happens here).
 *
 * memhound installs hooks on the three PyMem domains and chains every call
 * to the allocator installed before it.  Each successful allocation records
 * (address -> size, traceback id) in a live-block table (blocks.h); each
 * free removes it.  docs/architecture.md gives the reasons for what follows.
 *
 * Threading.  MEM and OBJ run with the traced interpreter's GIL held: their
 * table (`gil_blocks`), the traceback table, the capture buffer and every
 * field of `mh` marked "GIL" take no lock.  RAW may run without the GIL and
 * without a thread state: its table (`raw_blocks`) is guarded by
 * `raw_lock`, and a RAW block gets a traceback only when its thread holds
 * the GIL.  Traced memory is one atomic counter per table; the peak is a
 * lock-free maximum over their sum.
 *
 * Invariants.
 * - The program's allocation never fails because of memhound: when a table
 *   cannot grow, recording stops at once and a pending call warns and stops
 *   tracing at the next safe point.
 * - memhound never traces itself: its memory comes from memory.h, and a
 *   thread-local flag passes allocations nested in a hook through.
 * - The next allocator is never called with `raw_lock` held: a hook below
 *   memhound may wait for the GIL while the GIL's holder waits for the lock.
 * - stop() unhooks only while memhound is on top of the hook stack;
 *   otherwise it stays installed as a pass-through.
 * - A block's traceback is the stack that created its object, even when the
 *   object reuses a free-listed block: the reference tracer re-stamps it
 *   where there is one, else the free lists stay closed (compat.h).
 * - Only threads of the traced interpreter (`mh.interp`, the one that
 *   called start()) trace MEM/OBJ blocks, capture tracebacks or re-stamp
 *   blocks: a traceback holds code objects, which must not outlive their
 *   interpreter, and another interpreter may run the hooks under a GIL of
 *   its own.  A thread sharing the traced GIL may still untrack a block it
 *   frees; RAW blocks are traced from any thread, with the empty traceback
 *   outside the traced interpreter.  A legacy subinterpreter that started
 *   tracing must stop() before it is destroyed.
 * - fork(): the RAW lock is held across it, so the child inherits
 *   consistent tables and keeps tracing.
 *
 * Costs.  Per traced allocation: the thread-local flag, the stack check or
 * capture (compat.h), interning the traceback on a miss (tracebacks.h) and
 * a store into the block table's front slot in the common case; nothing is
 * allocated and no Python code runs.  The interpreter check is one load and
 * compare while the main interpreter is the only one.  Line numbers are
 * resolved only when a snapshot or a traceback is asked for.
 */
#include <Python.h>
#include <pthread.h>
#include <stdatomic.h>
#include <math.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "blocks.h"
#include "compat.h"
#include "memory.h"
#include "snapshot.h"
#include "tracebacks.h"
#include "tracer.h"

typedef struct {
    PyMemAllocatorEx raw, mem, obj;
} mh_allocators;

#define MH_RECENT 512

static struct {
    _Atomic int tracing;        /* recording allocations */
    int installed;              /* our hooks are somewhere in the chain */
    int nframe;
    /* What the hooks chain to.  Two generations so that re-chaining never
     * rewrites a struct another thread may be reading. */
    mh_allocators saved[2];
    int gen;
    mh_blocks gil_blocks;       /* MEM + OBJ: GIL */
    mh_blocks raw_blocks;       /* RAW: raw_lock */
    pthread_mutex_t raw_lock;
    mh_tb_table tbs;            /* GIL */
    mh_rawframe *scratch;       /* GIL; nframe entries */
    _Atomic size_t gil_current, raw_current, peak;
    uintptr_t last_block;       /* GIL; block whose CREATE event to skip */
    /* GIL; the last traceback seen per newest-frame fingerprint, verified
     * with mh_compat_stack_is() before use. */
    struct { uintptr_t key; uint32_t tb; mh_depth_mark mark; } recent[MH_RECENT];
    int reftracer_on;
    mh_reftracer_fn prev_tracer;
    void *prev_tracer_data;
    _Atomic int failed;         /* out of memory: warning pending */
    int exporting;              /* GIL; take_snapshot() is reading the tables */
    int fail_deferred;          /* GIL; failure to report after the export */
    PyObject *stdlib_stop;      /* tracemalloc.stop while wrapped */
    /* The interpreter that owns the GIL tables (the one that called
     * start()), its GIL, and what mh_compat_newest_interp() returns when it
     * is the only interpreter: itself if it is the main one, else a value
     * no interpreter has (the fast path is for the main interpreter only). */
    PyInterpreterState *interp;
    const void *interp_gil;
    PyInterpreterState *sole;
    /* Sampling: 0 = exact.  Set only while not tracing; the hooks read it
     * after seeing `tracing`. */
    uint64_t sample_every;
    /* The sampling generators: a thread whose generation differs from
     * rng_gen reseeds from rng_seed and its index among the threads that
     * reseeded since (the thread that calls start() is index 0). */
    _Atomic uint64_t rng_gen, rng_threads;
    /* rng_gen for the fast paths (written only while not tracing): a
     * countdown drawn in another session, perhaps at another rate, must
     * not carry over. */
    uint64_t rng_gen_plain;
    uint64_t rng_seed, fixed_seed;
    int seed_fixed;
} mh = {.nframe = 1, .raw_lock = PTHREAD_MUTEX_INITIALIZER};

/* Set while this thread runs inside a hook or memhound's own code: nested
 * allocations pass through untraced.  Initial-exec TLS: one instruction. */
static __thread int mh_tls_busy __attribute__((tls_model("initial-exec")));

/* Sampling, per thread: bytes left before the next recorded allocation
 * (0 = draw a new countdown), and the generator of the countdowns. */
static __thread uint64_t mh_tls_left __attribute__((tls_model("initial-exec")));
static __thread uint64_t mh_tls_rng __attribute__((tls_model("initial-exec")));
static __thread uint64_t mh_tls_rng_gen __attribute__((tls_model("initial-exec")));

/* mh_tls_busy value while mh_still_chained() probes the allocator chain. */
#define MH_PROBE 0x40000000
static int mh_probe_hits;

#define MH_TRACING() atomic_load_explicit(&mh.tracing, memory_order_relaxed)
#define MH_HOT_DECL static inline __attribute__((always_inline))

/* ---------------------------------------------------------------- counters */

static inline void
mh_note_peak(size_t current)
{
    size_t peak = atomic_load_explicit(&mh.peak, memory_order_relaxed);
    while (current > peak
           && !atomic_compare_exchange_weak_explicit(&mh.peak, &peak, current,
                                                     memory_order_relaxed, memory_order_relaxed))
        ;
}

/* Each counter has one writer at a time (the GIL or raw_lock); the other
 * counter is read racily, which can only make the peak lag by one block. */
static inline void
mh_counter_add(_Atomic size_t *counter, _Atomic size_t *other, size_t add, size_t sub)
{
    size_t v = atomic_load_explicit(counter, memory_order_relaxed) + add - sub;
    atomic_store_explicit(counter, v, memory_order_relaxed);
    if (add > sub)
        mh_note_peak(v + atomic_load_explicit(other, memory_order_relaxed));
}

/* What a recorded block of `size` bytes adds to the traced memory: itself,
 * or in sampled mode the bytes it stands for (snapshot.h). */
static __attribute__((noinline)) size_t
mh_sampled_bytes(size_t size)
{
    return (size_t)mh_sample_estimate(size, mh.sample_every);
}

static inline size_t
mh_counted(size_t size)
{
    return __builtin_expect(mh.sample_every == 0, 1) ? size : mh_sampled_bytes(size);
}

#define MH_GIL_ADD(add, sub) mh_counter_add(&mh.gil_current, &mh.raw_current, add, sub)
#define MH_RAW_ADD(add, sub) mh_counter_add(&mh.raw_current, &mh.gil_current, add, sub)

/* ---------------------------------------------------------------- failure */

static int mh_stop_locked(void);

static int
mh_failure_pending(void *arg)
{
    (void)arg;
    if (!atomic_exchange(&mh.failed, 0))
        return 0;
    if (mh.exporting) {
        /* A finalizer ran this during take_snapshot(): stop after it. */
        atomic_store(&mh.failed, 1);
        mh.fail_deferred = 1;
        return 0;
    }
    if (mh.installed)
        mh_stop_locked();
    return PyErr_WarnEx(PyExc_RuntimeWarning,
                        "memhound stopped tracing: out of memory for its own tables", 1);
}

/* Called from a hook: stop recording now, warn and clean up later. */
static void
mh_fail(void)
{
    atomic_store_explicit(&mh.tracing, 0, memory_order_relaxed);
    if (atomic_exchange(&mh.failed, 1) == 0)
        Py_AddPendingCall(mh_failure_pending, NULL);
}

/* ---------------------------------------------------------------- sampling */

/* splitmix64: one multiply-xorshift mix per draw, a 64-bit state per thread,
 * and well-distributed output even from neighbouring seeds. */
static inline uint64_t
mh_mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ULL;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBULL;
    return z ^ (z >> 31);
}

/* Bytes up to and including the next recorded one: the points of a Poisson
 * process of rate 1/sample_every over the bytes allocated, so a block of s
 * bytes holds one with probability 1 - exp(-s / sample_every), whatever
 * came before it.  ceil() keeps that exact for whole bytes. */
static uint64_t
mh_sample_draw(void)
{
    mh_tls_rng += 0x9E3779B97F4A7C15ULL;
    double u = (double)(mh_mix64(mh_tls_rng) >> 11) * 0x1.0p-53;   /* [0, 1) */
    double x = ceil(-log1p(-u) * (double)mh.sample_every);
    return x < 1.0 ? 1 : x >= 0x1.0p63 ? (uint64_t)1 << 63 : (uint64_t)x;
}

/* The countdown ran out within a block of `size` bytes (or the thread has
 * no countdown of this session yet): 1 if the block is recorded. */
static __attribute__((noinline)) int
mh_sample_slow(size_t size)
{
    uint64_t gen = atomic_load_explicit(&mh.rng_gen, memory_order_relaxed);
    if (mh_tls_rng_gen != gen) {
        uint64_t index = atomic_fetch_add_explicit(&mh.rng_threads, 1, memory_order_relaxed);
        mh_tls_rng = mh_mix64(mh.rng_seed ^ mh_mix64(index + 1));
        mh_tls_rng_gen = gen;
        mh_tls_left = mh_sample_draw();
        if (size < mh_tls_left) {
            mh_tls_left -= size;
            return 0;
        }
    }
    /* The next point after this block is as far as a fresh draw: the
     * process has no memory. */
    mh_tls_left = mh_sample_draw();
    return 1;
}

/* 1 if an allocation of `size` bytes is recorded; in exact mode always.
 * An unrecorded one costs this countdown only. */
MH_HOT_DECL int
mh_sampled(size_t size)
{
    if (__builtin_expect(mh.sample_every == 0, 1))
        return 1;
    uint64_t left = mh_tls_left;
    if (__builtin_expect(size < left && mh_tls_rng_gen == mh.rng_gen_plain, 1)) {
        mh_tls_left = left - size;
        return 0;
    }
    return mh_sample_slow(size);
}

/* Sampled mode keeps only the sampled blocks in the tables, and nearly
 * every free is of an unsampled block.  A counting filter per table answers
 * "not sampled" with one byte load, indexed like the block table's front
 * (address bits 4..19, so that neighbouring blocks share cache lines): a
 * count of the sampled blocks at each index, saturating at 255 (then never
 * decremented: only false positives, which the table lookup resolves).
 * Written by the table's owner (GIL or raw_lock); read without it by frees,
 * which is safe because a block being freed was inserted before its address
 * reached the freeing thread.  Allocated at the first sampled start() and
 * kept: a hook of another thread may read it at any time. */
#define MH_FILTER_SIZE ((size_t)1 << 16)
static _Atomic uint8_t *mh_gil_filter, *mh_raw_filter;

static inline _Atomic uint8_t *
mh_filter_at(_Atomic uint8_t *filter, uintptr_t ptr)
{
    return &filter[(ptr >> 4) & (MH_FILTER_SIZE - 1)];
}

/* 1 if `ptr` may be a sampled block of the filter's table. */
static inline int
mh_filter_maybe(_Atomic uint8_t *filter, uintptr_t ptr)
{
    return atomic_load_explicit(mh_filter_at(filter, ptr), memory_order_relaxed) != 0;
}

static inline void
mh_filter_add(_Atomic uint8_t *filter, uintptr_t ptr)
{
    _Atomic uint8_t *c = mh_filter_at(filter, ptr);
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    if (v < 255)
        atomic_store_explicit(c, v + 1, memory_order_relaxed);
}

static inline void
mh_filter_del(_Atomic uint8_t *filter, uintptr_t ptr)
{
    _Atomic uint8_t *c = mh_filter_at(filter, ptr);
    uint8_t v = atomic_load_explicit(c, memory_order_relaxed);
    if (v != 0 && v < 255)
        atomic_store_explicit(c, v - 1, memory_order_relaxed);
}

static void
mh_filter_clear(_Atomic uint8_t *filter)
{
    for (size_t i = 0; filter != NULL && i < MH_FILTER_SIZE; i++)
        atomic_store_explicit(&filter[i], 0, memory_order_relaxed);
}

static int
mh_filters_alloc(void)
{
    if (mh_gil_filter != NULL)
        return 0;
    _Atomic uint8_t *f = mh_mem_calloc(2 * MH_FILTER_SIZE, 1);
    if (f == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mh_raw_filter = f + MH_FILTER_SIZE;
    mh_gil_filter = f;
    return 0;
}

/* The fast path of sampled mode: 1 if an allocation of `size` bytes is not
 * sampled and needs nothing else.  The caller still sets the busy flag
 * around the next allocator: what pymalloc allocates for itself meanwhile
 * (RAW blocks for large objects, its arena bookkeeping, whose amount
 * depends on the addresses mmap returns) must neither be traced nor move
 * the countdown, or a fixed seed would not reproduce a run. */
MH_HOT_DECL int
mh_sample_skip(size_t size)
{
    /* Not tracing: the countdown may move, the block goes untraced anyway. */
    uint64_t left = mh_tls_left;
    if (__builtin_expect(size < left, 1) && !mh_tls_busy && mh_tls_rng_gen == mh.rng_gen_plain) {
        mh_tls_left = left - size;
        return 1;
    }
    return 0;
}

/* A new sampling session: fresh seeds, and the calling thread starts at
 * index 0 so that a fixed seed reproduces its samples. */
static void
mh_sample_session(void)
{
    uint64_t seed = mh.fixed_seed;
    if (!mh.seed_fixed) {
        struct timespec ts;
        clock_gettime(CLOCK_MONOTONIC, &ts);
        seed = mh_mix64((uint64_t)ts.tv_nsec ^ ((uint64_t)ts.tv_sec << 32)
                        ^ ((uint64_t)getpid() << 16) ^ (uint64_t)(uintptr_t)&mh_tls_rng);
    }
    mh.rng_seed = seed;
    uint64_t gen = atomic_fetch_add(&mh.rng_gen, 1) + 1;
    mh.rng_gen_plain = gen;
    /* This thread is index 0 (mh_sample_slow() gives the others 1, 2, ...
     * as they first allocate). */
    atomic_store(&mh.rng_threads, 1);
    mh_tls_rng = mh_mix64(seed ^ mh_mix64(1));
    mh_tls_rng_gen = gen;
    mh_tls_left = mh_sample_draw();
}

/* ---------------------------------------------------------------- capture */

/* The hot path of every traced allocation is one function per hook: the
 * helpers below are forced inline, which saves their calls and register
 * saves. */
#define MH_HOT static inline __attribute__((always_inline))

/* Traceback id of the calling thread's stack; the GIL is held. */
MH_HOT uint32_t
mh_capture(PyThreadState *tstate)
{
    if (tstate == NULL)
        return MH_TB_EMPTY;
    /* Allocation sites repeat: first try the traceback last seen with the
     * same newest frame, comparing while walking (no copy, no hash). */
    uintptr_t key = mh_compat_top_key(tstate);
    size_t slot = (size_t)((key * 0x9E3779B97F4A7C15ULL) >> 55) & (MH_RECENT - 1);
    if (mh.recent[slot].key == key && key != 0) {
        const mh_tb *tb = mh_tb_get(&mh.tbs, mh.recent[slot].tb);
        if (mh_compat_stack_is(tstate, mh_tb_frames(&mh.tbs, tb), tb->nframe, tb->total,
                               &mh.recent[slot].mark))
            return mh.recent[slot].tb;
    }
    int total;
    mh_depth_mark mark;
    int n = mh_compat_capture(tstate, mh.scratch, mh.nframe, &total, &mark);
    uint32_t id = mh_tb_intern(&mh.tbs, mh.scratch, n, total);
    if (id != MH_TB_ERROR && id != MH_TB_EMPTY) {
        mh.recent[slot].key = key;
        mh.recent[slot].tb = id;
        mh.recent[slot].mark = mark;
    }
    return id;
}

/* ---------------------------------------------------------------- interpreters */

#define MH_NOT_AN_INTERP ((PyInterpreterState *)(uintptr_t)1)

/* 1 while the traced interpreter is the only one: then every thread in a
 * hook belongs to it.  One load and a compare, predicted true. */
MH_HOT int
mh_alone(void)
{
    return __builtin_expect(mh_compat_newest_interp() == mh.sole, 1);
}

/* MH_INTERP_* of the calling thread in a MEM/OBJ hook (it holds its
 * interpreter's GIL).  The thread state is fetched only when other
 * interpreters exist. */
MH_HOT int
mh_gil_relation(void)
{
    if (mh_alone())
        return MH_INTERP_TRACED;
    return mh_compat_interp_relation(mh_compat_tstate(), mh.interp, mh.interp_gil);
}

/* 1 if the RAW hook's thread, whose state is `tstate` when it holds a GIL,
 * may capture a traceback: only with the traced interpreter's GIL, and
 * never one made of another interpreter's code objects. */
MH_HOT int
mh_raw_may_capture(PyThreadState *tstate)
{
    return tstate != NULL
           && (mh_alone()
               || mh_compat_interp_relation(tstate, mh.interp, mh.interp_gil) == MH_INTERP_TRACED);
}

MH_HOT void
mh_track_gil(void *ptr, size_t size)
{
    uint32_t tb = mh_capture(mh_compat_tstate());
    size_t old = 0;
    if (tb == MH_TB_ERROR || mh_blocks_put(&mh.gil_blocks, (uintptr_t)ptr, size, tb, &old) < 0) {
        mh_fail();
        return;
    }
    mh.last_block = (uintptr_t)ptr;
    if (mh.sample_every)
        mh_filter_add(mh_gil_filter, (uintptr_t)ptr);
    MH_GIL_ADD(mh_counted(size), old ? mh_counted(old) : 0);
}

MH_HOT void
mh_untrack_gil(void *ptr)
{
    size_t size;
    uint32_t tb;
    if (mh.sample_every) {
        if (!mh_filter_maybe(mh_gil_filter, (uintptr_t)ptr))
            return;
        if (mh_blocks_pop(&mh.gil_blocks, (uintptr_t)ptr, &size, &tb)) {
            mh_filter_del(mh_gil_filter, (uintptr_t)ptr);
            MH_GIL_ADD(0, mh_counted(size));
        }
    }
    else if (mh_blocks_pop(&mh.gil_blocks, (uintptr_t)ptr, &size, &tb))
        MH_GIL_ADD(0, mh_counted(size));
    if (mh.last_block == (uintptr_t)ptr)
        mh.last_block = 0;
}

/* Caller holds raw_lock. */
static void
mh_track_raw_locked(void *ptr, size_t size, uint32_t tb)
{
    size_t old = 0;
    if (!MH_TRACING())
        return;
    if (mh_blocks_put(&mh.raw_blocks, (uintptr_t)ptr, size, tb, &old) < 0) {
        mh_fail();
        return;
    }
    if (mh.sample_every)
        mh_filter_add(mh_raw_filter, (uintptr_t)ptr);
    MH_RAW_ADD(mh_counted(size), old ? mh_counted(old) : 0);
}

/* Caller holds raw_lock.  1 and the old entry if `ptr` was traced. */
static int
mh_untrack_raw_locked(void *ptr, size_t *size, uint32_t *tb)
{
    if (!mh_blocks_pop(&mh.raw_blocks, (uintptr_t)ptr, size, tb))
        return 0;
    if (mh.sample_every)
        mh_filter_del(mh_raw_filter, (uintptr_t)ptr);
    MH_RAW_ADD(0, mh_counted(*size));
    return 1;
}

/* ---------------------------------------------------------------- MEM/OBJ hooks */

/* The allocator memhound chained to, for malloc (zero = 0) or calloc. */
static inline void *
mh_next_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    return zero ? a->calloc(a->ctx, nelem, elsize) : a->malloc(a->ctx, elsize);
}

/* The untraced path of both domains; also counts mh_still_chained()'s
 * probe allocations reaching us. */
static inline void *
mh_pass_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    if (mh_tls_busy == MH_PROBE)
        mh_probe_hits++;
    return mh_next_alloc(a, nelem, elsize, zero);
}

/* An allocation of another interpreter: untraced, and so are the RAW
 * blocks pymalloc takes for it (a large object's memory would otherwise
 * show up as an untracebacked RAW trace). */
static inline void *
mh_untraced_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    mh_tls_busy = 1;
    void *ptr = mh_next_alloc(a, nelem, elsize, zero);
    mh_tls_busy = 0;
    return ptr;
}

static __attribute__((noinline)) void *
mh_foreign_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    return mh_untraced_alloc(a, nelem, elsize, zero);
}

MH_HOT void *
mh_gil_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    if (!MH_TRACING() || mh_tls_busy)
        return mh_pass_alloc(a, nelem, elsize, zero);
    /* An unsampled block is untraced, and so are the RAW blocks pymalloc
     * may take for it (the busy flag). */
    if (!mh_sampled(nelem * elsize))
        return mh_untraced_alloc(a, nelem, elsize, zero);
    if (mh_gil_relation() != MH_INTERP_TRACED)
        return mh_foreign_alloc(a, nelem, elsize, zero);
    mh_tls_busy = 1;
    void *ptr = mh_next_alloc(a, nelem, elsize, zero);
    if (ptr != NULL && MH_TRACING())
        mh_track_gil(ptr, nelem * elsize);
    mh_tls_busy = 0;
    return ptr;
}

/* Each hook starts with a tail call to its sampled or its exact body, out of
 * line, so that neither pays for the other's register saves: the sampled
 * fast path is a few instructions, and calls the full body only for a
 * sampled block. */
static __attribute__((noinline)) void *
mh_gil_alloc_full(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    return mh_gil_alloc(a, nelem, elsize, zero);
}

static void *
mh_gil_malloc(void *ctx, size_t size)
{
    if (mh.sample_every != 0 && mh_sample_skip(size)) {
        PyMemAllocatorEx *a = ctx;
        mh_tls_busy = 1;
        void *ptr = a->malloc(a->ctx, size);
        mh_tls_busy = 0;
        return ptr;
    }
    return mh_gil_alloc_full(ctx, 1, size, 0);
}

static void *
mh_gil_calloc(void *ctx, size_t nelem, size_t elsize)
{
    size_t size;
    if (mh.sample_every != 0 && !__builtin_mul_overflow(nelem, elsize, &size)
        && mh_sample_skip(size)) {
        PyMemAllocatorEx *a = ctx;
        mh_tls_busy = 1;
        void *ptr = a->calloc(a->ctx, nelem, elsize);
        mh_tls_busy = 0;
        return ptr;
    }
    return mh_gil_alloc_full(ctx, nelem, elsize, 1);
}

static void *
mh_gil_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    if (mh.sample_every != 0 && (ptr == NULL || !mh_filter_maybe(mh_gil_filter, (uintptr_t)ptr))
        && mh_sample_skip(size)) {
        mh_tls_busy = 1;
        void *ptr2 = a->realloc(a->ctx, ptr, size);
        mh_tls_busy = 0;
        return ptr2;
    }
    if (!MH_TRACING())
        return a->realloc(a->ctx, ptr, size);
    int busy = mh_tls_busy;
    int relation = mh_gil_relation();
    /* A realloc is a new block of `size` bytes for sampling: the old block
     * is untracked whether or not it was sampled, the new one recorded
     * with the probability of its own size. */
    int track = !busy && relation == MH_INTERP_TRACED && mh_sampled(size);
    mh_tls_busy = 1;
    void *ptr2 = a->realloc(a->ctx, ptr, size);
    /* Another interpreter's block under the traced GIL may still be one
     * the traced interpreter allocated; under its own GIL it never is,
     * and the tables are not this thread's to touch. */
    if (ptr2 != NULL && MH_TRACING() && relation != MH_INTERP_OWN_GIL) {
        if (ptr != NULL)
            mh_untrack_gil(ptr);
        if (track)
            mh_track_gil(ptr2, size);
    }
    mh_tls_busy = busy;
    return ptr2;
}

static __attribute__((noinline)) void
mh_untrack_gil_sampled(void *ptr)
{
    if (ptr != NULL && mh_gil_relation() != MH_INTERP_OWN_GIL)
        mh_untrack_gil(ptr);
}

static __attribute__((noinline)) void
mh_gil_free_sampled(PyMemAllocatorEx *a, void *ptr)
{
    /* Untracked first, so that the next allocator is a tail call; the GIL
     * keeps the address from being reused meanwhile. */
    if (MH_TRACING() && mh_filter_maybe(mh_gil_filter, (uintptr_t)ptr))
        mh_untrack_gil_sampled(ptr);
    a->free(a->ctx, ptr);
}

static __attribute__((noinline)) void
mh_gil_free_exact(PyMemAllocatorEx *a, void *ptr)
{
    a->free(a->ctx, ptr);
    /* Even inside memhound's own code: a freed block must never stay traced.
     * A thread under another GIL cannot free a traced block (its
     * interpreter has its own obmalloc) and must not touch the table. */
    if (ptr != NULL && MH_TRACING() && mh_gil_relation() != MH_INTERP_OWN_GIL)
        mh_untrack_gil(ptr);
}

static void
mh_gil_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *a = ctx;
    if (mh.sample_every != 0 && !mh_filter_maybe(mh_gil_filter, (uintptr_t)ptr)) {
        a->free(a->ctx, ptr);
        return;
    }
    if (mh.sample_every != 0)
        mh_gil_free_sampled(ctx, ptr);
    else
        mh_gil_free_exact(ctx, ptr);
}

/* ---------------------------------------------------------------- RAW hooks */

static void *
mh_raw_alloc(PyMemAllocatorEx *a, size_t nelem, size_t elsize, int zero)
{
    if (!MH_TRACING() || mh_tls_busy)
        return mh_pass_alloc(a, nelem, elsize, zero);
    if (!mh_sampled(nelem * elsize))
        return mh_untraced_alloc(a, nelem, elsize, zero);
    mh_tls_busy = 1;
    void *ptr = mh_next_alloc(a, nelem, elsize, zero);
    if (ptr != NULL && MH_TRACING()) {
        PyThreadState *tstate = mh_compat_gil_tstate();
        uint32_t tb = mh_raw_may_capture(tstate) ? mh_capture(tstate) : MH_TB_EMPTY;
        if (tb == MH_TB_ERROR) {
            mh_fail();
        } else {
            pthread_mutex_lock(&mh.raw_lock);
            mh_track_raw_locked(ptr, nelem * elsize, tb);
            pthread_mutex_unlock(&mh.raw_lock);
        }
    }
    mh_tls_busy = 0;
    return ptr;
}

static void *
mh_raw_malloc(void *ctx, size_t size)
{
    return mh_raw_alloc(ctx, 1, size, 0);
}

static void *
mh_raw_calloc(void *ctx, size_t nelem, size_t elsize)
{
    return mh_raw_alloc(ctx, nelem, elsize, 1);
}

static void *
mh_raw_realloc(void *ctx, void *ptr, size_t size)
{
    PyMemAllocatorEx *a = ctx;
    if (!MH_TRACING())
        return a->realloc(a->ctx, ptr, size);
    int busy = mh_tls_busy;
    int track = !busy && mh_sampled(size);
    mh_tls_busy = 1;
    uint32_t tb = MH_TB_EMPTY;
    if (track) {
        PyThreadState *tstate = mh_compat_gil_tstate();
        tb = mh_raw_may_capture(tstate) ? mh_capture(tstate) : MH_TB_EMPTY;
        if (tb == MH_TB_ERROR) {
            mh_fail();
            tb = MH_TB_EMPTY;
        }
    }
    /* Untrack before the call (once moved, the old address may be reused
     * and traced by another thread), re-track after it; a failed realloc
     * puts the old entry back.  The chained realloc runs outside raw_lock:
     * a hook below us (CPython's tracemalloc) may wait for the GIL, whose
     * holder may be waiting for raw_lock. */
    size_t old_size = 0;
    uint32_t old_tb = 0;
    int was_traced = 0;
    if (ptr != NULL
        && (mh.sample_every == 0 || mh_filter_maybe(mh_raw_filter, (uintptr_t)ptr))) {
        pthread_mutex_lock(&mh.raw_lock);
        was_traced = mh_untrack_raw_locked(ptr, &old_size, &old_tb);
        pthread_mutex_unlock(&mh.raw_lock);
    }
    void *ptr2 = a->realloc(a->ctx, ptr, size);
    if (ptr2 == NULL ? was_traced : track) {
        pthread_mutex_lock(&mh.raw_lock);
        if (ptr2 == NULL)
            mh_track_raw_locked(ptr, old_size, old_tb);
        else
            mh_track_raw_locked(ptr2, size, tb);
        pthread_mutex_unlock(&mh.raw_lock);
    }
    mh_tls_busy = busy;
    return ptr2;
}

static void
mh_raw_free(void *ctx, void *ptr)
{
    PyMemAllocatorEx *a = ctx;
    if (ptr != NULL && MH_TRACING()
        && (mh.sample_every == 0 || mh_filter_maybe(mh_raw_filter, (uintptr_t)ptr))) {
        /* Untrack before freeing: once freed, another thread may get the
         * same address and trace it. */
        size_t size;
        uint32_t tb;
        pthread_mutex_lock(&mh.raw_lock);
        mh_untrack_raw_locked(ptr, &size, &tb);
        pthread_mutex_unlock(&mh.raw_lock);
    }
    a->free(a->ctx, ptr);
}

/* ---------------------------------------------------------------- reference tracer */

/* A CREATE event for a block that was not just allocated: a free-list
 * reuse, or memhound's own object.  Out of line: rare next to the events
 * mh_reftrace() passes over. */
static __attribute__((noinline)) void
mh_reftrace_reuse(uintptr_t block)
{
    if (mh_tls_busy) {
        /* memhound's own object (created under suspend()) reusing a traced
         * block from a free list: the block is no longer the program's. */
        mh_untrack_gil((void *)block);
        return;
    }
    mh_block *b = mh_blocks_find(&mh.gil_blocks, block);
    if (b != NULL) {
        mh_tls_busy = 1;
        uint32_t tb = mh_capture(mh_compat_tstate());
        mh_tls_busy = 0;
        if (tb == MH_TB_ERROR)
            mh_fail();
        else
            b->tb = tb;
    }
}

/* A CREATE event while tracing. */
MH_HOT void
mh_reftrace_create(PyObject *op)
{
    /* The tracer slot is process-wide: events of other interpreters
     * arrive too. */
    int relation = mh_gil_relation();
    uintptr_t block = (uintptr_t)op - mh_compat_preheader_size(Py_TYPE(op));
    if (relation == MH_INTERP_SHARES_GIL)
        mh_untrack_gil((void *)block);  /* the block is another interpreter's now */
    else if (relation == MH_INTERP_OWN_GIL)
        ;
    else if (block == mh.last_block && !mh_tls_busy)
        mh.last_block = 0;      /* its allocation just captured the stack */
    else
        mh_reftrace_reuse(block);
}

static __attribute__((noinline)) void
mh_reftrace_create_sampled(PyObject *op)
{
    mh_reftrace_create(op);
}

/* Called for every object created and destroyed: a few instructions unless
 * a created object reuses a block (in sampled mode: a sampled block). */
static __attribute__((noinline)) int
mh_reftrace_exact(PyObject *op, int event)
{
    if (event == MH_REFTRACER_CREATE && MH_TRACING())
        mh_reftrace_create(op);
    if (mh.prev_tracer != NULL)
        return mh.prev_tracer(op, event, mh.prev_tracer_data);
    return 0;
}

/* Sampled: only a sampled block can need re-stamping. */
static __attribute__((noinline)) int
mh_reftrace_sampled(PyObject *op, int event)
{
    if (event == MH_REFTRACER_CREATE && MH_TRACING()
        && mh_filter_maybe(mh_gil_filter, (uintptr_t)op - mh_compat_preheader_size(Py_TYPE(op))))
        mh_reftrace_create_sampled(op);
    if (mh.prev_tracer != NULL)
        return mh.prev_tracer(op, event, mh.prev_tracer_data);
    return 0;
}

static int
mh_reftrace(PyObject *op, int event, void *data)
{
    (void)data;
    if (mh.sample_every != 0) {
        /* Most events: a DESTROY, or a CREATE of an unsampled block. */
        if ((event != MH_REFTRACER_CREATE
             || !mh_filter_maybe(mh_gil_filter,
                                 (uintptr_t)op - mh_compat_preheader_size(Py_TYPE(op))))
            && mh.prev_tracer == NULL)
            return 0;
        return mh_reftrace_sampled(op, event);
    }
    return mh_reftrace_exact(op, event);
}



static void
mh_reftracer_install(void)
{
    if (!mh_compat_has_reftracer() || mh.reftracer_on)
        return;
    void *data;
    mh_reftracer_fn prev = mh_compat_get_reftracer(&data);
    if (prev == mh_reftrace)
        prev = NULL, data = NULL;
    mh.prev_tracer = prev;
    mh.prev_tracer_data = data;
    if (mh_compat_set_reftracer(mh_reftrace, NULL) == 0)
        mh.reftracer_on = 1;
}

/* tracemalloc.start() takes the reference-tracer slot without chaining, and
 * 3.13.0's stop() leaves its tracer there: take the slot back once
 * tracemalloc has stopped (objects reused meanwhile keep older tracebacks). */
static void
mh_reftracer_reclaim(void)
{
    void *data;
    if (MH_TRACING() && mh.reftracer_on && !mh_compat_stdlib_tracemalloc_tracing()
        && mh_compat_get_reftracer(&data) != mh_reftrace) {
        mh.reftracer_on = 0;
        mh_reftracer_install();
    }
}

static void
mh_reftracer_uninstall(void)
{
    if (!mh.reftracer_on)
        return;
    void *data;
    /* Restore only while the slot is ours: never remove a tracer installed
     * after us. */
    if (mh_compat_get_reftracer(&data) == mh_reftrace) {
        mh_compat_set_reftracer(mh.prev_tracer, mh.prev_tracer_data);
        mh.prev_tracer = NULL;
        mh.prev_tracer_data = NULL;
    }
    /* else a tool installed after us may still call mh_reftrace, which
     * keeps passing events on to the tracer we found. */
    mh.reftracer_on = 0;
}

/* ---------------------------------------------------------------- hook chain */

static void
mh_hooks_for(mh_allocators *saved, mh_allocators *ours)
{
    ours->raw = (PyMemAllocatorEx){&saved->raw, mh_raw_malloc, mh_raw_calloc, mh_raw_realloc,
                                   mh_raw_free};
    ours->mem = (PyMemAllocatorEx){&saved->mem, mh_gil_malloc, mh_gil_calloc, mh_gil_realloc,
                                   mh_gil_free};
    ours->obj = (PyMemAllocatorEx){&saved->obj, mh_gil_malloc, mh_gil_calloc, mh_gil_realloc,
                                   mh_gil_free};
}

/* 1 if our hooks are the current allocators of all three domains. */
static int
mh_on_top(void)
{
    PyMemAllocatorEx raw, mem, obj;
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &obj);
    return raw.malloc == mh_raw_malloc && mem.malloc == mh_gil_malloc
           && obj.malloc == mh_gil_malloc;
}

/* Chain onto whatever is installed now. */
static void
mh_install(void)
{
    int gen = mh.gen ^ 1;
    mh_allocators *saved = &mh.saved[gen];
    mh_allocators ours;
    PyMem_GetAllocator(PYMEM_DOMAIN_RAW, &saved->raw);
    PyMem_GetAllocator(PYMEM_DOMAIN_MEM, &saved->mem);
    PyMem_GetAllocator(PYMEM_DOMAIN_OBJ, &saved->obj);
    mh_hooks_for(saved, &ours);
    mh.gen = gen;
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &ours.raw);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &ours.mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &ours.obj);
    mh.installed = 1;
}

static void
mh_uninstall(void)
{
    mh_allocators *saved = &mh.saved[mh.gen];
    PyMem_SetAllocator(PYMEM_DOMAIN_RAW, &saved->raw);
    PyMem_SetAllocator(PYMEM_DOMAIN_MEM, &saved->mem);
    PyMem_SetAllocator(PYMEM_DOMAIN_OBJ, &saved->obj);
    mh.installed = 0;
}

/* ---------------------------------------------------------------- tables */

static void
mh_clear_tables(void)
{
    PyObject **codes;
    size_t ncodes;
    int busy = mh_tls_busy;
    mh_tls_busy = 1;
    pthread_mutex_lock(&mh.raw_lock);
    mh_blocks_clear(&mh.raw_blocks);
    mh_filter_clear(mh_raw_filter);
    atomic_store(&mh.raw_current, 0);
    pthread_mutex_unlock(&mh.raw_lock);
    mh_blocks_clear(&mh.gil_blocks);
    mh_filter_clear(mh_gil_filter);
    atomic_store(&mh.gil_current, 0);
    atomic_store(&mh.peak, 0);
    mh.last_block = 0;
    memset(mh.recent, 0, sizeof(mh.recent));
    mh_tb_clear(&mh.tbs, &codes, &ncodes);
    /* Releasing code objects may free memory and re-enter the hooks: only
     * now that every table is consistent. */
    for (size_t i = 0; i < ncodes; i++)
        Py_DECREF(codes[i]);
    mh_mem_free(codes, ncodes * sizeof(PyObject *));
    mh_tls_busy = busy;
}

static int
mh_set_nframe(int nframe)
{
    mh_rawframe *scratch = mh_mem_malloc((size_t)nframe * sizeof(mh_rawframe));
    if (scratch == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    mh_mem_free(mh.scratch, (size_t)mh.nframe * sizeof(mh_rawframe));
    mh.scratch = scratch;
    mh.nframe = nframe;
    return 0;
}

/* 1 if our hooks still see allocations although another tool is on top.  A
 * tool that restores its saved allocators unconditionally when it stops
 * (CPython's _testcapi hooks, other tracers) drops memhound from the chain;
 * without this check, start() would then never trace again. */
static int
mh_still_chained(void)
{
    int busy = mh_tls_busy;
    mh_probe_hits = 0;
    mh_tls_busy = MH_PROBE;
    PyMem_RawFree(PyMem_RawMalloc(1));
    PyMem_Free(PyMem_Malloc(1));
    PyObject_Free(PyObject_Malloc(1));
    mh_tls_busy = busy;
    return mh_probe_hits > 0;
}

/* ---------------------------------------------------------------- tracemalloc.stop wrapper */

static PyObject *
mh_stdlib_stop(PyObject *self, PyObject *noargs)
{
    (void)self; (void)noargs;
    /* Also when memhound is in the middle of the chain: tracemalloc then
     * drops it with everything above it. */
    int rechain = mh.installed && MH_TRACING();
    PyObject *res = PyObject_CallNoArgs(mh.stdlib_stop);
    if (res == NULL)
        return NULL;
    /* CPython restored the allocators it saved, removing memhound if it was
     * started after tracemalloc: chain again onto what is installed now. */
    if (rechain && !mh_on_top() && !mh_still_chained())
        mh_install();
    mh_reftracer_reclaim();
    return res;
}

static PyMethodDef mh_stdlib_stop_def = {
    "stop", mh_stdlib_stop, METH_NOARGS,
    "Stop tracemalloc (wrapped by memhound so that a memhound started after it keeps tracing)."
};

/* While memhound runs, make tracemalloc.stop() keep memhound installed and
 * give back the reference-tracer slot. */
static int
mh_wrap_stdlib_stop(void)
{
    if (mh.stdlib_stop != NULL)
        return 0;
    PyObject *mod = PyImport_ImportModule("tracemalloc");
    if (mod == NULL)
        return -1;
    PyObject *stop = PyObject_GetAttrString(mod, "stop");
    PyObject *wrapper = stop ? PyCFunction_New(&mh_stdlib_stop_def, NULL) : NULL;
    int rc = -1;
    if (wrapper != NULL && PyObject_SetAttrString(mod, "stop", wrapper) == 0) {
        mh.stdlib_stop = stop;
        stop = NULL;
        rc = 0;
    }
    Py_XDECREF(stop);
    Py_XDECREF(wrapper);
    Py_DECREF(mod);
    return rc;
}

static void
mh_unwrap_stdlib_stop(void)
{
    if (mh.stdlib_stop == NULL)
        return;
    PyObject *mod = PyImport_ImportModule("tracemalloc");
    if (mod == NULL || PyObject_SetAttrString(mod, "stop", mh.stdlib_stop) < 0)
        PyErr_Clear();
    Py_XDECREF(mod);
    Py_CLEAR(mh.stdlib_stop);
}

/* ---------------------------------------------------------------- free lists (3.11, 3.12) */

static PyObject *mh_gc_callback;   /* the function memhound puts in gc.callbacks */

/* gc.callbacks entry: a full collection re-opened the free lists that
 * memhound keeps closed (CPython's clear_freelists()); close them again.
 * Every "stop" is cheap enough to handle: a few stores when nothing was
 * re-opened. */
static PyObject *
mh_gc_callback_fn(PyObject *self, PyObject *const *args, Py_ssize_t nargs)
{
    (void)self;
    if (nargs >= 1 && PyUnicode_Check(args[0])
        && PyUnicode_CompareWithASCIIString(args[0], "stop") == 0 && MH_TRACING())
        mh_compat_freelists_reclose();
    Py_RETURN_NONE;
}

static PyMethodDef mh_gc_callback_def = {
    "_memhound_close_free_lists", (PyCFunction)(void (*)(void))mh_gc_callback_fn, METH_FASTCALL,
    "memhound: close the free lists again after a full collection re-opened them."
};

/* gc.callbacks (new reference), or NULL with an exception. */
static PyObject *
mh_gc_callbacks(void)
{
    PyObject *gc = PyImport_ImportModule("gc");
    if (gc == NULL)
        return NULL;
    PyObject *cbs = PyObject_GetAttrString(gc, "callbacks");
    Py_DECREF(gc);
    if (cbs != NULL && !PyList_Check(cbs)) {
        PyErr_SetString(PyExc_TypeError, "memhound: gc.callbacks is not a list");
        Py_CLEAR(cbs);
    }
    return cbs;
}

/* Remove every occurrence of our callback from gc.callbacks. */
static void
mh_gc_callback_remove(void)
{
    if (mh_gc_callback == NULL)
        return;
    mh_tracer_suspend();
    PyObject *cbs = mh_gc_callbacks();
    for (Py_ssize_t i = cbs ? PyList_GET_SIZE(cbs) : 0; i-- > 0;) {
        if (i < PyList_GET_SIZE(cbs) && PyList_GET_ITEM(cbs, i) == mh_gc_callback
            && PySequence_DelItem(cbs, i) < 0)
            break;
    }
    Py_XDECREF(cbs);
    PyErr_Clear();
    mh_tracer_resume();
}

/* Close the free lists and keep them closed: first in gc.callbacks, so
 * that no other callback runs between a full collection and the re-close.
 * Memhound's own objects (suspended): never in the program's traces. */
static int
mh_freelists_close(void)
{
    if (!mh_compat_freelists_supported())
        return 0;
    mh_tracer_suspend();
    int rc = -1;
    PyObject *cbs = NULL;
    if (mh_gc_callback == NULL)
        mh_gc_callback = PyCFunction_New(&mh_gc_callback_def, NULL);
    if (mh_gc_callback != NULL && (cbs = mh_gc_callbacks()) != NULL) {
        int present = PySequence_Contains(cbs, mh_gc_callback);
        if (present == 0)
            present = PyList_Insert(cbs, 0, mh_gc_callback) == 0;
        rc = present > 0 ? 0 : -1;
    }
    Py_XDECREF(cbs);
    if (rc == 0)
        mh_compat_freelists_close();
    mh_tracer_resume();
    return rc;
}

static void
mh_freelists_open(void)
{
    if (!mh_compat_freelists_supported())
        return;
    mh_gc_callback_remove();
    mh_compat_freelists_open();
}

/* ---------------------------------------------------------------- public */

int
mh_tracer_start(int nframe, uint64_t sample_every)
{
    /* Like tracemalloc, start() while tracing keeps the traceback limit. */
    if (!MH_TRACING() && (nframe != mh.nframe || mh.scratch == NULL)) {
        if (mh_set_nframe(nframe) < 0)
            return -1;
        /* Recent tracebacks were cut at the old limit. */
        memset(mh.recent, 0, sizeof(mh.recent));
    }
    if (MH_TRACING()) {
        /* Dropped from the chain behind our back (e.g. _tracemalloc.stop()
         * called directly): a second start() repairs it. */
        if (mh.installed && !mh_on_top() && !mh_still_chained())
            mh_install();
        return 0;
    }
    if (atomic_exchange(&mh.failed, 0))
        mh_clear_tables();
    /* First what can fail on its own: nothing else is changed then. */
    if (sample_every && mh_filters_alloc() < 0)
        return -1;
    if (mh_compat_stdlib_tracemalloc_tracing() && mh_wrap_stdlib_stop() < 0)
        return -1;
    /* Set before tracing is: the hooks read them once they see it. */
    PyInterpreterState *interp = PyInterpreterState_Get();
    mh.interp = interp;
    mh.interp_gil = mh_compat_interp_gil(interp);
    mh.sole = interp == PyInterpreterState_Main() ? interp : MH_NOT_AN_INTERP;
    if (mh_freelists_close() < 0)
        return -1;
    /* Read before our own hooks hide what is below them. */
    mh_blocks_use_pools(&mh.gil_blocks, mh_compat_pymalloc_below());
    if (!mh.installed || (!mh_on_top() && !mh_still_chained()))
        mh_install();
    /* else still chained under another tool from an earlier session: that
     * is fine as long as the tool above keeps calling us. */
    mh_reftracer_install();
    mh.sample_every = sample_every;
    if (sample_every)
        mh_sample_session();
    atomic_store(&mh.tracing, 1);
    return 0;
}

uint64_t
mh_tracer_sample_every(void)
{
    return MH_TRACING() ? mh.sample_every : 0;
}

void
mh_tracer_set_sample_seed(int fixed, uint64_t seed)
{
    mh.seed_fixed = fixed;
    mh.fixed_seed = seed;
}

static int
mh_stop_locked(void)
{
    atomic_store(&mh.tracing, 0);
    mh_reftracer_uninstall();
    mh_freelists_open();
    if (mh.installed && mh_on_top())
        mh_uninstall();
    mh_unwrap_stdlib_stop();
    mh_clear_tables();
    return 0;
}

/* stop()/clear_traces() from a finalizer that runs while take_snapshot()
 * reads the tables would free them under it. */
static int
mh_check_not_exporting(const char *what)
{
    if (!mh.exporting)
        return 0;
    PyErr_Format(PyExc_RuntimeError,
                 "memhound: cannot %s while a snapshot is being taken "
                 "(called from a finalizer?)", what);
    return -1;
}

int
mh_tracer_stop(void)
{
    if (mh_check_not_exporting("stop tracing") < 0)
        return -1;
    if (atomic_exchange(&mh.failed, 0)) {
        /* stopped by a failure whose warning has not been issued yet */
        mh_stop_locked();
        return PyErr_WarnEx(PyExc_RuntimeWarning,
                            "memhound stopped tracing: out of memory for its own tables", 1);
    }
    if (!MH_TRACING() && !mh.installed)
        return 0;
    return mh_stop_locked();
}

int
mh_tracer_is_tracing(void)
{
    return MH_TRACING();
}

int
mh_tracer_clear(void)
{
    if (mh_check_not_exporting("clear traces") < 0)
        return -1;
    if (!MH_TRACING())
        return 0;
    int busy = mh_tls_busy;
    atomic_store(&mh.tracing, 0);
    mh_clear_tables();
    atomic_store(&mh.tracing, 1);
    mh_tls_busy = busy;
    return 0;
}

void
mh_tracer_traced_memory(size_t *current, size_t *peak)
{
    if (!MH_TRACING()) {
        *current = *peak = 0;
        return;
    }
    *current = atomic_load(&mh.gil_current) + atomic_load(&mh.raw_current);
    *peak = atomic_load(&mh.peak);
    if (*peak < *current)
        *peak = *current;
}

void
mh_tracer_reset_peak(void)
{
    if (!MH_TRACING())
        return;
    atomic_store(&mh.peak, atomic_load(&mh.gil_current) + atomic_load(&mh.raw_current));
}

int
mh_tracer_traceback_limit(void)
{
    return mh.nframe;
}

size_t
mh_tracer_self_memory(void)
{
    if (!MH_TRACING())
        return 0;
    return mh_mem_used();
}

void
mh_tracer_suspend(void)
{
    mh_tls_busy++;
}

void
mh_tracer_resume(void)
{
    if (mh_tls_busy > 0)
        mh_tls_busy--;
}

void
mh_tracer_set_memory_limit(size_t limit)
{
    mh_mem_set_limit(limit);
}

/* ---------------------------------------------------------------- export */

static PyObject *
mh_frame_tuple(const mh_rawframe *f, int with_function)
{
    PyCodeObject *code = (PyCodeObject *)f->code;
    int line = mh_compat_code_line(f->code, f->lasti);
    if (with_function)
        return Py_BuildValue("(OiO)", code->co_filename, line, code->co_name);
    return Py_BuildValue("(Oi)", code->co_filename, line);
}

static PyObject *
mh_traceback_tuple(uint32_t id, int with_function)
{
    const mh_tb *tb = id == MH_TB_EMPTY ? NULL : mh_tb_get(&mh.tbs, id);
    if (tb == NULL || tb->nframe == 0) {
        if (with_function)
            return Py_BuildValue("((siO))", "<unknown>", 0, Py_None);
        return Py_BuildValue("((si))", "<unknown>", 0);
    }
    /* Copy the frames and own their code objects before creating any
     * Python object: an allocation may run the GC (3.11), whose finalizers
     * may let another thread grow the traceback table or call
     * clear_traces(), freeing what `tb` points into. */
    int n = tb->nframe;
    mh_rawframe *raw = mh_mem_malloc((size_t)n * sizeof(mh_rawframe));
    if (raw == NULL)
        return PyErr_NoMemory();
    memcpy(raw, mh_tb_frames(&mh.tbs, tb), (size_t)n * sizeof(mh_rawframe));
    for (int i = 0; i < n; i++)
        Py_INCREF(raw[i].code);
    PyObject *frames = PyTuple_New(n);
    for (int i = 0; frames != NULL && i < n; i++) {
        PyObject *frame = mh_frame_tuple(&raw[i], with_function);
        if (frame == NULL)
            Py_CLEAR(frames);
        else
            PyTuple_SET_ITEM(frames, i, frame);
    }
    for (int i = 0; i < n; i++)
        Py_DECREF(raw[i].code);
    mh_mem_free(raw, (size_t)n * sizeof(mh_rawframe));
    return frames;
}

/* Traceback id of the block at `block`, or MH_TB_ERROR if untraced. */
static uint32_t
mh_block_traceback(uintptr_t block)
{
    mh_block *b = mh_blocks_find(&mh.gil_blocks, block);
    if (b != NULL)
        return mh_block_tb(b);
    uint32_t tb = MH_TB_ERROR;
    pthread_mutex_lock(&mh.raw_lock);
    b = mh_blocks_find(&mh.raw_blocks, block);
    if (b != NULL)
        tb = mh_block_tb(b);
    pthread_mutex_unlock(&mh.raw_lock);
    return tb;
}

PyObject *
mh_tracer_object_traceback(PyObject *obj, int with_function)
{
    if (!MH_TRACING())
        Py_RETURN_NONE;
    mh_reftracer_reclaim();
    uintptr_t block = (uintptr_t)obj - mh_compat_preheader_size(Py_TYPE(obj));
    uint32_t tb = mh_block_traceback(block);
    if (tb == MH_TB_ERROR)
        Py_RETURN_NONE;
    mh_tracer_suspend();
    PyObject *res = mh_traceback_tuple(tb, with_function);
    mh_tracer_resume();
    return res;
}

PyObject *
mh_tracer_block_creation(const void *ptr)
{
    if (!MH_TRACING() || ptr == NULL)
        Py_RETURN_NONE;
    mh_reftracer_reclaim();
    uint32_t tb = mh_block_traceback((uintptr_t)ptr);
    if (tb == MH_TB_ERROR)
        Py_RETURN_NONE;
    mh_tracer_suspend();
    PyObject *res = mh_traceback_tuple(tb, 1);
    mh_tracer_resume();
    return res;
}

PyObject *
mh_tracer_traceback(uint32_t tb)
{
    mh_tracer_suspend();
    PyObject *res = mh_traceback_tuple(tb, 1);
    mh_tracer_resume();
    return res;
}

void
mh_tracer_mark_blocks(void)
{
    if (!MH_TRACING())
        return;
    mh_blocks_mark_old(&mh.gil_blocks);
    pthread_mutex_lock(&mh.raw_lock);
    mh_blocks_mark_old(&mh.raw_blocks);
    pthread_mutex_unlock(&mh.raw_lock);
}

static int
mh_new_blocks_of(mh_blocks *t, int raw, mh_new_block_fn fn, void *arg)
{
    for (size_t i = 0, n = mh_blocks_positions(t); i < n; i++) {
        const mh_block *b = mh_blocks_at(t, i);
        if (b != NULL && !mh_block_is_old(b)
            && fn(arg, b->ptr, mh_blocks_size(t, b), mh_block_tb(b), raw) < 0)
            return -1;
    }
    return 0;
}

int
mh_tracer_new_blocks(mh_new_block_fn fn, void *arg)
{
    if (!MH_TRACING())
        return 0;
    if (mh_new_blocks_of(&mh.gil_blocks, 0, fn, arg) < 0)
        return -1;
    pthread_mutex_lock(&mh.raw_lock);
    int rc = mh_new_blocks_of(&mh.raw_blocks, 1, fn, arg);
    pthread_mutex_unlock(&mh.raw_lock);
    return rc;
}

/* Export state: snapshot indices of tracebacks, filled lazily. */
typedef struct {
    PyObject *snap;
    int64_t *tb_index;          /* per traceback id, -1 = not yet */
    size_t ntb;
    mh_rawframe *raw;           /* the traceback being exported, copied */
    uint32_t *frames;           /* its snapshot frame indices (same allocation) */
    size_t cap;                 /* frames room in raw and frames */
} mh_export;

#define MH_EXPORT_FRAME (sizeof(mh_rawframe) + sizeof(uint32_t))

/* Room for `n` frames: sized by the traceback at hand, not by the current
 * limit, so that no stored traceback can overflow it. */
static int
mh_export_reserve(mh_export *ex, size_t n)
{
    if (n <= ex->cap)
        return 0;
    mh_rawframe *raw = mh_mem_malloc(n * MH_EXPORT_FRAME);
    if (raw == NULL)
        return -1;
    mh_mem_free(ex->raw, ex->cap * MH_EXPORT_FRAME);
    ex->raw = raw;
    ex->frames = (uint32_t *)(raw + n);
    ex->cap = n;
    return 0;
}

/* The snapshot index of traceback `id`; may call Python. */
static int64_t
mh_export_traceback(void *arg, uint32_t id)
{
    mh_export *ex = arg;
    if (id >= ex->ntb) {
        PyErr_Format(PyExc_RuntimeError, "memhound: traceback id %u out of range", id);
        return -1;
    }
    if (ex->tb_index[id] >= 0)
        return ex->tb_index[id];
    if (id == MH_TB_EMPTY) {
        /* Like tracemalloc's empty traceback: one "<unknown>" frame. */
        ex->tb_index[id] = mh_snapshot_add_traceback(ex->snap, NULL, 0, 1);
        return ex->tb_index[id];
    }
    const mh_tb *tb = mh_tb_get(&mh.tbs, id);
    int nframe = tb->nframe, total = tb->total;
    if (mh_export_reserve(ex, (size_t)nframe) < 0) {
        PyErr_NoMemory();
        return -1;
    }
    /* Copied first: the Python calls below may let another thread in,
     * whose allocations can grow (move) the traceback table. */
    memcpy(ex->raw, mh_tb_frames(&mh.tbs, tb), (size_t)nframe * sizeof(mh_rawframe));
    for (int i = 0; i < nframe; i++) {
        PyCodeObject *code = (PyCodeObject *)ex->raw[i].code;
        int line = mh_compat_code_line(ex->raw[i].code, ex->raw[i].lasti);
        int64_t f = mh_snapshot_add_frame(ex->snap, code->co_filename, line, code->co_name);
        if (f < 0)
            return -1;
        ex->frames[i] = (uint32_t)f;
    }
    int64_t idx = mh_snapshot_add_traceback(ex->snap, ex->frames, nframe, total);
    ex->tb_index[id] = idx;
    return idx;
}

/* Append every block of `t` with its traceback id.  Runs no Python code, so
 * the table cannot change under the iteration; 1 if the reserved room is
 * too small. */
static int
mh_put_blocks(PyObject *snap, const mh_blocks *t)
{
    for (size_t i = 0, n = mh_blocks_positions(t); i < n; i++) {
        const mh_block *b = mh_blocks_at(t, i);
        if (b != NULL && mh_snapshot_put_trace(snap, 0, mh_blocks_size(t, b), mh_block_tb(b)) < 0)
            return 1;
    }
    return 0;
}

/* RAW blocks change under other threads: reserve room outside raw_lock (it
 * may raise MemoryError), then fill under it; again if the table grew. */
static int
mh_put_raw_blocks(PyObject *snap)
{
    for (;;) {
        pthread_mutex_lock(&mh.raw_lock);
        size_t room = mh.raw_blocks.count + 64;
        pthread_mutex_unlock(&mh.raw_lock);
        if (mh_snapshot_reserve_traces(snap, room) < 0)
            return -1;
        pthread_mutex_lock(&mh.raw_lock);
        int rc = mh.raw_blocks.count <= room ? mh_put_blocks(snap, &mh.raw_blocks) : 1;
        pthread_mutex_unlock(&mh.raw_lock);
        if (rc == 0)
            return 0;
    }
}

/* Two steps: the traces are appended with memhound's own traceback ids
 * while no Python code can run (the GC or another thread could free blocks
 * under the iteration); then the ids are replaced by exported tracebacks,
 * which calls into Python.  No copy of the tables is needed. */
static PyObject *
mh_take_snapshot(void)
{
    mh_export ex = {0};
    ex.snap = mh_snapshot_new(mh.nframe);
    if (ex.snap == NULL)
        return NULL;
    mh_snapshot_set_sample_every(ex.snap, mh.sample_every);
    if (mh_snapshot_reserve_traces(ex.snap, mh.gil_blocks.count) < 0)
        goto error;
    if (mh_put_blocks(ex.snap, &mh.gil_blocks) != 0) {
        PyErr_SetString(PyExc_RuntimeError, "memhound: live blocks changed during take_snapshot");
        goto error;
    }
    if (mh_put_raw_blocks(ex.snap) < 0)
        goto error;
    ex.ntb = mh.tbs.count ? mh.tbs.count : 1;
    ex.tb_index = mh_mem_malloc(ex.ntb * sizeof(int64_t));
    if (ex.tb_index == NULL) {
        PyErr_NoMemory();
        goto error;
    }
    memset(ex.tb_index, 0xff, ex.ntb * sizeof(int64_t));
    if (mh_snapshot_map_tracebacks(ex.snap, mh_export_traceback, &ex) < 0)
        goto error;
    goto done;
error:
    Py_CLEAR(ex.snap);
done:
    mh_mem_free(ex.tb_index, ex.ntb * sizeof(int64_t));
    mh_mem_free(ex.raw, ex.cap * MH_EXPORT_FRAME);
    return ex.snap;
}

PyObject *
mh_tracer_take_snapshot(void)
{
    if (!MH_TRACING()) {
        PyErr_SetString(PyExc_RuntimeError,
                        "the tracemalloc module must be tracing memory allocations to take a "
                        "snapshot");
        return NULL;
    }
    mh_reftracer_reclaim();
    mh_tracer_suspend();
    mh.exporting++;
    PyObject *snap = mh_take_snapshot();
    mh.exporting--;
    mh_tracer_resume();
    if (!mh.exporting && mh.fail_deferred) {
        mh.fail_deferred = 0;
        Py_AddPendingCall(mh_failure_pending, NULL);
    }
    return snap;
}

/* ---------------------------------------------------------------- fork */

static void mh_atfork_prepare(void) { pthread_mutex_lock(&mh.raw_lock); }
static void mh_atfork_parent(void) { pthread_mutex_unlock(&mh.raw_lock); }

static void
mh_atfork_child(void)
{
    pthread_mutex_init(&mh.raw_lock, NULL);
}

int
mh_tracer_module_init(PyObject *module)
{
    (void)module;
    static int registered;
    if (!registered) {
        if (pthread_atfork(mh_atfork_prepare, mh_atfork_parent, mh_atfork_child) != 0) {
            PyErr_SetString(PyExc_RuntimeError, "memhound: pthread_atfork failed");
            return -1;
        }
        registered = 1;
    }
    return 0;
}
