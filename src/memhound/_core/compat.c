/* compat.c -- CPython internals, per version.  See compat.h.
 *
 * 3.11 and 3.12 keep the newest frame in tstate->cframe->current_frame and the
 * code object in frame->f_code, with prev_instr pointing at the instruction;
 * 3.13 moved the frame to tstate->current_frame and renamed the fields to
 * f_executable (which may be None for C-stack shim frames) and instr_ptr.
 * 3.14 made f_executable, f_funcobj and the fast locals tagged stack
 * references (_PyStackRef: the low bits are flags, so every read goes
 * through PyStackRef_AsPyObjectBorrow) and moved the frame helpers to
 * pycore_interpframe.h; its shim frames (C-stack entry frames, the __init__
 * cleanup trampoline) are owned by FRAME_OWNED_BY_INTERPRETER or
 * FRAME_OWNED_BY_CSTACK, both above FRAME_OWNED_BY_FRAME_OBJECT.  3.15
 * drops FRAME_OWNED_BY_CSTACK and ends every thread's chain with a base
 * frame owned by the interpreter.
 * A new version is a new #if branch in the small frame functions below.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
/* CPython's internal headers are not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "internal/pycore_frame.h"
#if PY_VERSION_HEX >= 0x030E0000
#  include "internal/pycore_interpframe.h"
#  include "internal/pycore_stackref.h"
#endif
#include "internal/pycore_object.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_pystate.h"
#include "internal/pycore_dict.h"
#include "internal/pycore_gc.h"
#include "internal/pycore_interp.h"
#if PY_VERSION_HEX < 0x030C0000 || PY_VERSION_HEX >= 0x030D0000
#  include "internal/pycore_pymem.h"      /* 3.13+: _PyMem_GetCurrentAllocatorName */
#endif
#pragma GCC diagnostic pop

#include "compat.h"

#include <string.h>

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x03100000
#  error "memhound supports CPython 3.11 to 3.15"
#endif
#ifdef Py_GIL_DISABLED
#  error "memhound supports the default (GIL) builds of CPython 3.11 to 3.15, not free-threaded builds"
#endif

static inline _PyInterpreterFrame *
mh_current_frame(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030D0000
    return tstate->current_frame;
#else
    return tstate->cframe->current_frame;
#endif
}

/* The frame that called the program (`memhound run`'s launcher, through
 * mh_compat_set_root()): walks stop there, so the launcher's frames are in
 * no traceback.  NULL: walks go to the bottom of the stack.  Other threads'
 * stacks never contain it. */
static _PyInterpreterFrame *mh_root;

void *
mh_compat_set_root(void *frame)
{
    void *previous = mh_root;
    mh_root = frame;
    return previous;
}

void *
mh_compat_newest_frame(PyThreadState *tstate)
{
    return mh_current_frame(tstate);
}

/* Below the newest frame: the walks' end. */
static inline int
mh_frame_end(_PyInterpreterFrame *f)
{
    return f == NULL || f == mh_root;
}

static inline PyObject *
mh_frame_code(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030E0000
    return PyStackRef_AsPyObjectBorrow(f->f_executable);
#elif PY_VERSION_HEX >= 0x030D0000
    return f->f_executable;
#else
    return (PyObject *)f->f_code;
#endif
}

/* The instruction `f` is executing.  Inside a live code object, it names
 * the code object and the instruction at once. */
static inline const _Py_CODEUNIT *
mh_frame_instr(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030D0000
    return f->instr_ptr;
#else
    return f->prev_instr;
#endif
}

/* Where mh_frame_instr() points for captured frame `rf`, whose code object
 * the traceback table keeps alive: comparing it needs no load of the
 * frame's code object. */
static inline const _Py_CODEUNIT *
mh_code_instr(mh_rawframe rf)
{
    return _PyCode_CODE((PyCodeObject *)rf.code) + rf.lasti;
}

static inline int
mh_frame_incomplete(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030E0000
    if (f->owner >= FRAME_OWNED_BY_INTERPRETER || !PyCode_Check(mh_frame_code(f)))
        return 1;
#elif PY_VERSION_HEX >= 0x030D0000
    /* C-stack shim frames first: they are the only ones whose executable
     * may not be a code object, and the test needs no pointer chase. */
    if (f->owner == FRAME_OWNED_BY_CSTACK || !PyCode_Check(f->f_executable))
        return 1;
#endif
    return _PyFrame_IsIncomplete(f);
}

PyThreadState *
mh_compat_gil_tstate(void)
{
#if PY_VERSION_HEX >= 0x030D0000
    /* 3.12+: a thread-local (not exported) that is NULL while the thread
     * is detached; read through the exported accessor. */
    return PyThreadState_GetUnchecked();
#elif PY_VERSION_HEX >= 0x030C0000
    return _PyThreadState_UncheckedGet();
#else
    /* 3.11: one runtime-wide "current" pointer, the GIL holder's state. */
    /* Compare pointers only: the runtime-wide current state may belong to
     * another thread and be freed at any moment, so it is never read. */
    PyThreadState *ts = _PyThreadState_GET();
    if (ts == NULL || ts != PyGILState_GetThisThreadState())
        return NULL;
    return ts;
#endif
}

PyThreadState *
mh_compat_tstate(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return mh_compat_gil_tstate();
#else
    return _PyThreadState_GET();
#endif
}

/* 1 if `f`, a frame below the newest complete one, is not a frame of the
 * traceback.  Below the newest frame, only frames that stand for no Python
 * code are incomplete: the C-stack shims of 3.12+ and, on 3.13+, the
 * trampoline under an __init__ called by a specialized CALL (f_funcobj is
 * None only there).  A Python frame is incomplete only before its RESUME,
 * where it calls nothing, so it can only be the newest.  Two loads instead
 * of the code object chase of mh_frame_incomplete(); both fields are read
 * unconditionally (every frame has them), so that the test has no branch. */
static inline int
mh_frame_skipped_below(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030E0000
    return (f->owner >= FRAME_OWNED_BY_INTERPRETER) | PyStackRef_IsNone(f->f_funcobj);
#elif PY_VERSION_HEX >= 0x030D0000
    return (f->owner == FRAME_OWNED_BY_CSTACK) | (f->f_funcobj == Py_None);
#elif PY_VERSION_HEX >= 0x030C0000
    return f->owner == FRAME_OWNED_BY_CSTACK;
#else
    (void)f;
    return 0;
#endif
}

/* 1 if the eval loop's frame counter and a walk may disagree about `f`:
 * generator frames (gen.throw() links delegating ones that the counter
 * does not count) and 3.13+'s __init__ trampolines (counted, never in a
 * traceback).  C-stack shims are neither counted nor walked. */
static inline int
mh_frame_irregular(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030E0000
    return (f->owner == FRAME_OWNED_BY_GENERATOR)
           | ((f->owner == FRAME_OWNED_BY_THREAD) & PyStackRef_IsNone(f->f_funcobj));
#elif PY_VERSION_HEX >= 0x030D0000
    return (f->owner == FRAME_OWNED_BY_GENERATOR)
           | ((f->owner == FRAME_OWNED_BY_THREAD) & (f->f_funcobj == Py_None));
#else
    return f->owner == FRAME_OWNED_BY_GENERATOR;
#endif
}

/* Depth of the whole stack, given `seen` complete frames above frame `f`,
 * the newest frame not looked at yet.  Counting the frames below the
 * captured ones is the O(depth) part of every capture (tracemalloc pays it
 * too); the owner test makes it one or two loads per frame.  (The eval
 * loop's own frame counter cannot replace the walk: 3.11 shares it with C
 * recursion, 3.13 counts its __init__ trampolines, and 3.12's misses the
 * generator frames that gen.throw() links while delegating to a
 * subgenerator; mh_compat_stack_is() uses it to tell when a count can be
 * reused.) */
static int
mh_stack_depth(_PyInterpreterFrame *f, int seen, int *regular)
{
    /* Branch-free count, saturated once at the end: the loop is a chain of
     * dependent loads, and every instruction per frame counts at depth 100.
     * A size_t count cannot overflow.  `*regular`: no irregular frame. */
    size_t depth = (size_t)seen;
    int irregular = 0;
    for (; !mh_frame_end(f); f = f->previous) {
        depth += (size_t)!mh_frame_skipped_below(f);
        irregular |= mh_frame_irregular(f);
    }
    *regular = !irregular;
    return depth < MH_MAX_NFRAME ? (int)depth : MH_MAX_NFRAME;
}

/* The newest complete frame.  Below it, mh_frame_skipped_below() is the
 * whole test. */
static inline _PyInterpreterFrame *
mh_first_complete(PyThreadState *tstate)
{
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    while (!mh_frame_end(f) && mh_frame_incomplete(f))
        f = f->previous;
    return f;
}

#ifdef MH_CHECK_DEPTH
/* The plain walk of tracemalloc, to check the fast paths against. */
static int
mh_capture_reference(PyThreadState *tstate, mh_rawframe *out, int max, int *total)
{
    int n = 0, depth = 0;
    for (_PyInterpreterFrame *f = mh_current_frame(tstate); !mh_frame_end(f); f = f->previous) {
        if (mh_frame_incomplete(f))
            continue;
        if (n < max) {
            out[n].code = mh_frame_code(f);
            out[n].lasti = _PyInterpreterFrame_LASTI(f);
            out[n].pad = 0;
            n++;
        }
        if (++depth == MH_MAX_NFRAME)
            break;
    }
    *total = depth;
    return n;
}

static void
mh_check_capture(PyThreadState *tstate, const mh_rawframe *frames, int n, int total,
                 int reused)
{
    mh_rawframe ref[64];
    int ref_total, ref_n = mh_capture_reference(tstate, ref, n < 64 ? n : 64, &ref_total);
    int same_frames = n > 64 || (ref_n == n && !memcmp(ref, frames, (size_t)n * sizeof(*ref)));
    if (same_frames && ref_total != total && reused) {
        /* The accepted residue of a reused depth (mh_compat_stack_is()):
         * reported, once per process, not fatal. */
        static int reported;
        if (!reported++)
            fprintf(stderr, "memhound: a reused depth was %d, a walk counts %d "
                    "(MEMHOUND_EXACT_DEPTH=1 counts every stack)\n", total, ref_total);
        return;
    }
    if (!same_frames || ref_total != total) {
        fprintf(stderr, "memhound: captured %d frames of %d, walked %d of %d\n",
                n, total, ref_n, ref_total);
        abort();
    }
}
#endif

/* The eval loop's count of the Python frames it runs: one more per frame
 * entered, one less per frame left.  Not the depth (see mh_stack_depth()),
 * but a frame entered or left anywhere below moves it.  With it, the count
 * of C recursion where CPython keeps one (3.11 in the same counter, 3.12
 * and 3.13 apart; 3.14 compares stack addresses instead): the eval loop
 * entered again from C (gen.throw(), a callback) moves that. */
static inline uint64_t
mh_frame_counter(PyThreadState *tstate)
{
#if PY_VERSION_HEX >= 0x030E0000
    return (uint32_t)tstate->py_recursion_remaining;
#elif PY_VERSION_HEX >= 0x030C0000
    return ((uint64_t)(uint32_t)tstate->py_recursion_remaining << 32)
           | (uint32_t)tstate->c_recursion_remaining;
#else
    return (uint32_t)tstate->recursion_remaining;
#endif
}

/* `regular`: the count under `below` (not the end) saw no irregular frame;
 * else the mark never matches. */
static inline void
mh_mark_set(mh_depth_mark *mark, _PyInterpreterFrame *below, int regular, PyThreadState *tstate)
{
    _PyInterpreterFrame *f = below;
    int i = 0;
    for (; i < MH_MARK_FRAMES && !mh_frame_end(f); i++, f = f->previous)
        mark->below[i] = f;
    mark->levels = i;
    mark->next = f;
    if (!regular)
        mark->below[0] = NULL;
    mark->root = mh_root;
    mark->counter = mh_frame_counter(tstate);
}

static struct {
    int reuse;
    uint64_t counted, reused;
} mh_depth = {1, 0, 0};

void
mh_compat_set_depth_reuse(int on)
{
    mh_depth.reuse = on;
    mh_depth.counted = mh_depth.reused = 0;
}

void
mh_compat_depth_counts(uint64_t *counted, uint64_t *reused)
{
    *counted = mh_depth.counted;
    *reused = mh_depth.reused;
}

/* 1 if the frames from `f` (not the end) down are those `mark` saw.  Only
 * frames the mark saw are followed, so the end is never dereferenced. */
static inline int
mh_mark_holds(const mh_depth_mark *mark, _PyInterpreterFrame *f, PyThreadState *tstate)
{
    if (mh_root != mark->root || mh_frame_counter(tstate) != mark->counter)
        return 0;
    for (int i = 0; i < mark->levels; i++) {
        if (f != mark->below[i])
            return 0;
        f = f->previous;
    }
    return f == mark->next;
}

int
mh_compat_capture(PyThreadState *tstate, mh_rawframe *out, int max, int *total,
                  mh_depth_mark *mark)
{
    int n = 0;
    _PyInterpreterFrame *f = mh_first_complete(tstate);
    for (; !mh_frame_end(f); f = f->previous) {
        if (mh_frame_skipped_below(f))
            continue;
        if (n == max)
            break;
        out[n].code = mh_frame_code(f);
        out[n].lasti = _PyInterpreterFrame_LASTI(f);
        out[n].pad = 0;
        n++;
    }
    if (mh_frame_end(f)) {
        mark->levels = 0;       /* nothing under the captured frames to count: */
        mark->next = NULL;      /* mh_compat_stack_is() never asks the mark */
        *total = n;
    } else {
        int regular;
        mh_depth.counted++;
        *total = mh_stack_depth(f, n, &regular);
        mh_mark_set(mark, f, regular, tstate);
    }
#ifdef MH_CHECK_DEPTH
    mh_check_capture(tstate, out, n, *total, 0);
#endif
    return n;
}

/* Counting the frames under the compared ones is the O(depth) part of
 * every capture, and a deep stack (web handlers run 40 to 80 frames deep)
 * would pay it at every allocation.  It is skipped while what lies under
 * the compared frames looks as the last count left it: the same
 * MH_MARK_FRAMES + 1 frames under them (addresses), the same root and the eval
 * loop's frame counters at the same values -- and only after a count that
 * found no frame on which the counter and a walk disagree
 * (mh_frame_irregular()): then every frame counted sat on the thread's
 * frame stack.  To fool the reuse, the frames further down would have to
 * be replaced by ones filling the frame stack exactly as much, frame by
 * frame, that the counters count as many while a walk counts fewer or more
 * -- generator frames linked by gen.throw() or __init__ trampolines.  That
 * residue is accepted for total_nframe (docs/architecture.md has the
 * measurements); MEMHOUND_EXACT_DEPTH=1 turns the reuse off, and
 * MEMHOUND_CHECK_DEPTH builds compare every reuse with a full walk. */
int
mh_compat_stack_is(PyThreadState *tstate, const mh_rawframe *frames, int n, int total,
                   mh_depth_mark *mark)
{
    int depth = 0;
    _PyInterpreterFrame *f = mh_first_complete(tstate);
    for (; !mh_frame_end(f); f = f->previous) {
        if (mh_frame_skipped_below(f))
            continue;
        if (depth == n)
            break;
        if (mh_frame_instr(f) != mh_code_instr(frames[depth]))
            return 0;
        depth++;
    }
    int same, reused = 0;
    if (mh_frame_end(f))
        same = total == depth;
    else if (mh_depth.reuse && mh_mark_holds(mark, f, tstate)) {
        mh_depth.reused++;
        same = reused = 1;
    } else {
        int regular;
        mh_depth.counted++;
        same = total == mh_stack_depth(f, depth, &regular);
        if (same)
            mh_mark_set(mark, f, regular, tstate);
    }
#ifdef MH_CHECK_DEPTH
    if (same)
        mh_check_capture(tstate, frames, n, total, reused);
#endif
    return same;
}

uintptr_t
mh_compat_top_key(PyThreadState *tstate)
{
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    if (mh_frame_end(f))
        return 0;
    return (uintptr_t)f ^ ((uintptr_t)mh_frame_instr(f) << 7);
}

int
mh_compat_code_line(PyObject *code, int lasti)
{
    /* Like tracemalloc: an instruction without a line reports line 0. */
    int line = PyCode_Addr2Line((PyCodeObject *)code, lasti * (int)sizeof(_Py_CODEUNIT));
    return line < 0 ? 0 : line;
}

/* The pre-header sizes in compat.h must match CPython's own. */
_Static_assert(sizeof(PyGC_Head) == 2 * sizeof(PyObject *), "GC header size");

Py_ssize_t
mh_compat_refcnt(PyObject *obj)
{
#if PY_VERSION_HEX >= 0x030E0000
    /* The whole word, not Py_REFCNT()'s low 32 bits: an object on a 3.14+
     * free list keeps its type but holds the next link in this word, and
     * the low half of a pointer can pass for a count (heap_orphans.c). */
    return (Py_ssize_t)obj->ob_refcnt_full;
#else
    return Py_REFCNT(obj);
#endif
}

PyObject *
mh_compat_hidden_part(PyObject *o)
{
#if PY_VERSION_HEX >= 0x030F0000
    if (PyByteArray_Check(o))
        return ((PyByteArrayObject *)o)->ob_bytes_object;
#else
    (void)o;
#endif
    return NULL;
}

#if PY_VERSION_HEX >= 0x030D0000
int mh_compat_has_reftracer(void) { return 1; }

int
mh_compat_set_reftracer(mh_reftracer_fn fn, void *data)
{
    return PyRefTracer_SetTracer((PyRefTracer)fn, data);
}

mh_reftracer_fn
mh_compat_get_reftracer(void **data)
{
    return (mh_reftracer_fn)PyRefTracer_GetTracer(data);
}
#else
int mh_compat_has_reftracer(void) { return 0; }
int mh_compat_set_reftracer(mh_reftracer_fn fn, void *data) { (void)fn; (void)data; return -1; }
mh_reftracer_fn mh_compat_get_reftracer(void **data) { if (data) *data = NULL; return NULL; }
#endif

int
mh_compat_stdlib_tracemalloc_tracing(void)
{
#if PY_VERSION_HEX >= 0x030C0000
    return _PyRuntime.tracemalloc.config.tracing;
#else
    return _Py_tracemalloc_config.tracing;
#endif
}


/* ---- Interpreters --------------------------------------------------------
 * 3.11-3.15 keep the interpreter list in _PyRuntime.interpreters (head is
 * the newest) and the thread's interpreter in the public tstate->interp.
 * 3.11 has one GIL in _PyRuntime.ceval; 3.12+ point interp->ceval.gil at
 * the interpreter's own GIL or, for a legacy subinterpreter, the main one. */

PyInterpreterState *const *const mh_compat_interp_head = &_PyRuntime.interpreters.head;

const void *
mh_compat_interp_gil(PyInterpreterState *interp)
{
#if PY_VERSION_HEX >= 0x030C0000
    return interp->ceval.gil;
#else
    (void)interp;
    return &_PyRuntime.ceval.gil;
#endif
}

int
mh_compat_interp_relation(PyThreadState *tstate, PyInterpreterState *traced,
                          const void *traced_gil)
{
    if (tstate == NULL) {
#if PY_VERSION_HEX >= 0x030C0000
        return MH_INTERP_OWN_GIL;
#else
        return MH_INTERP_SHARES_GIL;
#endif
    }
    PyInterpreterState *interp = tstate->interp;
    if (interp == traced)
        return MH_INTERP_TRACED;
    return mh_compat_interp_gil(interp) == traced_gil ? MH_INTERP_SHARES_GIL : MH_INTERP_OWN_GIL;
}

/* ---- Heap-graph support (leak finder) ------------------------------------
 * Added by the leak engineer; see the matching section of compat.h.  Frame
 * layouts: 3.11-3.13 keep the fast locals in _PyInterpreterFrame.localsplus,
 * named by co_localsplusnames.  Instance attributes: 3.11 keeps a values
 * pointer 4 words before the object, 3.12 a tagged dict-or-values word 3
 * words before it, 3.13 inline values right after the header; the names are
 * the shared keys of the type (ht_cached_keys).
 */

static void
mh_frame_fill(_PyInterpreterFrame *f, mh_frame_view *out)
{
    PyCodeObject *code = (PyCodeObject *)mh_frame_code(f);
    out->code = (PyObject *)code;
    out->locals = f->localsplus;
    out->nlocals = code->co_nlocalsplus;
    out->line = mh_compat_code_line((PyObject *)code, _PyInterpreterFrame_LASTI(f));
}

PyObject *
mh_compat_frame_local(const mh_frame_view *f, int i)
{
#if PY_VERSION_HEX >= 0x030E0000
    _PyStackRef ref = ((_PyStackRef *)f->locals)[i];
    if (PyStackRef_IsNull(ref) || PyStackRef_IsTaggedInt(ref))
        return NULL;
    return PyStackRef_AsPyObjectBorrow(ref);
#else
    return ((PyObject **)f->locals)[i];
#endif
}

int
mh_compat_object_frame(PyObject *obj, mh_frame_view *out)
{
    _PyInterpreterFrame *f = NULL;
    if (PyFrame_Check(obj)) {
        f = ((PyFrameObject *)obj)->f_frame;
    }
    else if (PyGen_Check(obj) || PyCoro_CheckExact(obj) || PyAsyncGen_CheckExact(obj)) {
        /* Generators, coroutines and async generators share _PyGenObject_HEAD. */
        PyGenObject *gen = (PyGenObject *)obj;
        if (gen->gi_frame_state >= FRAME_CLEARED)
            return 0;
#if PY_VERSION_HEX >= 0x030E0000
        f = &gen->gi_iframe;
#else
        f = (_PyInterpreterFrame *)gen->gi_iframe;
#endif
    }
    if (f == NULL || mh_frame_incomplete(f))
        return 0;
    mh_frame_fill(f, out);
    return 1;
}

void
mh_compat_thread_frames(mh_frame_fn fn, void *arg)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    for (PyThreadState *ts = PyInterpreterState_ThreadHead(interp); ts != NULL;
         ts = PyThreadState_Next(ts)) {
        int depth = 0;
        for (_PyInterpreterFrame *f = mh_current_frame(ts); f != NULL; f = f->previous) {
            if (mh_frame_incomplete(f))
                continue;
            mh_frame_view view;
            mh_frame_fill(f, &view);
            fn((unsigned long)ts->thread_id, depth++, &view, arg);
        }
    }
}

static PyDictValues *
mh_inline_values(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (!(tp->tp_flags & Py_TPFLAGS_MANAGED_DICT))
        return NULL;
#if PY_VERSION_HEX >= 0x030D0000
    if (!(tp->tp_flags & Py_TPFLAGS_INLINE_VALUES))
        return NULL;
    PyDictValues *values = _PyObject_InlineValues(obj);
    return values->valid ? values : NULL;
#elif PY_VERSION_HEX >= 0x030C0000
    PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(obj);
    return _PyDictOrValues_IsValues(dorv) ? _PyDictOrValues_GetValues(dorv) : NULL;
#else
    return *_PyObject_ValuesPointer(obj);
#endif
}

PyObject *
mh_compat_inline_attr_name(PyObject *obj, PyObject *value)
{
    PyDictValues *values = mh_inline_values(obj);
    if (values == NULL)
        return NULL;
    PyDictKeysObject *keys = ((PyHeapTypeObject *)Py_TYPE(obj))->ht_cached_keys;
    if (keys == NULL || !DK_IS_UNICODE(keys))
        return NULL;
    Py_ssize_t n = keys->dk_nentries;
#if PY_VERSION_HEX >= 0x030D0000
    if (n > values->capacity)
        n = values->capacity;
#endif
    PyDictUnicodeEntry *entries = DK_UNICODE_ENTRIES(keys);
    for (Py_ssize_t i = 0; i < n; i++) {
        if (values->values[i] == value)
            return entries[i].me_key;
    }
    return NULL;
}

PyObject *
mh_compat_existing_dict(PyObject *obj)
{
    PyTypeObject *tp = Py_TYPE(obj);
    if (tp->tp_flags & Py_TPFLAGS_MANAGED_DICT) {
#if PY_VERSION_HEX >= 0x030D0000
        return (PyObject *)_PyObject_GetManagedDict(obj);
#elif PY_VERSION_HEX >= 0x030C0000
        PyDictOrValues dorv = *_PyObject_DictOrValuesPointer(obj);
        return _PyDictOrValues_IsValues(dorv) ? NULL : dorv.dict;
#else
        return *_PyObject_ManagedDictPointer(obj);
#endif
    }
    if (tp->tp_dictoffset > 0)
        return *(PyObject **)((char *)obj + tp->tp_dictoffset);
    return NULL;
}

int
mh_compat_dict_visits_keys(PyObject *dict)
{
    return !DK_IS_UNICODE(((PyDictObject *)dict)->ma_keys);
}

static int
mh_visit_generation(struct gc_generation *gen, int (*fn)(PyObject *, void *), void *arg)
{
    PyGC_Head *head = &gen->head;
    for (PyGC_Head *gc = _PyGCHead_NEXT(head); gc != head; gc = _PyGCHead_NEXT(gc)) {
        if (fn((PyObject *)(gc + 1), arg) < 0)
            return -1;
    }
    return 0;
}

int
mh_compat_visit_tracked(int (*fn)(PyObject *, void *), void *arg)
{
    struct _gc_runtime_state *gcstate = &PyInterpreterState_Get()->gc;
    for (int i = 0; i < NUM_GENERATIONS; i++) {
        if (mh_visit_generation(&gcstate->generations[i], fn, arg) < 0)
            return -1;
    }
    return mh_visit_generation(&gcstate->permanent_generation, fn, arg);
}


/* ---- The interpreter's registries (leak finder) ---------------------------
 * The at-fork lists and the audit hooks are PyInterpreterState fields on
 * every version.  The codec registry moved into interp->codecs in 3.13.
 * atexit keeps a C array of (func, args, kwargs) structs on 3.11-3.13 (slots
 * of unregistered callbacks are NULL until the array is compacted) and a
 * list of such tuples on 3.14+.  The interned strings are a dict of the
 * interpreter's cached objects on 3.12+ (3.11 keeps a static one in
 * unicodeobject.c).
 */
static void
mh_registry_report(mh_interp_registry which, PyObject *obj, mh_interp_registry_fn fn, void *arg)
{
    if (obj != NULL)
        fn(which, obj, arg);
}

static void
mh_atexit_registries(PyInterpreterState *interp, mh_interp_registry_fn fn, void *arg)
{
#if PY_VERSION_HEX >= 0x030E0000
    mh_registry_report(MH_INTERP_REG_ATEXIT_LIST, interp->atexit.callbacks, fn, arg);
#else
#  if PY_VERSION_HEX >= 0x030C0000
    atexit_py_callback **callbacks = interp->atexit.callbacks;
#  else
    atexit_callback **callbacks = interp->atexit.callbacks;
#  endif
    for (int i = 0; callbacks != NULL && i < interp->atexit.ncallbacks; i++) {
        if (callbacks[i] == NULL)
            continue;
        mh_registry_report(MH_INTERP_REG_ATEXIT_FUNC, callbacks[i]->func, fn, arg);
        mh_registry_report(MH_INTERP_REG_ATEXIT_ARGS, callbacks[i]->args, fn, arg);
        mh_registry_report(MH_INTERP_REG_ATEXIT_KWARGS, callbacks[i]->kwargs, fn, arg);
    }
#endif
}

void
mh_compat_interp_registries(mh_interp_registry_fn fn, void *arg)
{
    PyInterpreterState *interp = PyInterpreterState_Get();
    mh_registry_report(MH_INTERP_REG_FORK_BEFORE, interp->before_forkers, fn, arg);
    mh_registry_report(MH_INTERP_REG_FORK_PARENT, interp->after_forkers_parent, fn, arg);
    mh_registry_report(MH_INTERP_REG_FORK_CHILD, interp->after_forkers_child, fn, arg);
    mh_atexit_registries(interp, fn, arg);
    mh_registry_report(MH_INTERP_REG_AUDIT_HOOKS, interp->audit_hooks, fn, arg);
#if PY_VERSION_HEX >= 0x030D0000
    mh_registry_report(MH_INTERP_REG_CODEC_SEARCH, interp->codecs.search_path, fn, arg);
    mh_registry_report(MH_INTERP_REG_CODEC_CACHE, interp->codecs.search_cache, fn, arg);
    mh_registry_report(MH_INTERP_REG_CODEC_ERRORS, interp->codecs.error_registry, fn, arg);
#else
    mh_registry_report(MH_INTERP_REG_CODEC_SEARCH, interp->codec_search_path, fn, arg);
    mh_registry_report(MH_INTERP_REG_CODEC_CACHE, interp->codec_search_cache, fn, arg);
    mh_registry_report(MH_INTERP_REG_CODEC_ERRORS, interp->codec_error_registry, fn, arg);
#endif
#if PY_VERSION_HEX >= 0x030C0000
    mh_registry_report(MH_INTERP_REG_INTERNED, _Py_INTERP_CACHED_OBJECT(interp, interned_strings),
                       fn, arg);
#endif
}

/* ---- Free lists (3.11, 3.12) ----------------------------------------------
 * An object taken from a free list reuses a block without an allocation.
 * 3.13+ reports it through the reference tracer; 3.11 and 3.12 only tell
 * CPython's own tracemalloc (_Py_NewReference).  So while memhound traces,
 * the object free lists of the traced interpreter are kept empty: every
 * object then gets a new allocation, traced at its real creation site.
 *
 * Two kinds of free list (Objects/ of 3.11 and 3.12):
 *  - linked (tuple per size, float, MemoryError): the pop tests the head,
 *    the push tests the count.  Closed = head NULL and count MH_FL_CLOSED,
 *    so that the push never happens and the pop finds nothing; no code on
 *    any path.  A full collection (clear_freelists) sets the counts back to
 *    0: mh_compat_freelists_reclose() closes them again (gc callback).
 *  - arrays (list, dict, async-generator asend and wrapped value, and the
 *    context list, whose pop tests the count) and the one-slot slice cache:
 *    their pop and push test the same thing, so they cannot be closed by
 *    value.  The type's tp_dealloc is wrapped: after CPython's dealloc
 *    pushed the object, the wrapper frees it as CPython's clear function
 *    does.  list and dict deallocs use the trashcan keyed on their own
 *    tp_dealloc, which no longer matches: the wrapper takes it over.
 * Every object is freed exactly as the matching _Py*_ClearFreeList()
 * frees it.  The dict KEYS free list cannot be closed (array, and keys are
 * freed from inside dictobject.c, not through a type slot); keys are no
 * objects and tracemalloc does not re-stamp them either.  It is drained
 * with the dict list: after every dict dealloc (so that the info dicts of
 * memhound's gc callback leave no keys block behind in the program's
 * traces), at start and after a full collection.  Keys freed by a resize
 * or dict.clear() stay reusable, as under tracemalloc.
 */
#if PY_VERSION_HEX < 0x030D0000

#define MH_FL_CLOSED INT_MAX
/* Objects preallocated by CPython at startup for raising MemoryError
 * (MEMERRORS_SAVE in Objects/exceptions.c): restored when opening. */
#define MH_MEMERRORS_SAVE 16

/* The interpreter whose free lists are closed, or NULL. */
static PyInterpreterState *mh_fl_interp;

/* The caller's interpreter (GIL held); _PyInterpreterState_GET() reads a
 * thread-local that 3.12 does not export. */
static inline PyInterpreterState *
mh_fl_current(void)
{
    PyThreadState *ts = mh_compat_tstate();
    return ts != NULL ? ts->interp : NULL;
}

static void
mh_fl_close_linked(PyInterpreterState *interp)
{
#if PyTuple_NFREELISTS > 0
    for (int i = 0; i < PyTuple_NFREELISTS; i++) {
        PyTupleObject *p = interp->tuple.free_list[i];
        interp->tuple.free_list[i] = NULL;
        interp->tuple.numfree[i] = MH_FL_CLOSED;
        while (p != NULL) {
            PyTupleObject *q = p;
            p = (PyTupleObject *)p->ob_item[0];
            PyObject_GC_Del(q);
        }
    }
#endif
#if PyFloat_MAXFREELIST > 0
    PyFloatObject *f = interp->float_state.free_list;
    interp->float_state.free_list = NULL;
    interp->float_state.numfree = MH_FL_CLOSED;
    while (f != NULL) {
        PyFloatObject *next = (PyFloatObject *)Py_TYPE(f);
        PyObject_Free(f);
        f = next;
    }
#endif
    PyBaseExceptionObject *e = interp->exc_state.memerrors_freelist;
    interp->exc_state.memerrors_freelist = NULL;
    interp->exc_state.memerrors_numfree = MH_FL_CLOSED;
    while (e != NULL) {
        PyObject *self = (PyObject *)e;
        e = (PyBaseExceptionObject *)e->dict;
        Py_TYPE(self)->tp_free(self);
    }
}

static void
mh_fl_open_linked(PyInterpreterState *interp)
{
#if PyTuple_NFREELISTS > 0
    for (int i = 0; i < PyTuple_NFREELISTS; i++) {
        if (interp->tuple.numfree[i] == MH_FL_CLOSED)
            interp->tuple.numfree[i] = 0;
    }
#endif
#if PyFloat_MAXFREELIST > 0
    if (interp->float_state.numfree == MH_FL_CLOSED)
        interp->float_state.numfree = 0;
#endif
    if (interp->exc_state.memerrors_numfree == MH_FL_CLOSED)
        interp->exc_state.memerrors_numfree = 0;
}

static void
mh_fl_drain_list(PyInterpreterState *interp)
{
#if PyList_MAXFREELIST > 0
    struct _Py_list_state *st = &interp->list;
    while (st->numfree > 0)
        PyObject_GC_Del(st->free_list[--st->numfree]);
#else
    (void)interp;
#endif
}

static void
mh_fl_drain_dict(PyInterpreterState *interp)
{
#if PyDict_MAXFREELIST > 0
    struct _Py_dict_state *st = &interp->dict_state;
    while (st->numfree > 0)
        PyObject_GC_Del(st->free_list[--st->numfree]);
    while (st->keys_numfree > 0)
        PyObject_Free(st->keys_free_list[--st->keys_numfree]);
#else
    (void)interp;
#endif
}

static void
mh_fl_drain_asyncgen(PyInterpreterState *interp)
{
#if _PyAsyncGen_MAXFREELIST > 0
    struct _Py_async_gen_state *st = &interp->async_gen;
    while (st->value_numfree > 0)
        PyObject_GC_Del(st->value_freelist[--st->value_numfree]);
    while (st->asend_numfree > 0)
        PyObject_GC_Del(st->asend_freelist[--st->asend_numfree]);
#else
    (void)interp;
#endif
}

static void
mh_fl_drain_context(PyInterpreterState *interp)
{
#if PyContext_MAXFREELIST > 0
    struct _Py_context_state *st = &interp->context;
    while (st->numfree > 0) {
        PyContext *ctx = st->freelist;
        st->freelist = (PyContext *)ctx->ctx_weakreflist;
        ctx->ctx_weakreflist = NULL;
        PyObject_GC_Del(ctx);
        st->numfree--;
    }
#else
    (void)interp;
#endif
}

static void
mh_fl_drain_slice(PyInterpreterState *interp)
{
    PySliceObject *obj = interp->slice_cache;
    if (obj != NULL) {
        interp->slice_cache = NULL;
        PyObject_GC_Del(obj);
    }
}

static inline void
mh_fl_after_dealloc(void (*drain)(PyInterpreterState *))
{
    PyInterpreterState *interp = mh_fl_current();
    if (interp == mh_fl_interp)
        drain(interp);
}

/* One wrapper per type: CPython's dealloc, then the drain. */
#define MH_FL_WRAPPER(name, drain)                                  \
    static destructor name##_orig;                                  \
    static void name(PyObject *op)                                  \
    {                                                               \
        name##_orig(op);                                            \
        mh_fl_after_dealloc(drain);                                 \
    }
/* The same inside the trashcan that CPython's dealloc no longer enters
 * (its Py_TRASHCAN_BEGIN tests that tp_dealloc is itself).  Like list and
 * dict deallocs, untrack first: the trashcan links deferred objects
 * through their GC header. */
#define MH_FL_WRAPPER_TRASHCAN(name, drain)                         \
    static destructor name##_orig;                                  \
    static void name(PyObject *op)                                  \
    {                                                               \
        PyObject_GC_UnTrack(op);                                    \
        Py_TRASHCAN_BEGIN(op, name)                                 \
        name##_orig(op);                                            \
        mh_fl_after_dealloc(drain);                                 \
        Py_TRASHCAN_END                                             \
    }

MH_FL_WRAPPER_TRASHCAN(mh_fl_list_dealloc, mh_fl_drain_list)
MH_FL_WRAPPER_TRASHCAN(mh_fl_dict_dealloc, mh_fl_drain_dict)
MH_FL_WRAPPER(mh_fl_asend_dealloc, mh_fl_drain_asyncgen)
MH_FL_WRAPPER(mh_fl_wrapped_value_dealloc, mh_fl_drain_asyncgen)
MH_FL_WRAPPER(mh_fl_context_dealloc, mh_fl_drain_context)
MH_FL_WRAPPER(mh_fl_slice_dealloc, mh_fl_drain_slice)

static const struct {
    PyTypeObject *type;
    destructor *orig;
    destructor ours;
} mh_fl_wrapped[] = {
    {&PyList_Type, &mh_fl_list_dealloc_orig, mh_fl_list_dealloc},
    {&PyDict_Type, &mh_fl_dict_dealloc_orig, mh_fl_dict_dealloc},
    {&_PyAsyncGenASend_Type, &mh_fl_asend_dealloc_orig, mh_fl_asend_dealloc},
    {&_PyAsyncGenWrappedValue_Type, &mh_fl_wrapped_value_dealloc_orig,
     mh_fl_wrapped_value_dealloc},
    {&PyContext_Type, &mh_fl_context_dealloc_orig, mh_fl_context_dealloc},
    {&PySlice_Type, &mh_fl_slice_dealloc_orig, mh_fl_slice_dealloc},
};
#define MH_FL_NWRAPPED (sizeof(mh_fl_wrapped) / sizeof(mh_fl_wrapped[0]))

/* Wrap while CPython's dealloc (or what was there first) is installed; a
 * tool that replaced it after us stays in place (it chains to ours). */
static void
mh_fl_wrap_types(void)
{
    for (size_t i = 0; i < MH_FL_NWRAPPED; i++) {
        PyTypeObject *tp = mh_fl_wrapped[i].type;
        if (*mh_fl_wrapped[i].orig == NULL)
            *mh_fl_wrapped[i].orig = tp->tp_dealloc;
        if (tp->tp_dealloc == *mh_fl_wrapped[i].orig)
            tp->tp_dealloc = mh_fl_wrapped[i].ours;
    }
}

/* Only where ours is still on top; otherwise it stays reachable and is a
 * pass-through (mh_fl_interp is NULL). */
static void
mh_fl_unwrap_types(void)
{
    for (size_t i = 0; i < MH_FL_NWRAPPED; i++) {
        PyTypeObject *tp = mh_fl_wrapped[i].type;
        if (tp->tp_dealloc == mh_fl_wrapped[i].ours)
            tp->tp_dealloc = *mh_fl_wrapped[i].orig;
    }
}

static void
mh_fl_close(PyInterpreterState *interp)
{
    mh_fl_close_linked(interp);
    mh_fl_drain_list(interp);
    mh_fl_drain_dict(interp);
    mh_fl_drain_asyncgen(interp);
    mh_fl_drain_context(interp);
    mh_fl_drain_slice(interp);
}

int mh_compat_freelists_supported(void) { return 1; }

void
mh_compat_freelists_close(void)
{
    PyInterpreterState *interp = mh_fl_current();
    if (mh_fl_interp != NULL && mh_fl_interp != interp)
        mh_compat_freelists_open();
    mh_fl_interp = interp;
    mh_fl_wrap_types();
    mh_fl_close(interp);
}

void
mh_compat_freelists_reclose(void)
{
    PyInterpreterState *interp = mh_fl_current();
    if (interp == mh_fl_interp)
        mh_fl_close(interp);
}

void
mh_compat_freelists_open(void)
{
    PyInterpreterState *interp = mh_fl_interp;
    if (interp == NULL)
        return;
    mh_fl_interp = NULL;
    mh_fl_unwrap_types();
    mh_fl_open_linked(interp);
    /* CPython preallocates MemoryErrors at startup so that raising one
     * needs no memory (3.11 allocates otherwise): put them back, as
     * preallocate_memerrors() does. */
    if (interp != mh_fl_current() || interp->exc_state.memerrors_numfree != 0)
        return;
    PyObject *errors[MH_MEMERRORS_SAVE];
    int n = 0;
#if PY_VERSION_HEX >= 0x030C0000
    PyObject *exc = PyErr_GetRaisedException();
#else
    PyObject *type, *value, *tb;
    PyErr_Fetch(&type, &value, &tb);
#endif
    for (; n < MH_MEMERRORS_SAVE; n++) {
        errors[n] = PyObject_CallNoArgs(PyExc_MemoryError);
        if (errors[n] == NULL)
            break;
    }
    while (n > 0)
        Py_DECREF(errors[--n]);
    PyErr_Clear();
#if PY_VERSION_HEX >= 0x030C0000
    PyErr_SetRaisedException(exc);
#else
    PyErr_Restore(type, value, tb);
#endif
}
#else
/* 3.13+: the reference tracer re-stamps reused blocks; nothing to close. */
int mh_compat_freelists_supported(void) { return 0; }
void mh_compat_freelists_close(void) {}
void mh_compat_freelists_reclose(void) {}
void mh_compat_freelists_open(void) {}
#endif

/* ---------------------------------------------------------------- pymalloc */

/* 3.12+ expose pymalloc's layout in pycore_obmalloc.h (3.11 keeps it inside
 * Objects/obmalloc.c, with the same values). */
#if defined(POOL_BITS) && defined(POOL_OVERHEAD) && SIZEOF_VOID_P == 8
_Static_assert(POOL_BITS == MH_COMPAT_POOL_BITS, "pymalloc pool size");
_Static_assert(POOL_OVERHEAD == MH_COMPAT_POOL_OVERHEAD, "pymalloc pool header");
_Static_assert(SMALL_REQUEST_THRESHOLD == MH_COMPAT_SMALL_MAX, "pymalloc small requests");
_Static_assert(ALIGNMENT == MH_COMPAT_ALIGN, "pymalloc alignment");
#endif

int
mh_compat_pymalloc_below(void)
{
#if SIZEOF_VOID_P == 8
    /* NULL when any hook is installed: then the blocks memhound sees may
     * carry another tool's header and no longer sit at pool positions. */
    const char *name = _PyMem_GetCurrentAllocatorName();
    return name != NULL && strcmp(name, "pymalloc") == 0;
#else
    return 0;
#endif
}
