/* compat.c -- CPython internals, per version.  See compat.h.
 *
 * 3.11 and 3.12 keep the newest frame in tstate->cframe->current_frame and the
 * code object in frame->f_code, with prev_instr pointing at the instruction;
 * 3.13 moved the frame to tstate->current_frame and renamed the fields to
 * f_executable (which may be None for C-stack shim frames) and instr_ptr.
 * A new version is a new #if branch in the three small functions below.
 */
#define Py_BUILD_CORE 1
#include <Python.h>
/* CPython's internal headers are not written for -Wextra. */
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wunused-parameter"
#pragma GCC diagnostic ignored "-Wsign-compare"
#include "internal/pycore_frame.h"
#include "internal/pycore_object.h"
#include "internal/pycore_runtime.h"
#include "internal/pycore_pystate.h"
#if PY_VERSION_HEX < 0x030C0000
#  include "internal/pycore_pymem.h"
#endif
#pragma GCC diagnostic pop

#include "compat.h"

#if PY_VERSION_HEX < 0x030B0000 || PY_VERSION_HEX >= 0x030E0000
#  error "memhound supports CPython 3.11 to 3.13"
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
#if PY_VERSION_HEX >= 0x030D0000
    return f->f_executable;
#else
    return (PyObject *)f->f_code;
#endif
}

static inline int
mh_frame_incomplete(_PyInterpreterFrame *f)
{
#if PY_VERSION_HEX >= 0x030D0000
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
    PyThreadState *ts = _PyThreadState_GET();
    if (ts != NULL && ts->thread_id != PyThread_get_thread_ident())
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

int
mh_compat_capture(PyThreadState *tstate, mh_rawframe *out, int max, int *total)
{
    int n = 0, depth = 0;
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    for (; f != NULL; f = f->previous) {
        if (mh_frame_incomplete(f))
            continue;
        if (n < max) {
            out[n].code = mh_frame_code(f);
            out[n].lasti = _PyInterpreterFrame_LASTI(f);
            out[n].pad = 0;
            n++;
        }
        if (++depth == MH_MAX_NFRAME) {
            break;
        }
    }
    *total = depth;
    return n;
}

int
mh_compat_stack_is(PyThreadState *tstate, const mh_rawframe *frames, int n, int total)
{
    int depth = 0;
    _PyInterpreterFrame *f = mh_current_frame(tstate);
    for (; f != NULL; f = f->previous) {
        if (mh_frame_incomplete(f))
            continue;
        if (depth < n && (frames[depth].code != mh_frame_code(f)
                          || frames[depth].lasti != _PyInterpreterFrame_LASTI(f)))
            return 0;
        if (++depth == MH_MAX_NFRAME)
            break;
        if (depth > total)
            return 0;
    }
    return depth == total && (depth >= n);
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
    if (lasti < 0)
        return -1;
    return PyCode_Addr2Line((PyCodeObject *)code, lasti * (int)sizeof(_Py_CODEUNIT));
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
