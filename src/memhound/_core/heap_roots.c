/* heap_roots.c -- the interpreter's registries, named roots of the heap graph.
 *
 * What a program registers with the interpreter stays alive for the
 * interpreter's life unless it is removed: os.register_at_fork and atexit
 * callbacks, signal handlers, sys.addaudithook hooks, codecs.register search
 * functions (and codecs.lookup's cache), warnings filters and each module's
 * __warningregistry__, sys.modules, threading's bookkeeping of live threads,
 * and the interned strings.
 * Without names, what only interpreter state holds looks "held outside
 * Python" (with a C-extension hint) and what module globals of the standard
 * library hold looks like an ordinary global collection.  This file says
 * which objects are such registries:
 *  - the interpreter's own fields through compat.c (the only file that
 *    reads them, per version);
 *  - the rest by identity, from what Python reaches: sys.modules, globals
 *    of warnings, _warnings, _py_warnings and threading, every module's
 *    __warningregistry__, and _signal.getsignal(n) for every signal number
 *    (the handlers live in a static C array of the _signal module).
 * heap_graph.c makes them roots of the search (after modules and classes);
 * heap_label.c starts a path at the registry nearest to its target, so that
 * "module threading -> global _dangling (WeakSet) -> attribute data (set)"
 * reads "threading._dangling".
 *
 * No Python code of user objects runs: dicts are scanned with PyDict_Next
 * and keys compared only when they are exact str (a lookup could call a
 * user key's __eq__), and _signal.getsignal is called only when it is the
 * _signal module's own builtin (signal.getsignal is Python code).  Cost:
 * one pass over sys.modules and the globals of each module (the
 * __warningregistry__ check compares lengths first), NSIG calls of
 * getsignal; nothing per heap object.
 */
#include <Python.h>
#include <stdio.h>

#include "compat.h"
#include "heap.h"
#include "heap_kinds.h"

typedef struct {
    mh_registry_fn fn;
    void *arg;
    int failed;
} mh_roots;

static void
mh_roots_report(mh_roots *r, PyObject *obj, mh_root_kind kind, const char *label)
{
    if (obj != NULL && !r->failed && r->fn(obj, (int)kind, label, r->arg) < 0)
        r->failed = 1;
}

/* ---- the interpreter's fields (compat.c) -------------------------------- */

static void
mh_roots_interp(mh_interp_registry which, PyObject *obj, void *arg)
{
    static const struct {
        mh_root_kind kind;
        const char *label;
    } names[] = {
        [MH_INTERP_REG_FORK_BEFORE] = {MH_ROOT_AT_FORK, "before"},
        [MH_INTERP_REG_FORK_PARENT] = {MH_ROOT_AT_FORK, "after_in_parent"},
        [MH_INTERP_REG_FORK_CHILD] = {MH_ROOT_AT_FORK, "after_in_child"},
        [MH_INTERP_REG_ATEXIT_LIST] = {MH_ROOT_ATEXIT, "callbacks"},
        [MH_INTERP_REG_ATEXIT_FUNC] = {MH_ROOT_ATEXIT, "callback"},
        [MH_INTERP_REG_ATEXIT_ARGS] = {MH_ROOT_ATEXIT, "callback arguments"},
        [MH_INTERP_REG_ATEXIT_KWARGS] = {MH_ROOT_ATEXIT, "callback keyword arguments"},
        [MH_INTERP_REG_AUDIT_HOOKS] = {MH_ROOT_AUDIT_HOOKS, ""},
        [MH_INTERP_REG_CODEC_SEARCH] = {MH_ROOT_CODECS, "codecs.register() search functions"},
        [MH_INTERP_REG_CODEC_CACHE] = {MH_ROOT_CODECS, "codecs.lookup() cache"},
        [MH_INTERP_REG_CODEC_ERRORS] = {MH_ROOT_CODECS, "codecs.register_error() handlers"},
        [MH_INTERP_REG_INTERNED] = {MH_ROOT_INTERNED, ""},
    };
    /* The interned strings only where the graph reaches them (a tracked
     * table, 3.14+): made a node, the whole table would be traversed, and
     * heap_orphans.c already reports what only it holds. */
    if (which == MH_INTERP_REG_INTERNED && !PyObject_GC_IsTracked(obj))
        return;
    mh_roots_report(arg, obj, names[which].kind, names[which].label);
}

/* ---- dicts without lookups ---------------------------------------------- */

/* The value (borrowed) under the exact-str key `name` of `dict`, or NULL.
 * A scan, not a lookup: a lookup could call __eq__ of a user's key. */
static PyObject *
mh_dict_get_ascii(PyObject *dict, const char *name)
{
    if (dict == NULL || !PyDict_Check(dict))
        return NULL;
    Py_ssize_t len = (Py_ssize_t)strlen(name), pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(dict, &pos, &key, &value)) {
        if (PyUnicode_CheckExact(key) && PyUnicode_GET_LENGTH(key) == len
            && PyUnicode_CompareWithASCIIString(key, name) == 0)
            return value;
    }
    return NULL;
}

typedef struct {
    PyObject *owner;
    const char *name;
    PyObject *found;
} mh_attr_search;

static int
mh_attr_visit(PyObject *o, void *arg)
{
    mh_attr_search *a = arg;
    PyObject *name = mh_compat_inline_attr_name(a->owner, o);
    if (name == NULL || !PyUnicode_CheckExact(name)
        || PyUnicode_CompareWithASCIIString(name, a->name) != 0)
        return 0;
    a->found = o;
    return 1;
}

/* The instance attribute `name` of `obj` (borrowed) from its __dict__ or
 * its inline values, or NULL; no descriptor runs.  Inline values are only
 * reached through tp_traverse (the dict may not exist). */
static PyObject *
mh_attr_value(PyObject *obj, const char *name)
{
    PyObject *dict = mh_compat_existing_dict(obj);
    if (dict != NULL)
        return mh_dict_get_ascii(dict, name);
    traverseproc trav = Py_TYPE(obj)->tp_traverse;
    if (trav == NULL || !PyType_IS_GC(Py_TYPE(obj)))
        return NULL;
    mh_attr_search a = {obj, name, NULL};
    trav(obj, mh_attr_visit, &a);
    return a.found;
}

/* "name" of an exact str (at most `size` - 1 bytes), or "?". */
static void
mh_str_copy(PyObject *s, char *out, size_t size)
{
    Py_ssize_t len = 0;
    const char *utf8 = PyUnicode_CheckExact(s) ? PyUnicode_AsUTF8AndSize(s, &len) : NULL;
    if (utf8 == NULL) {
        PyErr_Clear();
        utf8 = "?";
        len = 1;
    }
    snprintf(out, size, "%.*s", (int)len, utf8);
}

/* ---- the standard library's module globals ------------------------------ */

static void
mh_warnings_registries(mh_roots *r, PyObject *module_dict)
{
    mh_roots_report(r, mh_dict_get_ascii(module_dict, "filters"), MH_ROOT_WARNINGS,
                    "warnings.filters");
    mh_roots_report(r, mh_dict_get_ascii(module_dict, "_onceregistry"), MH_ROOT_WARNINGS,
                    "warnings once-registry");
    mh_roots_report(r, mh_dict_get_ascii(module_dict, "onceregistry"), MH_ROOT_WARNINGS,
                    "warnings once-registry");
}

static void
mh_threading_registries(mh_roots *r, PyObject *module_dict)
{
    static const char *const names[] = {"_active", "_limbo", "_shutdown_locks",
                                        "_threading_atexits"};
    for (size_t i = 0; i < sizeof names / sizeof *names; i++)
        mh_roots_report(r, mh_dict_get_ascii(module_dict, names[i]), MH_ROOT_THREADING, names[i]);
    /* A WeakSet: its entries are the members of its `data` set. */
    PyObject *dangling = mh_dict_get_ascii(module_dict, "_dangling");
    PyObject *data = dangling ? mh_attr_value(dangling, "data") : NULL;
    mh_roots_report(r, data != NULL && PyAnySet_Check(data) ? data : dangling, MH_ROOT_THREADING,
                    "_dangling");
}

/* The name of signal `signum` from the signal module's globals (SIGUSR1:
 * ints or Signals members, read as ints without calling __index__). */
static void
mh_signal_name(PyObject *signal_dict, long signum, char *out, size_t size)
{
    Py_ssize_t pos = 0;
    PyObject *key, *value;
    while (PyDict_Next(signal_dict, &pos, &key, &value)) {
        if (!PyUnicode_CheckExact(key) || !PyUnicode_IS_ASCII(key) || !PyLong_Check(value))
            continue;
        const char *name = (const char *)PyUnicode_DATA(key);
        if (strncmp(name, "SIG", 3) != 0 || name[3] == '_' || name[3] == '\0')
            continue;
        long v = PyLong_AsLong(value);     /* an int (subclass): no __index__ */
        if (v == -1 && PyErr_Occurred()) {
            PyErr_Clear();
            continue;
        }
        if (v == signum) {
            snprintf(out, size, "%s", name);
            return;
        }
    }
    snprintf(out, size, "signal %ld", signum);
}

static void
mh_signal_handlers(mh_roots *r, PyObject *signal_module)
{
    PyObject *dict = PyModule_GetDict(signal_module);
    PyObject *getsignal = mh_dict_get_ascii(dict, "getsignal");
    PyObject *nsig = mh_dict_get_ascii(dict, "NSIG");
    /* Only the module's own builtin: a replacement could be any code. */
    if (getsignal == NULL || !PyCFunction_Check(getsignal)
        || PyCFunction_GET_SELF(getsignal) != signal_module || nsig == NULL || !PyLong_Check(nsig))
        return;
    long n = PyLong_AsLong(nsig);
    if (n == -1 && PyErr_Occurred()) {
        PyErr_Clear();
        return;
    }
    for (long signum = 1; signum < n && signum < 1024 && !r->failed; signum++) {
        PyObject *num = PyLong_FromLong(signum);
        PyObject *handler = num ? PyObject_CallOneArg(getsignal, num) : NULL;
        Py_XDECREF(num);
        if (handler == NULL) {
            PyErr_Clear();
            continue;
        }
        /* SIG_DFL and SIG_IGN are ints, unset handlers None: no holders. */
        if (handler != Py_None && !PyLong_Check(handler)) {
            char name[MH_REGISTRY_LABEL];
            mh_signal_name(dict, signum, name, sizeof name);
            mh_roots_report(r, handler, MH_ROOT_SIGNAL, name);
        }
        /* The signal module keeps its own reference. */
        Py_DECREF(handler);
    }
}

/* Every module's __warningregistry__ and the registries of the modules
 * named above, in one pass over sys.modules. */
static void
mh_module_registries(mh_roots *r, PyObject *modules)
{
    static const char registry[] = "__warningregistry__";
    PyObject *signal_module = NULL;
    Py_ssize_t pos = 0;
    PyObject *name, *module;
    while (PyDict_Next(modules, &pos, &name, &module) && !r->failed) {
        if (!PyModule_Check(module) || !PyUnicode_CheckExact(name))
            continue;
        PyObject *dict = PyModule_GetDict(module);
        PyObject *seen = mh_dict_get_ascii(dict, registry);
        if (seen != NULL && PyDict_Check(seen)) {
            char label[MH_REGISTRY_LABEL], mod[MH_REGISTRY_LABEL - sizeof registry - 12];
            mh_str_copy(name, mod, sizeof mod);
            snprintf(label, sizeof label, "%s of module %s", registry, mod);
            mh_roots_report(r, seen, MH_ROOT_WARNINGS, label);
        }
        if (PyUnicode_CompareWithASCIIString(name, "warnings") == 0
            || PyUnicode_CompareWithASCIIString(name, "_warnings") == 0
            || PyUnicode_CompareWithASCIIString(name, "_py_warnings") == 0)
            mh_warnings_registries(r, dict);
        else if (PyUnicode_CompareWithASCIIString(name, "threading") == 0)
            mh_threading_registries(r, dict);
        else if (PyUnicode_CompareWithASCIIString(name, "_signal") == 0)
            signal_module = module;      /* signal.getsignal is Python code */
    }
    if (signal_module != NULL)
        mh_signal_handlers(r, signal_module);
}

int
mh_heap_registries_each(mh_registry_fn fn, void *arg)
{
    mh_roots r = {fn, arg, 0};
    mh_compat_interp_registries(mh_roots_interp, &r);
    PyObject *modules = PyImport_GetModuleDict();
    mh_roots_report(&r, modules, MH_ROOT_SYS_MODULES, "");
    if (modules != NULL && PyDict_Check(modules))
        mh_module_registries(&r, modules);
    return r.failed ? -1 : 0;
}
