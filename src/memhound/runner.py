"""``memhound run``: run a program exactly as ``python script.py`` (or
``python -m module``) would, with memory tracing, and report at its exit.

The program gets its own ``__main__`` module, ``sys.argv`` and
``sys.path[0]``; its exit status, uncaught exceptions (with memhound's
frames removed from the traceback), non-daemon threads and Ctrl-C behave as
under the plain interpreter.  While it runs a recorder thread keeps a
timeline of current and peak traced memory, keeps a snapshot near the peak
and writes the ``--interval`` and ``--signal`` snapshots.  At exit the top
sites go to stderr (stdout belongs to the program) and the snapshot and HTML
files are written.

>>> from memhound import runner
>>> runner.run(["app.py", "--port", "8000"], top=5)       # doctest: +SKIP
0
"""
import builtins
import io
import os
import runpy          # imported here, not under tracing: run must not report its own imports
import signal
import sys
import threading
import time
import zipfile
from importlib.machinery import SourceFileLoader

from . import tracing
from .report.terminal import print_error

# Files whose frames sit at the root of every traceback recorded under
# `memhound run`, below whatever started memhound: this module first (the
# frames that run the program), then runpy's, which start a module (-m), a
# directory or a zip file after it.  Reports strip them (report._aggregate),
# as does the traceback of an uncaught exception.
LAUNCHER_FILES = (os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>")

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))


def run(program, module=None, *, frames=tracing.RUN_FRAMES, top=10, snapshot=None, html=None,
        interval=None, signal_number=None, sample_every=0):
    """Run ``program`` (``[script, *args]``, or the arguments of ``module``
    with ``module=``) under tracing; return its exit status.

    ``snapshot`` and ``html`` name files written at exit; ``interval``
    (seconds) also writes numbered snapshots while it runs when ``snapshot``
    is given; ``signal_number`` writes a snapshot whenever the process
    receives that signal.  ``sample_every`` (bytes) traces a sample of the
    allocations (``memhound.start``): the report then shows estimates.

    >>> run(["app.py"], snapshot="app.snap", html="app.html")     # doctest: +SKIP
    0
    """
    if module is None:
        script = program[0]
        if not os.path.exists(script):
            print(f"memhound: can't open file {os.path.abspath(script)!r}: "
                  f"[Errno 2] No such file or directory", file=sys.stderr)
            return 2
    if tracing.is_tracing():
        tracing.stop()
    recorder = _Recorder(interval, snapshot)
    if signal_number is not None:
        def on_signal(signum, frame):
            path = recorder.write_snapshot(f"signal {signal.Signals(signum).name}")
            if path in recorder.written:
                print(f"memhound: wrote {path}", file=sys.stderr)
        signal.signal(signal_number, on_signal)
    recorder.start()                    # before tracing: its setup is not traced
    tracing.start(frames, sample_every=sample_every)
    status, interrupted, keep_alive = _run_program(module, program)
    interrupted = _wait_for_threads() or interrupted
    # the program's globals (keep_alive) are still alive: this is "at exit"
    try:
        recorder.finish()
        if not tracing.is_tracing():
            print("memhound: the program stopped tracing; no report", file=sys.stderr)
            return status
        final = recorder.take()
        meta = recorder.metadata("exit")
        current, peak = tracing.get_traced_memory()
        tracing.stop()
        final = recorder.clean(final)
        if recorder.peak_snapshot is not None:
            recorder.peak_snapshot = recorder.clean(recorder.peak_snapshot)
        final.metadata.update(meta)
        title = " ".join(["memhound run"] + (["-m", module] if module else []) + program)
        # files first: a closed stderr (`| head`) must not lose them
        written, failed = [], False
        for path, write in ((snapshot, final.dump),
                            (html, lambda p: _write_html(final, snapshot or "exit", title, p))):
            if not path:
                continue
            try:
                write(path)
                written.append(path)
            except OSError as exc:
                failed = True
                print_error(f"cannot write {path}: {exc.strerror or exc}")
        try:
            _report(final, recorder, current, peak, top)
            for path in written:
                print(f"memhound: wrote {path}", file=sys.stderr)
        except BrokenPipeError:
            pass
        if failed and status == 0:
            status = 1
    finally:
        del keep_alive
    if interrupted:
        _reraise_sigint()
    return status


def _numbered(path, n):
    base, ext = os.path.splitext(path)
    return f"{base}.{n:04d}{ext}"


_RECORDERS = []        # the recorder of the running `memhound run`, while it records


class recording_paused:
    """Context manager: ``memhound run``'s recorder thread is parked inside.

    ``find_leaks()`` uses it: the recorder's timeline and snapshots are
    memhound's own objects, and their growth between two measured runs
    would look like a leak.  Nothing to do outside ``memhound run``.

    Example::

        >>> with recording_paused():
        ...     pass
    """

    def __enter__(self):
        self.paused = [r for r in list(_RECORDERS) if r.pause()]
        return self

    def __exit__(self, *exc):
        for recorder in self.paused:
            recorder.resume()
        return False


class _Recorder:
    """Everything ``run`` records while the program runs.

    A daemon thread polls the traced memory: it keeps the timeline (time,
    current, peak), takes a snapshot each time a new peak is 10% above the
    last one (so the peak's sites are known within that margin at a cost of
    a few snapshots), and writes the --interval snapshots.
    """

    POLL = 0.01
    MAX_POINTS = 20000
    # Snapshots hold the GIL: the next one waits SNAPSHOT_SHARE times as long
    # as the last one took, so recording costs the program at most ~10%.
    SNAPSHOT_SHARE = 10

    def __init__(self, interval, snapshot_path):
        self.interval = interval
        self.snapshot_path = snapshot_path
        self.t0 = time.monotonic()
        self.timeline = []
        self.peak_snapshot = None
        self.peak_snapshot_size = 0
        self.written = []
        self.sequence = 0
        self.snapshot_cost = 0.0
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.go = threading.Event()       # cleared: park (see paused())
        self.go.set()
        self.parked = threading.Event()
        self.thread = None
        self.excluded = [tracing.Filter(False, os.path.join(_OWN_DIR, "*"))]

    def start(self):
        self._point(0.0, 0, 0)          # tracing starts right after this
        self.thread = threading.Thread(target=self._loop, name="memhound-recorder", daemon=True)
        self.thread.start()
        _RECORDERS.append(self)

    def pause(self, timeout=10.0):
        """Park the thread (it allocates nothing until resume()); True once parked."""
        if self.thread is None or threading.current_thread() is self.thread:
            return False
        self.go.clear()
        return self.parked.wait(timeout)

    def resume(self):
        self.go.set()

    def _loop(self):
        with tracing.pause_tracing():
            self._poll()

    def _poll(self):
        step = self.interval or 0.1
        next_point = next_snapshot = 0.0
        while not self.stop_event.wait(self.POLL):
            if not self.go.is_set():
                self.parked.set()
                self.go.wait()
                self.parked.clear()
                continue
            current, peak = tracing.get_traced_memory()
            now = time.monotonic() - self.t0
            if now >= next_point:
                self._point(now, current, peak)
                next_point = now + step
                if self.interval and self.snapshot_path and now >= next_snapshot:
                    self.write_snapshot("interval")
                    next_snapshot = now + max(step, self.SNAPSHOT_SHARE * self.snapshot_cost)
            if current > self.peak_snapshot_size * 1.1 + 65536 and now >= next_snapshot:
                snap = self.take()
                next_snapshot = now + self.SNAPSHOT_SHARE * self.snapshot_cost
                if snap is not None:
                    with self.lock:
                        self.peak_snapshot = snap
                        self.peak_snapshot_size = current

    def _point(self, now, current, peak):
        self.timeline.append([round(now, 4), current, peak])
        if len(self.timeline) > self.MAX_POINTS:     # keep it bounded: halve resolution
            self.timeline[:] = self.timeline[::2]

    def take(self):
        """Snapshot of the program's memory, or None once the program has
        stopped tracing (memhound's own traces are removed by ``clean``)."""
        t = time.perf_counter()
        try:
            snap = tracing.take_snapshot()
        except RuntimeError:            # tracing stopped by the program
            return None
        self.snapshot_cost = time.perf_counter() - t
        return snap

    def clean(self, snap):
        """The snapshot without memhound's own traces."""
        return snap.filter_traces(self.excluded)

    def write_snapshot(self, kind):
        """Write a snapshot FILE.NNNN; return its path (None when tracing
        has stopped)."""
        with self.lock:
            self.sequence += 1
            path = _numbered(self.snapshot_path or f"memhound-{os.getpid()}.snapshot", self.sequence)
        meta = self.metadata(kind)
        snap = self.take()
        if snap is None:
            return None
        snap.metadata.update(meta)
        try:
            snap.dump(path)
        except OSError as exc:
            print(f"memhound: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return path
        self.written.append(path)
        return path

    def metadata(self, kind):
        current, peak = tracing.get_traced_memory()
        return {"memhound": {"kind": kind, "time": round(time.monotonic() - self.t0, 4),
                             "wall_time": time.time(), "traced": [current, peak],
                             "argv": list(sys.argv), "pid": os.getpid(),
                             "timeline": [list(p) for p in self.timeline]}}

    def finish(self):
        self.stop_event.set()
        self.go.set()
        if self in _RECORDERS:
            _RECORDERS.remove(self)
        if self.thread is not None:
            self.thread.join()
        current, peak = tracing.get_traced_memory()
        self._point(time.monotonic() - self.t0, current, peak)


def _write_html(final, name, title, path):
    from .report import html
    html.write_html(html.report_from_snapshots([(name, final)], title=title), path)


def _report(final, recorder, current, peak, top):
    from .report import _aggregate as agg
    from .report.terminal import format_count, format_size, print_table
    size, count = agg.totals(final)
    rows = agg.site_rows(final, "lineno", False, top)
    _flush(sys.stdout)
    err = sys.stderr
    rate = getattr(final, "sample_every", 0)
    print_table(rows, total=size, stream=err, sample_every=rate,
                title=f"memhound: live memory at exit: {format_size(size)} in "
                      f"{format_count(count)} blocks; top {len(rows)} lines")
    peak_snap, peak_size = recorder.peak_snapshot, recorder.peak_snapshot_size
    if peak_snap is None or size >= peak_size:
        peak_snap, peak_size = final, current
    psize, _ = agg.totals(peak_snap)
    rows = agg.site_rows(peak_snap, "lineno", False, top)
    print_table(rows, total=psize, stream=err, sample_every=rate,
                title=f"memhound: at the peak: {format_size(peak)} traced (sites from a snapshot "
                      f"taken at {format_size(peak_size)}); top {len(rows)} lines")


def _flush(stream):
    try:
        stream.flush()
    except (OSError, ValueError, AttributeError):
        pass


def _run_program(module, program):
    """Run the program like the interpreter would; return (exit status,
    interrupted by Ctrl-C, the program's __main__ globals)."""
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    saved_main = sys.modules.get("__main__")
    main_module = type(sys)("__main__")
    main_module.__dict__["__builtins__"] = builtins
    sys.modules["__main__"] = main_module
    interrupted = False
    try:
        if module is not None:
            sys.argv = [module] + program
            _set_path0(os.getcwd())
            runpy._run_module_as_main(module, alter_argv=True)
        else:
            _run_script(main_module, program)
        status = 0
    except SystemExit as exc:
        status = _exit_status(exc)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        tb = _program_traceback(exc.__traceback__, module is None)
        exc.__traceback__ = tb          # the default hook prints this one
        _flush(sys.stdout)
        sys.excepthook(type(exc), exc, tb)
        status = 1
    finally:
        if saved_main is not None:
            sys.modules["__main__"] = saved_main
        if saved_path0 is not None and sys.path:
            sys.path[0] = saved_path0
        sys.argv = saved_argv
    return status, interrupted, main_module.__dict__


def _wait_for_threads():
    """Join the program's non-daemon threads, as the interpreter does at exit
    before atexit handlers run, so that "at exit" includes their work.
    Returns True when Ctrl-C interrupted the wait."""
    try:
        threading._shutdown()
    except KeyboardInterrupt:
        return True
    return False


def _set_path0(path):
    if sys.path:
        sys.path[0] = path
    else:
        sys.path.insert(0, path)


def _run_script(main_module, program):
    script = program[0]
    sys.argv = list(program)
    path = script if os.path.isabs(script) else os.path.join(os.getcwd(), script)
    if os.path.isdir(path) or not path.endswith((".py", ".pyw")) and _is_zip(path):
        _set_path0(os.path.dirname(os.path.realpath(path)))
        runpy.run_path(script, run_name="__main__")
        return
    with io.open_code(path) as fp:
        source = fp.read()
    g = main_module.__dict__
    g.update(__file__=path, __cached__=None, __package__=None, __spec__=None,
             __loader__=SourceFileLoader("__main__", path))
    _set_path0(os.path.dirname(os.path.realpath(path)))
    code = compile(source, path, "exec", dont_inherit=True)
    exec(code, g)


def _is_zip(path):
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _program_traceback(tb, script_mode):
    """Drop memhound's own frames (and, for a script, runpy's) from the root
    of a traceback, so it reads exactly as under plain ``python``."""
    launcher = set(LAUNCHER_FILES if script_mode else LAUNCHER_FILES[:1])
    while tb is not None and tb.tb_frame.f_code.co_filename in launcher:
        tb = tb.tb_next
    return tb


def _exit_status(exc):
    """Exit status for SystemExit, exactly as the interpreter computes it."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        return code & 0xFF
    _flush(sys.stdout)
    print(code, file=sys.stderr)
    return 1


def _reraise_sigint():
    # Like the interpreter after an uncaught KeyboardInterrupt: die of SIGINT
    # so the parent shell sees the right status.
    _flush(sys.stdout)
    _flush(sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
