/* tracer.h -- the tracing engine's interface to the module (module.c).
 *
 * The engine (tracer.c with hooks on the RAW, MEM and OBJ allocator domains,
 * tracebacks.c, blocks.c) records every live Python memory block with its
 * size and an interned traceback.  All functions are called with the GIL
 * held; those returning int return 0 on success and -1 with a Python
 * exception set.
 */
#ifndef MH_TRACER_H
#define MH_TRACER_H

#include <Python.h>
#include <stdint.h>

/* sample_every: 0 traces every block; else the mean number of bytes between
 * recorded allocations (each block is recorded with probability
 * 1 - exp(-size / sample_every)).  Both are kept while already tracing. */
int mh_tracer_start(int nframe, uint64_t sample_every);
/* The rate tracing runs at (0 = exact, or not tracing). */
uint64_t mh_tracer_sample_every(void);
/* Seed of the sampling generators from the next start() on: a fixed seed
 * makes the calling thread's samples reproducible; `fixed` 0 = random. */
void mh_tracer_set_sample_seed(int fixed, uint64_t seed);
int mh_tracer_stop(void);
int mh_tracer_is_tracing(void);
int mh_tracer_clear(void);
void mh_tracer_traced_memory(size_t *current, size_t *peak);
void mh_tracer_reset_peak(void);
int mh_tracer_traceback_limit(void);
size_t mh_tracer_self_memory(void);

/* Creation traceback of `obj`: a tuple of (filename, lineno) pairs, most
 * recent first -- or (filename, lineno, function) triples when
 * `with_function` -- or None when the object's block is not traced. */
PyObject *mh_tracer_object_traceback(PyObject *obj, int with_function);

/* A SnapshotData object (snapshot.h) with every live trace. */
PyObject *mh_tracer_take_snapshot(void);

/* Stop/restart recording the calling thread's allocations; nests.  Used
 * around memhound's own work so that it never traces itself. */
void mh_tracer_suspend(void);
void mh_tracer_resume(void);

/* Test hooks. */
void mh_tracer_set_memory_limit(size_t limit);

/* The leak finder's view of the block table.  mh_tracer_mark_blocks()
 * marks every live block "old" (its census); mh_tracer_new_blocks() then
 * calls fn for each live block allocated since, GIL blocks first (raw == 0),
 * then the RAW domain's under its lock (fn must not call Python or allocate
 * through the hooks); a negative return from fn stops it.  Both do nothing
 * when tracing is off.  GIL held. */
typedef int (*mh_new_block_fn)(void *arg, uintptr_t ptr, size_t size, uint32_t tb, int raw);
void mh_tracer_mark_blocks(void);
int mh_tracer_new_blocks(mh_new_block_fn fn, void *arg);

/* Traceback of the live block that starts at `ptr` (any domain), as
 * (filename, lineno, function) triples, newest first; None when the block
 * is not traced.  New reference or NULL with an exception set.  GIL held. */
PyObject *mh_tracer_block_creation(const void *ptr);

/* Traceback `tb` as a tuple of (filename, lineno, function), newest first;
 * new reference or NULL with an exception set.  GIL held. */
PyObject *mh_tracer_traceback(uint32_t tb);

int mh_tracer_module_init(PyObject *module);

#endif
