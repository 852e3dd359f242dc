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
#if PY_VERSION_HEX < 0x030C0000
#  include "internal/pycore_pymem.h"
#endif
#pragma GCC diagnostic pop

#include "compat.h"

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
 * of the code object chase of mh_frame_incomplete(). */
static inline int
mh_frame_skipped_below(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030E0000
    return f->owner >= FRAME_OWNED_BY_INTERPRETER || PyStackRef_IsNone(f->f_funcobj);
#elif PY_VERSION_HEX >= 0x030D0000
    return f->owner == FRAME_OWNED_BY_CSTACK || f->f_funcobj == Py_None;
#elif PY_VERSION_HEX >= 0x030C0000
    return f->owner == FRAME_OWNED_BY_CSTACK;
#else
    (void)f;
    return 0;
#endif
}

/* Depth of the whole stack, given `seen` complete frames above frame `f`,
 * the newest frame not looked at yet.  Counting the frames below the
 * captured ones is the O(depth) part of every capture (tracemalloc pays it
 * too); the owner test makes it one or two loads per frame.  (The eval
 * loop's own frame counter cannot replace the walk: 3.11 shares it with C
 * recursion, 3.13 counts its __init__ trampolines, and 3.12's misses the
 * generator frames that gen.throw() links while delegating to a
 * subgenerator.) */
static int
mh_stack_depth(_PyInterpreterFrame *f, int seen)
{
    int depth = seen;
    for (; f != NULL && depth < MH_MAX_NFRAME; f = f->previous)
        depth += !mh_frame_skipped_below(f);
    return depth;
}

/* The newest complete frame.  Below it, mh_frame_skipped_below() is the
 * whole test. */
static inline _PyInterpreterFrame *
mh_first_complete(PyThreadState *tstate)
{
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    while (f != NULL && mh_frame_incomplete(f))
        f = f->previous;
    return f;
}

#ifdef MH_CHECK_DEPTH
/* The plain walk of tracemalloc, to check the fast paths against. */
static int
mh_capture_reference(PyThreadState *tstate, mh_rawframe *out, int max, int *total)
{
    int n = 0, depth = 0;
    for (_PyInterpreterFrame *f = mh_current_frame(tstate); f != NULL; f = f->previous) {
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
mh_check_capture(PyThreadState *tstate, const mh_rawframe *frames, int n, int total)
{
    mh_rawframe ref[64];
    int ref_total, ref_n = mh_capture_reference(tstate, ref, n < 64 ? n : 64, &ref_total);
    if (ref_total != total || (n <= 64 && (ref_n != n || memcmp(ref, frames, (size_t)n * sizeof(*ref))))) {
        fprintf(stderr, "memhound: captured %d frames of %d, walked %d of %d\n",
                n, total, ref_n, ref_total);
        abort();
    }
}
#endif

int
mh_compat_capture(PyThreadState *tstate, mh_rawframe *out, int max, int *total)
{
    int n = 0;
    _PyInterpreterFrame *f = mh_first_complete(tstate);
    for (; f != NULL; f = f->previous) {
        if (mh_frame_skipped_below(f))
            continue;
        if (n == max)
            break;
        out[n].code = mh_frame_code(f);
        out[n].lasti = _PyInterpreterFrame_LASTI(f);
        out[n].pad = 0;
        n++;
    }
    *total = mh_stack_depth(f, n);
#ifdef MH_CHECK_DEPTH
    mh_check_capture(tstate, out, n, *total);
#endif
    return n;
}

int
mh_compat_stack_is(PyThreadState *tstate, const mh_rawframe *frames, int n, int total)
{
    int depth = 0;
    _PyInterpreterFrame *f = mh_first_complete(tstate);
    for (; f != NULL; f = f->previous) {
        if (mh_frame_skipped_below(f))
            continue;
        if (depth == n)
            break;
        if (frames[depth].code != mh_frame_code(f)
            || frames[depth].lasti != _PyInterpreterFrame_LASTI(f))
            return 0;
        depth++;
    }
    int same = total == mh_stack_depth(f, depth);
#ifdef MH_CHECK_DEPTH
    if (same)
        mh_check_capture(tstate, frames, n, total);
#endif
    return same;
}

uintptr_t
mh_compat_top_key(PyThreadState *tstate)
{
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    if (f == NULL)
        return 0;
#if PY_VERSION_HEX >= 0x030D0000
    return (uintptr_t)f ^ ((uintptr_t)f->instr_ptr << 7);
#else
    return (uintptr_t)f ^ ((uintptr_t)f->prev_instr << 7);
#endif
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
    return Py_REFCNT(obj);
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
