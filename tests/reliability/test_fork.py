"""fork() and multiprocessing while memhound traces.

The RAW lock is held across fork() (pthread_atfork), so a child forked while
other threads allocate inherits consistent tables and keeps tracing.  Every
scenario runs in a child interpreter with a timeout: a deadlock after fork
fails the test instead of hanging the suite.
"""
import pytest

from conftest import run_child

PRELUDE = r'''
import ctypes, gc, os, sys, threading, time, warnings, zlib
from memhound import _core
warnings.simplefilter("ignore", DeprecationWarning)   # 3.12+: fork() with threads
DATA = os.urandom(1 << 16)
nogil = ctypes.CDLL(None)
nogil.PyMem_RawMalloc.restype = ctypes.c_void_p
nogil.PyMem_RawMalloc.argtypes = [ctypes.c_size_t]
nogil.PyMem_RawFree.restype = None
nogil.PyMem_RawFree.argtypes = [ctypes.c_void_p]

def churn(stop):
    held = []
    while not stop.is_set():
        held.append([{"k": i} for i in range(10)])
        held.append(zlib.compress(DATA[:8192], 1))       # RAW without the GIL
        nogil.PyMem_RawFree(nogil.PyMem_RawMalloc(256))  # RAW without the GIL
        if len(held) > 32:
            held.clear()

def start_churn(n=4):
    stop = threading.Event()
    threads = [threading.Thread(target=churn, args=(stop,), daemon=True) for _ in range(n)]
    for t in threads:
        t.start()
    return stop, threads

def child_checks():
    """In a forked child: tracing goes on with consistent accounting."""
    assert _core.is_tracing()
    cur0, _ = _core.get_traced_memory()
    obj = bytes(10_000)
    tb = _core._get_object_traceback(obj)
    assert tb is not None
    cur1, peak = _core.get_traced_memory()
    assert cur1 - cur0 >= 10_000 and peak >= cur1
    snap = _core.take_snapshot()
    assert len(snap) > 0
    p = nogil.PyMem_RawMalloc(1000)      # the inherited RAW lock is usable
    nogil.PyMem_RawFree(p)
    del obj
    cur2, _ = _core.get_traced_memory()
    assert cur2 < cur1
    _core.stop()
    assert _core.get_traced_memory() == (0, 0)
    _core.start(3)
    assert _core._get_object_traceback(bytes(3000)) is not None
    _core.stop()
'''


def test_fork_while_threads_allocate(tmp_path):
    out = run_child(r'''
        _core.start(10)
        stop, threads = start_churn()
        ok = 0
        for i in range(20):
            time.sleep(0.01)
            pid = os.fork()
            if pid == 0:
                code = 0
                try:
                    child_checks()
                except BaseException:
                    import traceback; traceback.print_exc()
                    code = 1
                os._exit(code)
            deadline = time.monotonic() + 30
            while True:
                done, status = os.waitpid(pid, os.WNOHANG)
                if done:
                    break
                if time.monotonic() > deadline:
                    os.kill(pid, 9)
                    raise AssertionError("forked child hung")
                time.sleep(0.01)
            assert os.waitstatus_to_exitcode(status) == 0, status
            ok += 1
        stop.set()
        for t in threads:
            t.join()
        assert _core.is_tracing()
        _core.stop()
        print(ok)
    ''', prelude=PRELUDE, script_dir=tmp_path).stdout
    assert out.strip() == "20"


@pytest.mark.parametrize("method", ["fork", "spawn", "forkserver"])
def test_multiprocessing(method, tmp_path):
    out = run_child(r'''
        import multiprocessing as mp

        def job(n):
            from memhound import _core
            if not _core.is_tracing():      # spawn/forkserver: a fresh interpreter
                _core.start(5)
            keep = [bytes(1000 + i) for i in range(n)]
            assert _core._get_object_traceback(keep[-1]) is not None
            cur, peak = _core.get_traced_memory()
            assert cur >= sum(len(k) for k in keep)
            return len(_core.take_snapshot()) > 0

        if __name__ == "__main__":
            _core.start(5)
            stop, threads = start_churn(2)
            ctx = mp.get_context(%r)
            with ctx.Pool(2) as pool:
                res = pool.map_async(job, [50] * 8).get(timeout=60)
            stop.set()
            for t in threads:
                t.join()
            assert all(res), res
            assert _core.is_tracing()
            _core.stop()
            print(len(res))
    ''' % method, prelude=PRELUDE, script_dir=tmp_path).stdout  # a file: spawn re-imports __main__
    assert out.strip() == "8"
