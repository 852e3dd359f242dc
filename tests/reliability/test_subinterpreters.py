"""Tracing while other interpreters run.

The hooks are process-wide, but memhound's tables belong to the interpreter
that called start(): allocations of other interpreters (own-GIL ones running
concurrently in threads, legacy ones sharing the GIL) must neither crash the
tracer nor leave their code objects in its tracebacks -- stop() used to
release those after the interpreter was gone and crash.  Each scenario runs
in a child process so that a crash fails the test with its output shown.
"""
import pytest

from conftest import run_child

PRELUDE = r'''
import gc, sys, threading, time
import memhound
from memhound import _core

SUB_FILE = "subinterp_only_code.py"
# Runs only in other interpreters: its frames must never appear in a
# snapshot.  `big` stays alive until the interpreter is destroyed.
SUB_SRC = """
def sub_only_alloc(n):
    keep = []
    for i in range(n):
        keep.append((i, str(i) * 3, [i] * 4, {"k": i}, float(i)))
        if len(keep) > 2000:
            keep.clear()
    return keep
sub_only_alloc(N_ALLOC)
big = [bytearray(1000) for _ in range(N_BIG)]
"""

def sub_code(n_alloc, n_big):
    src = SUB_SRC.replace("N_ALLOC", str(n_alloc)).replace("N_BIG", str(n_big))
    return "exec(compile(%r, %r, 'exec'))" % (src, SUB_FILE)

def interp_api():
    """(create(own_gil), run(id, src), destroy(id)) with what this Python has."""
    try:
        import _interpreters as X                   # 3.13+
    except ImportError:
        X = None
    if X is not None:
        def create(own_gil):
            return X.create("isolated" if own_gil else "legacy")
        def run(i, src):
            err = X.run_string(i, src)
            if err is not None:
                raise RuntimeError(err.formatted)
        return create, run, X.destroy
    try:
        import _xxsubinterpreters as X              # 3.11, 3.12 (3.11: one GIL)
    except ImportError:
        return None
    return (lambda own_gil: X.create(isolated=own_gil)), X.run_string, X.destroy

API = interp_api()
if API is None:
    print("NO-INTERPRETERS")
    sys.exit(0)
create, run, destroy = API

def marker_line(tag):
    with open(__file__) as f:
        for n, line in enumerate(f, 1):
            if line.rstrip().endswith("# " + tag):
                return n
    raise LookupError(tag)

def check_no_sub_frames(snap):
    for tr in snap.traces:
        for fr in tr.traceback:
            assert fr.filename != SUB_FILE, tr.traceback.format()

def count_at(snap, lineno):
    return sum(s.count for s in snap.statistics("lineno")
               if s.traceback[0].filename == __file__ and s.traceback[0].lineno == lineno)
'''


def run_scenario(tmp_path, body, timeout=300):
    """Run ``PRELUDE + body`` in a child; skip if this Python cannot create interpreters."""
    out = run_child(body, prelude=PRELUDE, script_dir=tmp_path,
                    python_options=("-X", "faulthandler"), timeout=timeout).stdout
    if "NO-INTERPRETERS" in out:
        pytest.skip("this Python has no low-level interpreter module")
    return out


def test_concurrent_interpreters_then_stop_restart(tmp_path):
    """Own-GIL interpreters allocate in threads while the main interpreter
    does; then they are destroyed and memhound stops, restarts, snapshots."""
    out = run_scenario(tmp_path, r'''
    memhound.start(25)
    ids = [create(True) for _ in range(3)] + [create(False)]
    errors = []

    def worker(i):
        try:
            for _ in range(3):
                run(i, sub_code(30000, 2000))
        except BaseException as e:
            errors.append(repr(e))

    def main_alloc(threads):
        keep = []
        while any(t.is_alive() for t in threads) or len(keep) < 50000:
            keep.append([len(keep)])  # MAIN-ALLOC
        return keep

    threads = [threading.Thread(target=worker, args=(i,)) for i in ids]
    for t in threads:
        t.start()
    keep = main_alloc(threads)
    for t in threads:
        t.join()
    assert not errors, errors
    snap = memhound.take_snapshot()
    check_no_sub_frames(snap)
    # Each appended one-item list is two blocks (object and item array).
    n = count_at(snap, marker_line("MAIN-ALLOC"))
    assert n >= 2 * len(keep), (n, len(keep))
    # The newest frame is the allocating line.
    tb = memhound.get_object_traceback(keep[-1])
    assert tb is not None and tb[-1].lineno == marker_line("MAIN-ALLOC"), tb
    for i in ids:
        destroy(i)
    del keep, snap, tb
    memhound.stop()
    print("STOPPED")
    memhound.start(5)
    again = [str(i) * 2 for i in range(1000)]  # RESTART-ALLOC
    snap = memhound.take_snapshot()
    check_no_sub_frames(snap)
    assert count_at(snap, marker_line("RESTART-ALLOC")) >= 1000
    memhound.stop()
    print("DONE")
    ''')
    assert "STOPPED" in out and "DONE" in out


@pytest.mark.parametrize("own_gil", [True, False], ids=["own-gil", "legacy"])
def test_other_interpreter_memory_is_not_traced(tmp_path, own_gil):
    """What another interpreter allocates and keeps is left out on purpose
    (about 22 MB here)."""
    out = run_scenario(tmp_path, r'''
    own_gil = %r
    memhound.start(10)
    i = create(own_gil)
    before = memhound.get_traced_memory()[0]
    run(i, sub_code(1000, 20000))
    after = memhound.get_traced_memory()[0]
    assert after - before < 2_000_000, (before, after)
    snap = memhound.take_snapshot()
    check_no_sub_frames(snap)
    destroy(i)
    memhound.stop()
    print("DONE", after - before)
    ''' % own_gil)
    assert "DONE" in out


def test_legacy_subinterpreter_via_testcapi(tmp_path):
    """_testcapi.run_in_subinterp: a legacy interpreter created and destroyed
    under the traced GIL, with free lists and obmalloc shared on 3.11."""
    out = run_scenario(tmp_path, r'''
    try:
        import _testcapi
    except ImportError:
        print("NO-INTERPRETERS")
        sys.exit(0)
    memhound.start(25)
    keep = []
    for _ in range(5):
        keep.append([(i,) for i in range(2000)])  # LEGACY-MAIN
        assert _testcapi.run_in_subinterp(sub_code(5000, 100)) == 0
    snap = memhound.take_snapshot()
    check_no_sub_frames(snap)
    assert count_at(snap, marker_line("LEGACY-MAIN")) >= 5 * 2000
    memhound.stop()
    memhound.start(25)
    memhound.stop()
    print("DONE")
    ''')
    assert "DONE" in out


def test_stdlib_interpreters_and_pool(tmp_path):
    """3.14+: concurrent.interpreters and InterpreterPoolExecutor."""
    out = run_scenario(tmp_path, r'''
    try:
        from concurrent import interpreters
        from concurrent.futures import InterpreterPoolExecutor
    except ImportError:
        print("NO-STDLIB-INTERPRETERS")
        sys.exit(0)
    memhound.start(25)
    interps = [interpreters.create() for _ in range(2)]
    threads = [threading.Thread(target=it.exec, args=(sub_code(20000, 1000),))
               for it in interps]
    for t in threads:
        t.start()
    with InterpreterPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(sorted, [range(20000, 0, -1)] * 8))
    for t in threads:
        t.join()
    assert all(r[0] == 1 for r in results)
    keep = [[i] for i in range(10000)]  # POOL-MAIN
    snap = memhound.take_snapshot()
    check_no_sub_frames(snap)
    assert count_at(snap, marker_line("POOL-MAIN")) >= 10000
    for it in interps:
        it.close()
    memhound.stop()
    memhound.start(5)
    memhound.stop()
    print("DONE")
    ''')
    if "NO-STDLIB-INTERPRETERS" in out:
        pytest.skip("concurrent.interpreters is new in 3.14")
    assert "DONE" in out
