"""memhound command line: run a program under tracing, read snapshots, make reports.

    memhound run [options] script.py [args...]     profile a program (or: run -m module)
    memhound top FILE                              top allocation sites of a snapshot
    memhound compare OLD NEW                       what grew between two snapshots
    memhound html FILE... -o report.html           self-contained HTML report
    memhound export FILE --format speedscope -o out.json
    memhound leaks TARGET                          repeated runs, leak verdict, who holds what

``python -m memhound`` is the same program.  Every command writes its tables
to stdout, except ``run``, whose stdout belongs to the program: its report goes
to stderr.  Errors are one line on stderr and a non-zero exit status.
"""
import argparse
import builtins
import io
import marshal
import os
import runpy          # imported here, not under tracing: run must not report its own imports
import signal
import sys
import threading
import time
import zipfile
from importlib.machinery import SourceFileLoader

from . import __version__
from .report import _source
from .report._source import SnapshotError

_EXAMPLES = {
    "run": """examples:
  memhound run app.py --port 8000          run app.py with its own arguments
  memhound run --top 20 -m http.server     run a module like python -m
  memhound run --snapshot app.snap --html app.html --interval 1 app.py
  memhound run --signal USR2 --snapshot srv.snap server.py   (kill -USR2 PID writes srv.NNNN.snap)""",
    "top": """examples:
  memhound top app.snap                    10 biggest lines of live memory
  memhound top app.snap --group-by traceback --limit 5
  memhound top app.snap --group-by filename --include '*/myapp/*'
  memhound top app.snap --cumulative --exclude '<frozen *'""",
    "compare": """examples:
  memhound compare before.snap after.snap  lines whose memory changed most
  memhound compare a.snap b.snap --group-by traceback --limit 3""",
    "html": """examples:
  memhound html app.snap -o report.html    flame graph, top sites (and timeline if recorded)
  memhound html app.0*.snap app.snap -o report.html   timeline across snapshots
  memhound html leaks.json -o leaks.html   leak report written by memhound leaks --json""",
    "export": """examples:
  memhound export app.snap --format speedscope -o app.speedscope.json
  memhound export app.snap --format collapsed -o app.folded   (flamegraph.pl / inferno input)""",
    "leaks": """examples:
  memhound leaks app/cache.py:handle_request
  memhound leaks mypkg.worker:step --runs 10 --json leaks.json
  memhound leaks app/cache.py:handle_request --html leaks.html""",
}


class _UsageError(Exception):
    """Bad command line: printed as one line, exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not value > 0:
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _add_site_options(p):
    p.add_argument("--group-by", choices=("lineno", "filename", "traceback"), default="lineno",
                   help="group traces by source line, file or whole traceback (default: lineno)")
    p.add_argument("--cumulative", action="store_true",
                   help="count memory of every frame of a traceback, not only the most recent")
    p.add_argument("--limit", type=_positive_int, default=10, metavar="N",
                   help="show the N biggest entries (default: 10)")
    p.add_argument("--include", action="append", default=[], metavar="GLOB",
                   help="keep only traces whose most recent frame's file matches GLOB (repeatable)")
    p.add_argument("--exclude", action="append", default=[], metavar="GLOB",
                   help="drop traces whose most recent frame's file matches GLOB (repeatable)")


def _build_parser():
    parser = _Parser(
        prog="memhound",
        description="Find what uses and leaks memory in a Python program.",
        epilog="run 'memhound COMMAND --help' for the options and examples of a command",
        formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--version", action="version", version=_version_text())
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    fmt = argparse.RawDescriptionHelpFormatter

    p = sub.add_parser("run", help="run a script or module under tracing and report its memory",
                       usage="memhound run [options] script.py [args...]\n"
                             "       memhound run [options] -m module [args...]",
                       description="Run a program exactly like 'python script.py' (or 'python -m "
                                   "module') with memory tracing. At exit, print the top "
                                   "allocation sites of live memory and of the peak to stderr.",
                       epilog=_EXAMPLES["run"], formatter_class=fmt)
    p.add_argument("--frames", type=_positive_int, default=16, metavar="N",
                   help="frames stored per traceback (default: 16)")
    p.add_argument("--top", type=_positive_int, default=10, metavar="N",
                   help="sites shown at exit (default: 10)")
    p.add_argument("--snapshot", metavar="FILE", help="write a snapshot file at exit")
    p.add_argument("--html", metavar="FILE", help="write an HTML report at exit")
    p.add_argument("--interval", type=_positive_float, metavar="SECONDS",
                   help="record current and peak memory every SECONDS for the timeline, "
                        "and write a snapshot FILE.NNNN each time when --snapshot is given "
                        "(snapshots are spaced to cost the program at most ~10%%)")
    p.add_argument("--signal", metavar="SIGNAME",
                   help="write a snapshot when the program receives this signal (e.g. USR2)")
    p.add_argument("-m", dest="module", metavar="module", help="run a library module as a script")

    p = sub.add_parser("top", help="top allocation sites of a snapshot",
                       description="Print the allocation sites holding the most memory in a snapshot.",
                       epilog=_EXAMPLES["top"], formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help="snapshot file")
    _add_site_options(p)

    p = sub.add_parser("compare", help="differences between two snapshots",
                       description="Print the allocation sites whose memory changed most from OLD to NEW.",
                       epilog=_EXAMPLES["compare"], formatter_class=fmt)
    p.add_argument("old", metavar="OLD", help="earlier snapshot file")
    p.add_argument("new", metavar="NEW", help="later snapshot file")
    _add_site_options(p)

    p = sub.add_parser("html", help="write a self-contained HTML report",
                       description="Write one HTML file (no network needed) with a flame graph of "
                                   "live memory, a sortable table of top sites, a memory-over-time "
                                   "chart when there is a timeline, and leak reports (JSON files "
                                   "written by 'memhound leaks --json').",
                       epilog=_EXAMPLES["html"], formatter_class=fmt)
    p.add_argument("files", nargs="+", metavar="FILE", help="snapshot files (in time order) or leak JSON")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="HTML file to write")
    p.add_argument("--title", help="report title (default: the last file name)")

    p = sub.add_parser("export", help="export a snapshot for speedscope or flamegraph.pl",
                       description="Export live memory by traceback as speedscope JSON "
                                   "(https://www.speedscope.app, works offline too) or as "
                                   "collapsed stacks (flamegraph.pl, inferno).",
                       epilog=_EXAMPLES["export"], formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help="snapshot file")
    p.add_argument("--format", required=True, choices=("speedscope", "collapsed"))
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write ('-' for stdout)")

    sub.add_parser("leaks", help="repeat a function and report what leaks and why",
                   add_help=False, epilog=_EXAMPLES["leaks"], formatter_class=fmt)
    return parser


def _version_text():
    api = _source.tracing_api()
    engine = "memhound engine" if api.__name__ != "tracemalloc" else "stdlib tracemalloc fallback"
    return f"memhound {__version__} ({engine}, Python {sys.version.split()[0]})"


def main(argv=None):
    """Run the memhound command line; return the exit status.

    >>> main(["top", "app.snap", "--limit", "3"])     # doctest: +SKIP
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
        if argv and argv[0] == "leaks":
            return _cmd_leaks(argv[1:])
        program = []
        if argv and argv[0] == "run":
            argv, program = _split_run_argv(argv)
        try:
            args, extra = parser.parse_known_args(argv)
        except SystemExit as exc:       # --help / --version
            return exc.code or 0
        if extra:
            where = f"memhound {args.command}" if args.command else "memhound"
            raise _UsageError(f"unrecognized arguments: {' '.join(extra)} (see '{where} --help')")
        if args.command is None:
            parser.print_help(sys.stderr)
            return 2
        if args.command == "run":
            return _cmd_run(args, program)
        return {"top": _cmd_top, "compare": _cmd_compare, "html": _cmd_html,
                "export": _cmd_export}[args.command](args)
    except _UsageError as exc:
        _error(str(exc))
        return 2
    except SnapshotError as exc:
        _error(str(exc))
        return 1
    except BrokenPipeError:             # `memhound top ... | head`
        sys.stdout = None
        return 0
    except OSError as exc:
        _error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 1


def _error(message):
    print(f"memhound: error: {message}", file=sys.stderr)


# ---------------------------------------------------------------- top/compare

def _print_table(rows, *, title, diff=False, total=None, stream=None):
    from .report.terminal import format_table, use_colour
    stream = stream or sys.stdout
    colour = use_colour(stream)
    text = format_table(rows, diff=diff, colour=colour, total_size=total)
    print(f"\x1b[1m{title}\x1b[0m" if colour else title, file=stream)
    print(text, file=stream)


def _site_options_check(args):
    if args.cumulative and args.group_by == "traceback":
        raise _UsageError("--cumulative cannot be used with --group-by traceback")


def _cmd_top(args):
    from .report import _aggregate as agg
    from .report.terminal import format_count, format_size
    _site_options_check(args)
    snap = _load_filtered(args.file, args)
    size, count = agg.totals(snap)
    rows = agg.site_rows(snap, args.group_by, args.cumulative, args.limit)
    title = (f"{args.file}: {format_size(size)} live in {format_count(count)} blocks; "
             f"top {len(rows)} by {_grouping_words(args)}")
    _print_table(rows, title=title, total=size)
    return 0


def _load_filtered(path, args):
    """The snapshot at `path` with the --include/--exclude globs applied."""
    from .report import _aggregate as agg
    return agg.apply_filters(_source.load_snapshot(path), args.include, args.exclude)


def _grouping_words(args):
    """How a table is grouped, for its title: 'lineno', 'traceback (cumulative), ...'."""
    words = args.group_by + (" (cumulative)" if args.cumulative else "")
    if args.group_by == "traceback":
        words += ", most recent call first"
    return words


def _cmd_compare(args):
    from .report import _aggregate as agg
    from .report.terminal import format_count, format_size
    _site_options_check(args)
    old, new = _load_filtered(args.old, args), _load_filtered(args.new, args)
    (osize, ocount), (nsize, ncount) = agg.totals(old), agg.totals(new)
    rows = agg.compare_rows(old, new, args.group_by, args.cumulative, args.limit)
    title = (f"{args.old} -> {args.new}: {format_size(nsize)} live "
             f"({format_size(nsize - osize, sign=True)}) in {format_count(ncount)} blocks "
             f"({format_count(ncount - ocount, sign=True)}); top {len(rows)} changes by "
             f"{_grouping_words(args)}")
    _print_table(rows, title=title, diff=True)
    return 0


# ---------------------------------------------------------------- html/export

def _cmd_html(args):
    from .report import html
    report = html.build_report(args.files, title=args.title)
    html.write_html(report, args.output)
    print(f"memhound: wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_export(args):
    from .report import export
    snap = _source.load_snapshot(args.file)
    if args.format == "speedscope":
        text = export.speedscope(snap, name=os.path.basename(args.file))
    else:
        text = export.collapsed(snap)
    if args.output == "-":
        sys.stdout.write(text)
    else:
        with open(args.output, "w", encoding="utf-8") as fp:
            fp.write(text)
        print(f"memhound: wrote {args.output}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- leaks

def _cmd_leaks(argv):
    import importlib.util
    if importlib.util.find_spec("memhound.cli_leaks") is None:
        raise _UsageError("the leak finder (memhound.cli_leaks) is not available in this build")
    from . import cli_leaks
    parser = _Parser(prog="memhound leaks", epilog=_EXAMPLES["leaks"],
                     formatter_class=argparse.RawDescriptionHelpFormatter,
                     description="Run a zero-argument function repeatedly and report the "
                                 "objects that survive every run, who holds them and why.")
    cli_leaks.add_arguments(parser)
    own_html = "--html" in parser._option_string_actions     # the leak finder may add it
    if not own_html:
        parser.add_argument("--html", metavar="FILE",
                            help="also write the leak report as a self-contained HTML file")
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:           # --help
        return exc.code or 0
    if own_html or not args.html:
        return cli_leaks.run(args)
    return _leaks_with_html(cli_leaks, args)


def _leaks_with_html(cli_leaks, args):
    """Run the leak finder with its JSON going to a file, then render it."""
    import json
    import tempfile
    wanted = getattr(args, "json", None)
    fd, tmp = tempfile.mkstemp(prefix="memhound-leaks-", suffix=".json")
    os.close(fd)
    try:
        args.json = tmp if wanted in (None, "-") else wanted
        status = cli_leaks.run(args)
        try:
            with open(args.json, encoding="utf-8") as fp:
                text = fp.read()
            report = json.loads(text) if text.strip() else None
        except (OSError, ValueError):
            report = None
        if report is None:              # the leak finder failed and said why
            return status
        if wanted == "-":
            sys.stdout.write(text)
        from .report import html
        title = f"memhound leaks {args.target}"
        html.write_html(html.report_from_snapshots([], title=title, leaks=[(args.target, report)]),
                        args.html)
        print(f"memhound: wrote {args.html}", file=sys.stderr)
        return status
    finally:
        os.unlink(tmp)


# ---------------------------------------------------------------- run

_RUN_VALUE_OPTIONS = {"--frames", "--top", "--snapshot", "--html", "--interval", "--signal"}


def _split_run_argv(argv):
    """Split ``run [options] script [args]`` into (memhound argv, program argv).

    Everything from the script (or from ``-m module``) on belongs to the
    program, including options that look like memhound's.
    """
    i = 1
    while i < len(argv):
        tok = argv[i]
        if tok == "--":
            return argv[:i], argv[i + 1:]
        if tok == "-m":
            if i + 1 >= len(argv):
                raise _UsageError("argument -m: expected a module name (see 'memhound run --help')")
            return argv[:i + 2], argv[i + 2:]
        if tok.startswith("-m") and not tok.startswith("--"):
            return argv[:i] + ["-m", tok[2:]], argv[i + 1:]
        if tok.startswith("-") and tok != "-":
            if tok in _RUN_VALUE_OPTIONS:
                i += 1
            i += 1
            continue
        return argv[:i], argv[i:]
    return argv, []


def _parse_signal(name):
    text = name.upper()
    if text.isdigit():
        try:
            return signal.Signals(int(text))
        except ValueError:
            pass
    else:
        if not text.startswith("SIG"):
            text = "SIG" + text
        sig = getattr(signal.Signals, text, None)
        if sig is not None and sig not in (signal.SIGKILL, signal.SIGSTOP):
            return sig
    raise _UsageError(f"--signal: unknown or uncatchable signal {name!r} (try USR1 or USR2)")


def _numbered(path, n):
    base, ext = os.path.splitext(path)
    return f"{base}.{n:04d}{ext}"


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

    def __init__(self, api, args):
        self.api = api
        self.args = args
        self.t0 = time.monotonic()
        self.timeline = []
        self.peak_snapshot = None
        self.peak_snapshot_size = 0
        self.written = []
        self.pending = []
        self.sequence = 0
        self.own_bytes = 0
        self.snapshot_cost = 0.0
        self.stdlib = api.__name__ == "tracemalloc"
        self.lock = threading.Lock()
        self.stop_event = threading.Event()
        self.thread = None
        self.suspend, self.resume = _suspend_functions(api)
        import tracemalloc
        self.excluded = [api.Filter(False, os.path.join(os.path.dirname(os.path.abspath(__file__)), "*")),
                         api.Filter(False, tracemalloc.__file__)]
        try:                            # compile the filter patterns now, untraced
            api.Snapshot(((0, 1, (("x.py", 1),), 1),), 1).filter_traces(self.excluded)
        except Exception:
            pass

    def start(self):
        self._point(0.0, 0, 0)          # tracing starts right after this
        self.thread = threading.Thread(target=self._loop, name="memhound-recorder", daemon=True)
        self.thread.start()

    def _loop(self):
        self.suspend()
        step = self.args.interval or 0.1
        next_point = next_snapshot = 0.0
        while not self.stop_event.wait(self.POLL):
            try:
                current, peak = self.traced()
            except Exception:
                return
            now = time.monotonic() - self.t0
            if now >= next_point:
                self._point(now, current, peak)
                next_point = now + step
                if self.args.interval and self.args.snapshot and now >= next_snapshot:
                    self.write_snapshot("interval")
                    next_snapshot = now + max(step, self.SNAPSHOT_SHARE * self.snapshot_cost)
            if current > self.peak_snapshot_size * 1.1 + 65536 and now >= next_snapshot:
                snap = self.take()
                next_snapshot = now + self.SNAPSHOT_SHARE * self.snapshot_cost
                if snap is not None:
                    with self.lock:
                        old, self.peak_snapshot = self.peak_snapshot, snap
                        self.peak_snapshot_size = current
                    self._forget(old)

    def traced(self):
        """(current, peak) traced memory of the program, without the packed
        snapshots memhound itself keeps (stdlib fallback)."""
        current, peak = self.api.get_traced_memory()
        return max(current - self.own_bytes, 0), max(peak - self.own_bytes, 0)

    def _point(self, now, current, peak):
        self.timeline.append([round(now, 4), current, peak])
        if len(self.timeline) > self.MAX_POINTS:     # keep it bounded: halve resolution
            self.timeline[:] = self.timeline[::2]

    def take(self):
        """Raw snapshot of the program's memory (memhound's own traces are
        removed later by ``clean``: filtering while the stdlib tracer runs
        traces every allocation of the filter itself, ~100x slower).

        With the stdlib fallback the traces are packed into one bytes object
        (marshal, in C): a kept snapshot of N traces would otherwise be N
        tuples that every garbage collection of the program walks through."""
        t = time.perf_counter()
        try:
            snap = self.api.take_snapshot()
        except RuntimeError:            # tracing stopped by the program
            return None
        self.snapshot_cost = time.perf_counter() - t
        if not self.stdlib:
            return snap
        blob = marshal.dumps(snap.traces._traces)
        self.own_bytes += sys.getsizeof(blob)
        return (blob, snap.traceback_limit)

    def _forget(self, packed):
        if isinstance(packed, tuple):
            self.own_bytes -= sys.getsizeof(packed[0])

    def clean(self, snap):
        """The snapshot without memhound's own traces; call after stop()."""
        if isinstance(snap, tuple):
            snap = self.api.Snapshot(marshal.loads(snap[0]), snap[1])
        return snap.filter_traces(self.excluded)

    def write_snapshot(self, kind, now=False):
        """Write a snapshot FILE.NNNN; return its path.

        With the stdlib fallback, ``--interval`` files are written after the
        program ends (``flush``): pickling while its tracer runs traces every
        allocation of the pickler and slows the program down ~50x.  A signal
        (``now=True``) writes at once: a server must not have to stop."""
        with self.lock:
            self.sequence += 1
            path = _numbered(self.args.snapshot or f"memhound-{os.getpid()}.snapshot", self.sequence)
        meta = self.metadata(kind)
        if now:
            try:
                snap = self.api.take_snapshot()
            except RuntimeError:
                return None
            _set_metadata(snap, meta)
            self._dump(path, snap)
            return path
        snap = self.take()
        if snap is None:
            return None
        if isinstance(snap, tuple):
            self.pending.append((path, snap, meta))
        else:
            _set_metadata(snap, meta)
            self._dump(path, snap)
        return path

    def _dump(self, path, snap):
        try:
            snap.dump(path)
        except OSError as exc:
            print(f"memhound: cannot write {path}: {exc.strerror or exc}", file=sys.stderr)
            return
        self.written.append(path)

    def flush(self):
        """Write the snapshots kept while the program ran (after stop())."""
        for path, packed, meta in self.pending:
            snap = self.clean(packed)
            _set_metadata(snap, meta)
            self._dump(path, snap)
        self.pending.clear()

    def metadata(self, kind):
        current, peak = self.traced()
        return {"memhound": {"kind": kind, "time": round(time.monotonic() - self.t0, 4),
                             "wall_time": time.time(), "traced": [current, peak],
                             "argv": list(sys.argv), "pid": os.getpid(),
                             "timeline": [list(p) for p in self.timeline]}}

    def finish(self):
        self.stop_event.set()
        if self.thread is not None:
            self.thread.join()
        current, peak = self.traced()
        self._point(time.monotonic() - self.t0, current, peak)


def _suspend_functions(api):
    core = sys.modules.get("memhound._core")
    suspend = getattr(core, "suspend", None) if api.__name__ != "tracemalloc" else None
    resume = getattr(core, "resume", None) if suspend else None
    if suspend is None or resume is None:
        return (lambda: None), (lambda: None)
    return suspend, resume


def _set_metadata(snapshot, extra):
    meta = getattr(snapshot, "metadata", None)
    if isinstance(meta, dict):
        meta.update(extra)
    else:
        try:
            snapshot.metadata = dict(extra)
        except AttributeError:
            pass


def _cmd_run(args, program):
    if args.module is None and not program:
        raise _UsageError("run: expected a script or -m module (see 'memhound run --help')")
    sig = _parse_signal(args.signal) if args.signal else None
    if args.module is None:
        script = program[0]
        if not os.path.exists(script):
            print(f"memhound: can't open file {os.path.abspath(script)!r}: "
                  f"[Errno 2] No such file or directory", file=sys.stderr)
            return 2
    api = _source.tracing_api(need_engine=True)
    if api.is_tracing():
        api.stop()
    recorder = _Recorder(api, args)
    if sig is not None:
        def on_signal(signum, frame):
            path = recorder.write_snapshot(f"signal {signal.Signals(signum).name}", now=True)
            if path in recorder.written:
                print(f"memhound: wrote {path}", file=sys.stderr)
        signal.signal(sig, on_signal)
    recorder.start()                    # before tracing: its setup is not traced
    api.start(args.frames)
    status, interrupted, keep_alive = _run_program(args.module, program)
    interrupted = _wait_for_threads() or interrupted
    # the program's globals (keep_alive) are still alive: this is "at exit"
    try:
        recorder.finish()
        if not api.is_tracing():
            print("memhound: the program stopped tracing; no report", file=sys.stderr)
            return status
        final = recorder.take()
        meta = recorder.metadata("exit")
        current, peak = recorder.traced()
        api.stop()
        final = recorder.clean(final)
        if recorder.peak_snapshot is not None:
            recorder.peak_snapshot = recorder.clean(recorder.peak_snapshot)
        _set_metadata(final, meta)
        recorder.flush()
        # files first: a closed stderr (`| head`) must not lose them
        written, failed = [], False
        for path, write in ((args.snapshot, lambda p: final.dump(p)),
                            (args.html, lambda p: _write_run_html(args, program, final, p))):
            if not path:
                continue
            try:
                write(path)
                written.append(path)
            except OSError as exc:
                failed = True
                _error(f"cannot write {path}: {exc.strerror or exc}")
        try:
            _report_run(args, final, recorder, current, peak)
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


def _write_run_html(args, program, final, path):
    from .report import html
    what = ["-m", args.module] if args.module else []
    title = " ".join(["memhound run"] + what + program)
    html.write_html(html.report_from_snapshots([(args.snapshot or "exit", final)], title=title), path)


def _report_run(args, final, recorder, current, peak):
    from .report import _aggregate as agg
    from .report.terminal import format_count, format_size
    size, count = agg.totals(final)
    rows = agg.site_rows(final, "lineno", False, args.top)
    _flush(sys.stdout)
    err = sys.stderr
    _print_table(rows, total=size, stream=err,
                 title=f"memhound: live memory at exit: {format_size(size)} in "
                       f"{format_count(count)} blocks; top {len(rows)} lines")
    peak_snap, peak_size = recorder.peak_snapshot, recorder.peak_snapshot_size
    if peak_snap is None or size >= peak_size:
        peak_snap, peak_size = final, current
    psize, _ = agg.totals(peak_snap)
    rows = agg.site_rows(peak_snap, "lineno", False, args.top)
    _print_table(rows, total=psize, stream=err,
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
    shutdown = getattr(threading, "_shutdown", None)
    if shutdown is None:
        return False
    try:
        shutdown()
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
    launcher = {os.path.abspath(__file__)}
    if script_mode:
        launcher |= {os.path.abspath(runpy.__file__), "<frozen runpy>"}
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
