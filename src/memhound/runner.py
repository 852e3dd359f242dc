"""``memhound run``: run a program exactly as ``python script.py`` (or
``python -m module``) would, with memory tracing, and report at its exit.

The program gets its own ``__main__`` module, ``sys.argv`` and
``sys.path[0]``; its exit status, uncaught exceptions (with memhound's
frames removed from the traceback), python's own errors (no such module, no
``__main__`` in a directory, a syntax error: then no report, the program
never ran), non-daemon threads and Ctrl-C behave as under the plain
interpreter.  While it runs a recorder thread keeps a timeline of current
and peak traced memory, keeps a snapshot near the peak and writes the
``--interval`` and ``--signal`` snapshots.  At exit the top sites go to
stderr (stdout belongs to the program) and the snapshot and HTML files are
written.  Only the program's code runs traced: memhound's own work on the
main thread, the recorder thread and the signal handler run inside
``pause_tracing()``, so nothing of memhound's is in a snapshot or the peak.

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

from . import _core, tracing
from .report.terminal import print_error

# Files whose frames sit at the root of every traceback recorded under
# `memhound run`, below whatever started memhound: this module first (the
# frames that run the program), then runpy's, which start a module (-m), a
# directory or a zip file after it.  Reports strip them (report._aggregate);
# the traceback of an uncaught exception loses this module's frames only
# (python shows runpy's too).
LAUNCHER_FILES = (os.path.abspath(__file__), os.path.abspath(runpy.__file__), "<frozen runpy>")

_OWN_DIR = os.path.dirname(os.path.abspath(__file__))

# Frames stored per traceback by `memhound run`: a web framework puts 30-50
# frames between the server loop and a request handler, and the flame graph
# needs the handler and its callers (benchmarks/README.md has the cost).
DEFAULT_FRAMES = 64


def run(program, module=None, *, frames=DEFAULT_FRAMES, top=10, snapshot=None, html=None,
        interval=None, signal_number=None, pprof=None, watch=None, watch_json=None,
        watch_html=None, sample_every=0):
    """Run ``program`` (``[script, *args]``, or the arguments of ``module``
    with ``module=``) under tracing; return its exit status.

    ``snapshot`` and ``html`` name files written at exit; ``interval``
    (seconds) also writes numbered snapshots while it runs when ``snapshot``
    is given; ``signal_number`` writes a snapshot whenever the process
    receives that signal.  ``pprof`` names a gzipped pprof profile written
    at exit and, with ``interval``, replaced atomically every interval.
    ``watch`` (seconds) runs a growth watch (``memhound.watch``) whose report
    goes to stderr at exit, and to ``watch_json`` / ``watch_html`` if given.
    ``sample_every`` (bytes) traces a sample of the allocations
    (``memhound.start``): the reports then show estimates.

    >>> run(["app.py"], snapshot="app.snap", html="app.html")     # doctest: +SKIP
    0
    """
    if tracing.is_tracing():
        tracing.stop()
    # Everything memhound does on this thread is untraced; only the
    # program's own code runs with tracing resumed (_core.call_traced).
    with tracing.pause_tracing():
        return _run(program, module, frames, top, snapshot, html, interval, signal_number,
                    pprof, watch, watch_json, watch_html, sample_every)


def _run(program, module, frames, top, snapshot, html, interval, signal_number, pprof, watch,
         watch_json, watch_html, sample_every):
    if module is None:
        code = _load_script(program[0])
        if isinstance(code, int):
            return code                 # could not be opened or compiled: never ran
    else:
        code = None
    recorder = _Recorder(interval, snapshot)
    recorder.pprof_path = pprof
    if signal_number is not None:
        def on_signal(signum, frame):
            with tracing.pause_tracing():
                path = recorder.write_snapshot(f"signal {signal.Signals(signum).name}")
                if path in recorder.written:
                    _say(f"memhound: wrote {path}")
        signal.signal(signal_number, on_signal)
    recorder.start()                    # parked in pause_tracing before tracing starts
    try:
        tracing.start(frames, sample_every=sample_every)
    except ValueError as exc:           # a bad MEMHOUND_* variable: the program never ran
        recorder.finish()
        _say(f"memhound: {exc}")
        return 2
    watcher = _start_watch(watch)
    status, ran, interrupted, keep_alive = _run_program(module, program, code)
    interrupted = _wait_for_threads() or interrupted
    # the program's globals (keep_alive) are still alive: this is "at exit"
    try:
        recorder.finish()
        if watcher is not None:
            watcher.stop()
        if not ran:                     # runpy found nothing to run: python's error only
            tracing.stop()
            return status
        if not tracing.is_tracing():
            _say("memhound: the program stopped tracing; no report")
            return status
        final = recorder.take()
        meta = recorder.metadata("exit")
        current, peak = tracing.get_traced_memory()
        tracing.stop()
        final = recorder.clean(final)
        if recorder.peak_snapshot is not None:
            recorder.peak_snapshot = recorder.clean(recorder.peak_snapshot)
        final.metadata.update(meta)
        # the page heading reads "memhound run app.py": no second "memhound"
        title = " ".join(["run"] + (["-m", module] if module else []) + program)
        # files first: a closed stderr (`| head`, fd 2 closed) must not lose them
        written, failed = [], False
        for path, write in ((snapshot, final.dump),
                            (html, lambda p: _write_html(final, snapshot or "exit", title, p)),
                            (pprof, lambda p: _write_pprof(final, p)),
                            (watcher and watch_json, lambda p: watcher.write_json(p)),
                            (watcher and watch_html, lambda p: watcher.write_html(p, title))):
            if not path:
                continue
            try:
                write(path)
                written.append(path)
            except OSError as exc:
                failed = True
                _say(None, f"cannot write {path}: {exc.strerror or exc}")
        try:
            if _stderr_usable():
                _report(final, recorder, current, peak, top)
                if watcher is not None:
                    _say(watcher.report(top))
                for path in written:
                    _say(f"memhound: wrote {path}")
        except (OSError, ValueError):   # stderr closed by the reader
            pass
        if failed and status == 0:
            status = 1
    finally:
        del keep_alive
    if interrupted:
        _reraise_sigint()
    return status


def _stderr_usable():
    """False when the program closed stderr or its file descriptor: what
    memhound wrote would stay in the buffer, and the interpreter's final
    flush would fail (exit status 120) where python exits with 0."""
    try:
        if sys.stderr is None or sys.stderr.closed:
            return False
        os.fstat(sys.stderr.fileno())
        return True
    except (OSError, ValueError, AttributeError):
        return False


def _say(line, error=None):
    """One line of memhound's own on stderr; nothing if the program closed
    or replaced stderr (python exits as usual then, and so does run)."""
    try:
        if not _stderr_usable():
            return
        if error is not None:
            print_error(error)
        else:
            print(line, file=sys.stderr)
    except (OSError, ValueError):
        pass


def _load_script(script):
    """The compiled code of a script, None for a directory or zip file (run
    by runpy like python does), or the exit status after python's message
    when it cannot be opened or compiled."""
    path = _script_path(script)
    if os.path.isdir(path) or _is_zip(path):
        return None
    try:
        with io.open_code(path) as fp:
            source = fp.read()
    except OSError as exc:
        _say(f"memhound: can't open file {path!r}: [Errno {exc.errno}] {exc.strerror}")
        return 2
    try:
        return compile(source, path, "exec", dont_inherit=True)
    except (SyntaxError, ValueError) as exc:
        exc.__traceback__ = None        # python shows no frame: the program never started
        _flush(sys.stdout)
        sys.excepthook(type(exc), exc, None)
        return 1


def _start_watch(interval):
    if interval is None:
        return None
    from .watch import Watch
    with tracing.pause_tracing():
        return Watch(interval).start()


def _write_pprof(snap, path):
    from .report import pprof
    pprof.write(snap, path)


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
        self.pprof_path = None
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
        self.ready = threading.Event()
        self.thread = None
        self.excluded = [tracing.Filter(False, os.path.join(_OWN_DIR, "*"))]

    def start(self):
        self._point(0.0, 0, 0)          # tracing starts right after this
        self.thread = threading.Thread(target=self._loop, name="memhound-recorder", daemon=True)
        self.thread.start()
        # no allocation of the thread's own start-up may be traced
        self.ready.wait()
        _RECORDERS.append(self)

    def pause(self, timeout=10.0):
        """Park the thread (it allocates nothing until resume()); True once parked."""
        if self.thread is None or threading.current_thread() is self.thread:
            return False
        self.go.clear()
        if self.parked.wait(timeout):
            return True
        self.go.set()           # not paused: the caller will not resume() it
        return False

    def resume(self):
        self.go.set()

    def _loop(self):
        with tracing.pause_tracing():
            self.ready.set()
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
                if self.interval and (self.snapshot_path or self.pprof_path) \
                        and now >= next_snapshot:
                    self._write_interval()
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
        snap = self.clean(snap)
        snap.metadata.update(meta)
        try:
            snap.dump(path)
        except OSError as exc:
            _say(f"memhound: cannot write {path}: {exc.strerror or exc}")
            return path
        self.written.append(path)
        return path

    def _write_interval(self):
        """The --interval files: a numbered snapshot, and the pprof file
        replaced in place."""
        if self.snapshot_path:
            self.write_snapshot("interval")
        if not self.pprof_path:
            return
        snap = self.take()
        if snap is None:
            return
        snap.metadata.update(self.metadata("interval"))
        try:
            _write_pprof(self.clean(snap), self.pprof_path)
        except OSError as exc:
            print(f"memhound: cannot write {self.pprof_path}: {exc.strerror or exc}",
                  file=sys.stderr)
            self.pprof_path = None         # said once; tried again at exit
            return
        if self.pprof_path not in self.written:
            self.written.append(self.pprof_path)

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
    rate = final.sample_every
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


def _run_program(module, program, code):
    """Run the program like the interpreter would; return (exit status,
    whether it ran, interrupted by Ctrl-C, the program's __main__ globals)."""
    saved_argv, saved_path0 = sys.argv, sys.path[0] if sys.path else None
    saved_main = sys.modules.get("__main__")
    main_module = type(sys)("__main__")
    main_module.__dict__["__builtins__"] = builtins
    if sys.version_info < (3, 14):
        # the interpreter's own __main__ starts with an empty __annotations__
        # until PEP 649 (3.14) makes annotations lazy
        main_module.__dict__["__annotations__"] = {}
    sys.modules["__main__"] = main_module
    interrupted, ran = False, True
    try:
        if module is not None:
            sys.argv = [module] + program
            _set_path0(os.getcwd())
            _core.call_traced(runpy._run_module_as_main, module, True)
        elif code is None:
            # a directory or zip file: its __main__ module, exactly as python
            # runs it (sys.path[0] is the path itself, runpy's frames stay in
            # tracebacks)
            sys.argv = list(program)
            _set_path0(_script_path(program[0]))
            _core.call_traced(runpy._run_module_as_main, "__main__", False)
        else:
            _run_script(main_module, program, code)
        status = 0
    except SystemExit as exc:
        ran = not _runpy_found_nothing(exc)
        status = _exit_status(exc)
    except BaseException as exc:
        interrupted = isinstance(exc, KeyboardInterrupt)
        tb = _program_traceback(exc.__traceback__)
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
    return status, ran, interrupted, main_module.__dict__


def _runpy_found_nothing(exc):
    """True for the SystemExit runpy raises when there is no module (or no
    __main__) to run: python prints that one line, and no program ran."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    return (isinstance(exc.__context__, runpy._Error) and tb is not None
            and tb.tb_frame.f_code is runpy._run_module_as_main.__code__)


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


def _script_path(script):
    # python's __file__ and sys.path[0] use the path as given, made absolute
    # without normalising it
    return script if os.path.isabs(script) else os.path.join(os.getcwd(), script)


def _run_script(main_module, program, code):
    sys.argv = list(program)
    path = code.co_filename
    g = main_module.__dict__
    g.update(__file__=path, __package__=None, __spec__=None,
             __loader__=SourceFileLoader("__main__", path))
    if sys.version_info < (3, 15):      # 3.15 no longer sets __cached__ on __main__
        g["__cached__"] = None
    _set_path0(os.path.dirname(os.path.realpath(path)))
    _core.call_traced(exec, code, g)


def _is_zip(path):
    try:
        return zipfile.is_zipfile(path)
    except OSError:
        return False


def _program_traceback(tb):
    """Drop memhound's own frames from the root of a traceback, so it reads
    exactly as under plain ``python`` (runpy's stay: python shows them too
    for -m, a directory or a zip file)."""
    while tb is not None and tb.tb_frame.f_code.co_filename == LAUNCHER_FILES[0]:
        tb = tb.tb_next
    return tb


def _exit_status(exc):
    """Exit status for SystemExit, exactly as the interpreter computes it."""
    code = exc.code
    if code is None:
        return 0
    if isinstance(code, int):
        # the interpreter reads it as a C long: -1 (255) when it does not fit
        return code & 0xFF if -sys.maxsize - 1 <= code <= sys.maxsize else 255
    _flush(sys.stdout)
    _say(code)
    return 1


def _reraise_sigint():
    # Like the interpreter after an uncaught KeyboardInterrupt: die of SIGINT
    # so the parent shell sees the right status.
    _flush(sys.stdout)
    _flush(sys.stderr)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
