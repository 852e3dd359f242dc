/* heap_kinds.h -- the vocabulary of the leak finder's paths, defined once.
 *
 * A path (mh_heap_path, heap.h) is a list of steps; the first step's kind is
 * a root kind, every other step's an edge kind.  Each entry is
 * X(ID, "name", "text"): the name is what Python receives in the step
 * tuples, the text the format in which memhound.leaks shows such a step
 * ("{}" stands for the step's label).  module.c exports both tables as
 * _core.ROOT_KINDS and _core.EDGE_KINDS (read-only name -> text mappings),
 * so Python spells no kind of its own.
 */
#ifndef MH_HEAP_KINDS_H
#define MH_HEAP_KINDS_H

#define MH_ROOT_KINDS(X)                                                        \
    X(MODULE, "module", "module {}")            /* a module in sys.modules */   \
    X(CLASS, "class", "class {}")               /* a class reachable from one */ \
    X(THREAD, "thread", "thread {}")            /* a thread's stack; label: id */ \
    X(EXTERNAL, "external", "{}")               /* references from native code */ \
    /* The interpreter's registries (heap_roots.c); label: which one. */        \
    X(AT_FORK, "at_fork", "os.register_at_fork({}=...) callbacks")              \
    X(ATEXIT, "atexit", "atexit.register() {}") /* callbacks, or one's args */  \
    X(SIGNAL, "signal", "signal handler of {}") /* label: SIGUSR1 */            \
    X(SYS_MODULES, "sys_modules", "sys.modules")                                \
    X(CODECS, "codecs", "{}")                   /* search functions, cache */   \
    X(WARNINGS, "warnings", "{}")               /* filters, __warningregistry__ */ \
    X(THREADING, "threading", "threading.{}")   /* label: _active, _dangling */ \
    X(AUDIT_HOOKS, "audit_hooks", "sys.addaudithook() hooks")                   \
    X(INTERNED, "interned", "the interpreter's interned strings")

#define MH_EDGE_KINDS(X)                                                        \
    X(GLOBAL, "global", "global {}")            /* a module's dict entry */     \
    X(CLASS_ATTR, "class_attr", "class attribute {}")                           \
    X(ATTR, "attr", "attribute {}")             /* __dict__, slot, inline value */ \
    X(CLOSURE, "closure", "closure variable {}")                                \
    X(LRU_CACHE, "lru_cache", "lru_cache of {}")                                \
    X(LOCAL, "local", "{}")                     /* label: "func() local x" */   \
    X(TRACEBACK, "traceback", "{}")             /* tb_next, tb_frame, __traceback__ */ \
    X(KEY, "key", "{}")                         /* label: "[key]" */            \
    X(DICT_KEY, "dict_key", "dict key")                                         \
    X(INDEX, "index", "{}")                     /* label: "[i]" */              \
    X(MEMBER, "member", "{}")                   /* set or deque member */       \
    X(REF, "ref", "{}")                         /* any other reference */       \
    X(ELIDED, "elided", "... {} ...")           /* middle of a very long path */

#define MH_ROOT_KIND_ID(id, name, text) MH_ROOT_##id,
#define MH_EDGE_KIND_ID(id, name, text) MH_EDGE_##id,
typedef enum { MH_ROOT_KINDS(MH_ROOT_KIND_ID) MH_ROOT_KIND_COUNT } mh_root_kind;
typedef enum { MH_EDGE_KINDS(MH_EDGE_KIND_ID) MH_EDGE_KIND_COUNT } mh_edge_kind;

#endif
