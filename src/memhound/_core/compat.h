/* compat.h -- the one place that knows CPython's internal layouts.
 *
 * Everything that differs between CPython 3.11 to 3.15 (and the next
 * version to support) lives behind these functions: where the current frame
 * is, how interpreter frames link, how an instruction offset maps to a line,
 * how many bytes an object's allocator block starts before the object, and
 * whether the reference tracer (3.13+) exists.  compat.c is the only file
 * compiled with Py_BUILD_CORE and the internal headers; the rest of the
 * extension sees plain C types.
 *
 * Frames are captured raw, as (code object, instruction index) pairs, inside
 * the allocator hooks; line numbers are computed later, once per distinct
 * frame, by mh_compat_code_line().
 */
#ifndef MH_COMPAT_H
#define MH_COMPAT_H

#include <Python.h>
#include <stdint.h>

/* A captured frame: the code object and the index of the instruction being
 * executed.  Padding is explicit so that frames can be hashed and compared
 * as bytes. */
typedef struct {
    PyObject *code;
    int32_t lasti;
    int32_t pad;
} mh_rawframe;

#define MH_MAX_NFRAME 65535

/* pymalloc's geometry, the same on 64-bit CPython 3.11 to 3.15 (radix-tree
 * builds, the default): 16 KiB pools of one size class, the pool header
 * rounded up to the 16-byte alignment, blocks of requests of 1 to 512
 * bytes rounded up to 16.  The block table lays its slots out by it
 * (blocks.h); compat.c checks the values against the headers where CPython
 * exposes them.  A wrong value costs speed, never correctness: the table
 * is keyed by address. */
#define MH_COMPAT_POOL_BITS 14
#define MH_COMPAT_POOL_OVERHEAD 48
#define MH_COMPAT_SMALL_MAX 512
#define MH_COMPAT_ALIGN 16

/* 1 if the MEM and OBJ domains are CPython's own pymalloc right now, with
 * nothing (debug hooks, another tracer) installed over it: only then do
 * their blocks sit in pools of the geometry above.  Call before installing
 * memhound's hooks. */
int mh_compat_pymalloc_below(void);

/* The calling thread's state if it holds the GIL, else NULL.  Never blocks,
 * never allocates; safe from any thread, with or without a Python thread
 * state. */
PyThreadState *mh_compat_gil_tstate(void);

/* The calling thread's state when it is known to hold the GIL (MEM and OBJ
 * hooks): skips the ownership check. */
PyThreadState *mh_compat_tstate(void);

/* What a walk found under the frames it captured, so that the next walk of
 * the same stack can skip counting them (see mh_compat_stack_is()). */
#define MH_MARK_FRAMES 4
typedef struct {
    const void *below[MH_MARK_FRAMES];  /* the first frames under the captured ones, */
    const void *next;                   /* and the frame under those (or the end) */
    int levels;                         /* frames in below[] */
    const void *root;                   /* the walks' end then (mh_compat_set_root()) */
    uint64_t counter;                   /* the eval loop's frame counters then */
} mh_depth_mark;

/* Walk the Python stack of `tstate` (which must hold the GIL), newest frame
 * first, skipping incomplete frames.  Stores at most `max` frames in `out`
 * and returns how many were stored; `*total` receives the depth of the whole
 * stack (saturated at MH_MAX_NFRAME) and `*mark` what lies under the
 * captured frames. */
int mh_compat_capture(PyThreadState *tstate, mh_rawframe *out, int max, int *total,
                      mh_depth_mark *mark);

/* 1 if the Python stack of `tstate` (GIL held) is exactly `frames[0..n)`
 * with depth `total`, as mh_compat_capture() would return it with `*mark`.
 * Compares while walking, stopping at the first difference: cheaper than a
 * capture followed by a lookup when the stack repeats.  The frames under
 * the n compared ones are not walked again while they look as `*mark`
 * recorded them; a full count refreshes `*mark`. */
int mh_compat_stack_is(PyThreadState *tstate, const mh_rawframe *frames, int n, int total,
                       mh_depth_mark *mark);

/* 0: every capture counts the whole stack (MEMHOUND_EXACT_DEPTH=1), as
 * tracemalloc does; 1 (the default): a count is reused while the frames
 * under the compared ones look unchanged (mh_compat_stack_is()).  Resets
 * the counts of mh_compat_depth_counts().  GIL held. */
void mh_compat_set_depth_reuse(int on);
/* Captures that counted the frames under the compared ones, and captures
 * that reused an earlier count, since the last mh_compat_set_depth_reuse(). */
void mh_compat_depth_counts(uint64_t *counted, uint64_t *reused);

/* Make the walks above stop at `frame` (from mh_compat_newest_frame(), or
 * NULL for the bottom of the stack); returns the previous one, to restore.
 * `memhound run` sets its launcher's frame while the program runs, so that
 * no traceback holds memhound's frames.  GIL held. */
void *mh_compat_set_root(void *frame);
void *mh_compat_newest_frame(PyThreadState *tstate);

/* A cheap fingerprint of the newest frame and its instruction, to pick a
 * candidate traceback before mh_compat_stack_is() (0 without frames). */
uintptr_t mh_compat_top_key(PyThreadState *tstate);

/* Line number of instruction `lasti` in code object `code` (GIL held). */
int mh_compat_code_line(PyObject *code, int lasti);

/* Bytes between the start of the allocator block and the object itself
 * (GC header, managed dict and weakref slots).  Inline: the reference
 * tracer needs it for every new object.  The flags are public; the layout
 * mirrors _PyType_PreHeaderSize (3.12+) and 3.11's managed-dict words. */
static inline size_t
mh_compat_preheader_size(PyTypeObject *type)
{
    unsigned long flags = type->tp_flags;
    size_t size = (flags & Py_TPFLAGS_HAVE_GC) ? 2 * sizeof(PyObject *) : 0;
#if PY_VERSION_HEX >= 0x030C0000
    if (flags & Py_TPFLAGS_PREHEADER)
#else
    if (flags & Py_TPFLAGS_MANAGED_DICT)
#endif
        size += 2 * sizeof(PyObject *);
    return size;
}

/* Number of references to `obj` its reference-count word claims (immortal
 * objects report a huge count on 3.12+; a free-listed object's link, a
 * pointer, an implausible one). */
Py_ssize_t mh_compat_refcnt(PyObject *obj);

/* An object that `o` owns but its tp_traverse does not visit (3.15+: a
 * bytearray's buffer is a bytes object), or NULL.  Borrowed. */
PyObject *mh_compat_hidden_part(PyObject *o);

/* 1 where the interpreter has PyRefTracer (3.13+). */
int mh_compat_has_reftracer(void);

typedef int (*mh_reftracer_fn)(PyObject *, int event, void *data);
/* Thin wrappers over PyRefTracer_Set/GetTracer; no-ops returning -1/NULL on
 * versions without it. */
int mh_compat_set_reftracer(mh_reftracer_fn fn, void *data);
mh_reftracer_fn mh_compat_get_reftracer(void **data);
#define MH_REFTRACER_CREATE 0

/* 1 if CPython's own tracemalloc is tracing. */
int mh_compat_stdlib_tracemalloc_tracing(void);

/* ---- Interpreters ---------------------------------------------------------
 * The allocator hooks and the reference tracer are process-wide, but the
 * tables they fill belong to one interpreter (the one that called start()):
 * see "Interpreters" in tracer.c. */

/* The newest interpreter (_PyRuntime.interpreters.head).  New interpreters
 * are pushed at the head and the main interpreter is the oldest, so the
 * newest one is the main interpreter exactly when no other exists: one load
 * tells the hooks they need no per-thread check.  Read without the lock
 * that guards the list: a thread of another interpreter cannot run before
 * its interpreter is linked, so it never sees the main one at the head. */
extern PyInterpreterState *const *const mh_compat_interp_head
    __attribute__((visibility("hidden")));

static inline PyInterpreterState *
mh_compat_newest_interp(void)
{
    return *(PyInterpreterState *const volatile *)mh_compat_interp_head;
}

/* How the interpreter of a thread relates to the traced one. */
#define MH_INTERP_TRACED 0      /* the traced interpreter itself */
#define MH_INTERP_SHARES_GIL 1  /* another one, under the same GIL */
#define MH_INTERP_OWN_GIL 2     /* another one with its own GIL (3.12+), or unknown */

/* An identity of the GIL of `interp`, to compare in
 * mh_compat_interp_relation() without reading `interp` again (it may be
 * gone by then). */
const void *mh_compat_interp_gil(PyInterpreterState *interp);

/* Relation of the interpreter of `tstate` (the calling thread's state, GIL
 * held, or NULL) to `traced`, whose GIL is `traced_gil`.  A NULL state is
 * OWN_GIL on 3.12+ (nothing says which GIL the thread holds) and SHARES_GIL
 * on 3.11 (one GIL). */
int mh_compat_interp_relation(PyThreadState *tstate, PyInterpreterState *traced,
                              const void *traced_gil);

/* ---- Free lists (3.11, 3.12) --------------------------------------------
 * Where a free-list reuse is invisible to memhound (no reference tracer),
 * memhound keeps the object free lists of the traced interpreter empty and
 * closed while it traces, so that every object is a new, traced allocation
 * at its creation site.  All four are no-ops on 3.13+.  GIL held. */

/* 1 where the free lists are closed while tracing (3.11, 3.12). */
int mh_compat_freelists_supported(void);
/* Free what the free lists of the current interpreter hold, exactly as
 * CPython's clear functions do, and close them. */
void mh_compat_freelists_close(void);
/* Close them again after a full collection re-opened them (CPython's
 * clear_freelists() resets the counts); a no-op in another interpreter. */
void mh_compat_freelists_reclose(void);
/* Open them again (empty). */
void mh_compat_freelists_open(void);

/* ---- Heap-graph support (leak finder, heap*.c) --------------------------
 * Read-only views of frames and instance attribute storage, so that the
 * heap graph can name edges without materialising __dict__ or frame
 * objects.  None of these allocate or call Python code. */

/* The fast locals of one interpreter frame: `nlocals` slots named by
 * ((PyCodeObject *)code)->co_localsplusnames, read with
 * mh_compat_frame_local() (their layout differs per version). */
typedef struct {
    PyObject *code;         /* borrowed */
    void *locals;
    int nlocals;
    int line;
} mh_frame_view;

/* Local `i` of `f` (borrowed), or NULL for an empty slot. */
PyObject *mh_compat_frame_local(const mh_frame_view *f, int i);

/* The frame of a frame object, generator, coroutine or async generator:
 * 1 and fills `out`, or 0 (not such an object, or its frame is cleared). */
int mh_compat_object_frame(PyObject *obj, mh_frame_view *out);

/* Calls `fn` for every complete frame of every thread of the current
 * interpreter, newest first.  `depth` counts from the newest frame. */
typedef void (*mh_frame_fn)(unsigned long thread_id, int depth, const mh_frame_view *f,
                            void *arg);
void mh_compat_thread_frames(mh_frame_fn fn, void *arg);

/* Name (borrowed) of the attribute of `obj` whose value is `value` when it
 * lives in inline values (3.11+ instances without a materialised
 * __dict__), else NULL.  Never creates the dict. */
PyObject *mh_compat_inline_attr_name(PyObject *obj, PyObject *value);

/* The instance's __dict__ (borrowed) if it already exists, else NULL. */
PyObject *mh_compat_existing_dict(PyObject *obj);

/* Calls fn(obj, arg) for every GC-tracked object, including the permanent
 * generation (gc.freeze()), without creating a list; stops and returns -1
 * when fn returns -1.  fn must not create or destroy GC objects. */
int mh_compat_visit_tracked(int (*fn)(PyObject *, void *), void *arg);

/* 1 if the dict's tp_traverse visits its keys (general tables), 0 if it
 * visits only values (str-keyed tables). */
int mh_compat_dict_visits_keys(PyObject *dict);

/* ---- The interpreter's registries (leak finder, heap_roots.c) -----------
 * Objects that only the interpreter state holds on behalf of Python code:
 * without them, what is registered there looks "held outside Python". */
typedef enum {
    MH_INTERP_REG_FORK_BEFORE,      /* os.register_at_fork(before=...) list */
    MH_INTERP_REG_FORK_PARENT,      /* ... after_in_parent=... list */
    MH_INTERP_REG_FORK_CHILD,       /* ... after_in_child=... list */
    MH_INTERP_REG_ATEXIT_LIST,      /* 3.14+: atexit's [(func, args, kwargs), ...] */
    MH_INTERP_REG_ATEXIT_FUNC,      /* 3.11-3.13: one callback's func, args, kwargs */
    MH_INTERP_REG_ATEXIT_ARGS,
    MH_INTERP_REG_ATEXIT_KWARGS,
    MH_INTERP_REG_AUDIT_HOOKS,      /* sys.addaudithook() list */
    MH_INTERP_REG_CODEC_SEARCH,     /* codecs.register() list */
    MH_INTERP_REG_CODEC_CACHE,      /* codecs.lookup() cache dict */
    MH_INTERP_REG_CODEC_ERRORS,     /* codecs.register_error() dict */
    MH_INTERP_REG_INTERNED,         /* 3.12+: the interned-strings dict */
} mh_interp_registry;

/* Calls fn(which, obj, arg) for every such object of the current
 * interpreter (GIL held; obj borrowed, never NULL).  Reads fields only:
 * allocates nothing, runs no Python code. */
typedef void (*mh_interp_registry_fn)(mh_interp_registry which, PyObject *obj, void *arg);
void mh_compat_interp_registries(mh_interp_registry_fn fn, void *arg);

#endif
