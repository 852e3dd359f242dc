"""memhound command line: run a program under tracing, read snapshots, make reports.

    memhound run [options] script.py [args...]     profile a program (or: run -m module)
    memhound top FILE                              top allocation sites of a snapshot
    memhound compare OLD NEW                       what grew between two snapshots
    memhound html FILE... -o report.html           self-contained HTML report
    memhound export FILE --format speedscope -o out.json
    memhound leaks TARGET                          repeated runs, leak verdict, who holds what
    memhound attach PID --census                   a running Python 3.14+ process: heap, tracing, leaks

``python -m memhound`` is the same program.  Every command writes its tables
to stdout, except ``run``, whose stdout belongs to the program: its report goes
to stderr.  Errors are one line on stderr and a non-zero exit status.  This
module parses the arguments; ``runner`` runs a program, ``cli_leaks`` runs
the leak finder.
"""
import argparse
import os
import signal
import sys

from . import __version__, cli_leaks, runner, tracing
from . import attach as cli_attach
from .report import _aggregate as agg, _source, export, html
from .report._source import SnapshotError
from .report.terminal import format_count, format_size, print_error, print_table

_EXAMPLES = {
    "run": """examples:
  memhound run app.py --port 8000          run app.py with its own arguments
  memhound run --top 20 -m http.server     run a module like python -m
  memhound run --snapshot app.snap --html app.html --interval 1 app.py
  memhound run --signal USR2 --snapshot srv.snap server.py   (kill -USR2 PID writes srv.NNNN.snap)
  memhound run --watch 10 --watch-html growth.html server.py   (sites that grow steadily)
  memhound run --pprof srv.pb.gz --interval 60 server.py   (a pprof profile, replaced every minute)""",
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
  memhound export app.snap --format collapsed -o app.folded   (flamegraph.pl / inferno input)
  memhound export app.snap --format pprof -o app.pb.gz   (go tool pprof, Pyroscope, Parca)""",
    "leaks": """examples:
  memhound leaks app/cache.py:handle_request
  memhound leaks mypkg.worker:step --runs 10 --json leaks.json
  memhound leaks app/cache.py:handle_request --html leaks.html""",
    "attach": """examples:
  memhound attach 4242 --census            objects by type, biggest holders and their paths
  memhound attach 4242 --start --watch 10 --times 3   what each 10 s left alive, and where
  memhound attach 4242 --snapshot srv.snap then: memhound top srv.snap
  memhound attach 4242 --detach            stop tracing, drop memhound's state in the target""",
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


def _frames(text):
    try:
        return tracing.check_frames(_positive_int(text), "frames")
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


_SIZE_UNITS = {"": 1, "b": 1, "k": 1 << 10, "kib": 1 << 10, "m": 1 << 20, "mib": 1 << 20,
               "g": 1 << 30, "gib": 1 << 30}


def parse_size(text):
    """Bytes of a size written ``4096``, ``512KiB``, ``1MiB`` or ``1GiB``
    (binary units; ``K``/``M``/``G`` mean the same).

    >>> parse_size("512KiB"), parse_size("1MiB"), parse_size("4096")
    (524288, 1048576, 4096)
    """
    text = text.strip()
    digits = text.rstrip("BbGgIiKkMm ")
    unit = text[len(digits):].strip().lower()
    if not digits.isdigit() or unit not in _SIZE_UNITS or int(digits) < 1:
        raise ValueError(f"invalid size {text!r} (expected a positive number of bytes, "
                         f"e.g. 4096, 512KiB, 1MiB)")
    return int(digits) * _SIZE_UNITS[unit]


def _sample_size(text):
    try:
        value = parse_size(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    if value > 1 << 62:
        raise argparse.ArgumentTypeError(f"invalid size {text!r} (at most 2**62 bytes)")
    return value


def _positive_float(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number of seconds, got {text!r}") from None
    if not 0 < value < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a positive number of seconds, got {text!r}")
    return value


def _watch_seconds(text):
    from .watch import check_interval
    try:
        return check_interval(text, None)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


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
    p.add_argument("--frames", type=_frames, default=runner.DEFAULT_FRAMES, metavar="N",
                   help=f"frames stored per traceback (default: {runner.DEFAULT_FRAMES})")
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
    p.add_argument("--pprof", metavar="FILE",
                   help="write a gzipped pprof profile of live memory at exit, and replace it "
                        "every --interval SECONDS while the program runs")
    p.add_argument("--watch", type=_watch_seconds, metavar="SECONDS",
                   help="measure every site's live size every SECONDS and report at exit the "
                        "sites that grow steadily (a trend test on per-window minima)")
    p.add_argument("--watch-json", metavar="FILE", help="write the --watch results as JSON")
    p.add_argument("--watch-html", metavar="FILE",
                   help="write the --watch results as HTML, one timeline per growing site")
    p.add_argument("--sample", type=_sample_size, default=0, metavar="BYTES",
                   help="sampled tracing for production: record one allocation per BYTES "
                        "allocated on average (e.g. 64KiB, 512KiB); sizes and counts are then "
                        "unbiased estimates (docs/production.md)")
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

    p = sub.add_parser("export", help="export a snapshot for speedscope, flamegraph.pl or pprof",
                       description="Export live memory by traceback as speedscope JSON "
                                   "(https://www.speedscope.app, works offline too), as "
                                   "collapsed stacks (flamegraph.pl, inferno) or as a gzipped "
                                   "pprof profile (go tool pprof, Pyroscope, Parca).",
                       epilog=_EXAMPLES["export"], formatter_class=fmt)
    p.add_argument("file", metavar="FILE", help="snapshot file")
    p.add_argument("--format", required=True, choices=("speedscope", "collapsed", "pprof"))
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="file to write ('-' for stdout)")

    p = sub.add_parser("leaks", help="repeat a function and report what leaks and why",
                       description="Run a zero-argument function repeatedly and report the "
                                   "objects that survive every run, who holds them and why. "
                                   "Exit status: 0 no leak, 1 leak found, 2 usage or target error.",
                       epilog=_EXAMPLES["leaks"], formatter_class=fmt)
    cli_leaks.add_arguments(p)

    p = sub.add_parser("attach", help="attach to a running Python 3.14+ process (census, tracing, leaks)",
                       description="Attach to a running CPython 3.14+ process (PEP 768) and take a "
                                   "heap census, control tracing, write a snapshot or watch what "
                                   "stays alive. Exit status: 0 done, 1 --watch saw growth in every "
                                   "interval, 2 refused or failed (one line on stderr).",
                       epilog=_EXAMPLES["attach"], formatter_class=fmt)
    cli_attach.add_arguments(p)
    return parser


def _version_text():
    return f"memhound {__version__} (Python {sys.version.split()[0]})"


def main(argv=None):
    """Run the memhound command line; return the exit status.

    >>> main(["--version"])                            # doctest: +ELLIPSIS
    memhound 0.1.0 (Python ...)
    0
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _build_parser()
    try:
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
        if args.command == "attach":
            return cli_attach.run(args)
        return {"top": _cmd_top, "compare": _cmd_compare, "html": _cmd_html,
                "export": _cmd_export, "leaks": cli_leaks.run}[args.command](args)
    except _UsageError as exc:
        print_error(str(exc))
        return 2
    except SnapshotError as exc:
        print_error(str(exc))
        return 1
    except BrokenPipeError:             # `memhound top ... | head`
        sys.stdout = None
        return 0
    except OSError as exc:
        print_error(f"{exc.filename}: {exc.strerror}" if exc.filename else str(exc))
        return 1


# ---------------------------------------------------------------- top/compare

def _site_options_check(args):
    if args.cumulative and args.group_by == "traceback":
        raise _UsageError("--cumulative cannot be used with --group-by traceback")


def _cmd_top(args):
    _site_options_check(args)
    snap = _load_filtered(args.file, args)
    size, count = agg.totals(snap)
    rows = agg.site_rows(snap, args.group_by, args.cumulative, args.limit)
    title = (f"{args.file}: {format_size(size)} live in {format_count(count)} blocks; "
             f"top {len(rows)} by {_grouping_words(args)}")
    print_table(rows, title=title, total=size, sample_every=snap.sample_every)
    return 0


def _load_filtered(path, args):
    """The snapshot at `path` with the --include/--exclude globs applied."""
    return agg.apply_filters(_source.load_snapshot(path), args.include, args.exclude)


def _grouping_words(args):
    """How a table is grouped, for its title: 'lineno', 'traceback (cumulative), ...'."""
    words = args.group_by + (" (cumulative)" if args.cumulative else "")
    if args.group_by == "traceback":
        words += ", most recent call first"
    return words


def _cmd_compare(args):
    _site_options_check(args)
    old, new = _load_filtered(args.old, args), _load_filtered(args.new, args)
    (osize, ocount), (nsize, ncount) = agg.totals(old), agg.totals(new)
    rows = agg.compare_rows(old, new, args.group_by, args.cumulative, args.limit)
    title = (f"{args.old} -> {args.new}: {format_size(nsize)} live "
             f"({format_size(nsize - osize, sign=True)}) in {format_count(ncount)} blocks "
             f"({format_count(ncount - ocount, sign=True)}); top {len(rows)} changes by "
             f"{_grouping_words(args)}")
    print_table(rows, title=title, diff=True,
                sample_every=tuple(s.sample_every for s in (old, new)))
    return 0


# ---------------------------------------------------------------- html/export

def _cmd_html(args):
    report = html.build_report(args.files, title=args.title)
    html.write_html(report, args.output)
    print(f"memhound: wrote {args.output}", file=sys.stderr)
    return 0


def _cmd_export(args):
    snap = _source.load_snapshot(args.file)
    if args.format == "pprof":
        return _write_pprof(snap, args.output)
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


def _write_pprof(snap, output):
    from .report import pprof
    if output == "-":
        sys.stdout.flush()
        sys.stdout.buffer.write(pprof.dumps(snap))
        sys.stdout.buffer.flush()
    else:
        pprof.write(snap, output)
        print(f"memhound: wrote {output}", file=sys.stderr)
    return 0


# ---------------------------------------------------------------- run

_RUN_VALUE_OPTIONS = {"--frames", "--top", "--snapshot", "--html", "--interval", "--signal",
                      "--pprof", "--watch", "--watch-json", "--watch-html", "--sample"}


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
    """The signal named by --signal: a name with or without SIG, or a
    number; never one the program could not survive or memhound not catch."""
    text = name.strip().upper()
    if text.isdigit():
        try:
            sig = signal.Signals(int(text))
        except ValueError:
            sig = None
    else:
        sig = getattr(signal.Signals, text if text.startswith("SIG") else "SIG" + text, None)
    if sig is None or sig not in signal.valid_signals() or sig in (signal.SIGKILL, signal.SIGSTOP):
        raise _UsageError(f"--signal: unknown or uncatchable signal {name!r} (try USR1 or USR2)")
    return sig


def _cmd_run(args, program):
    if args.module is None and not program:
        raise _UsageError("run: expected a script or -m module (see 'memhound run --help')")
    signal_number = _parse_signal(args.signal) if args.signal else None
    if args.watch is None and (args.watch_json or args.watch_html):
        raise _UsageError("--watch-json and --watch-html need --watch SECONDS "
                          "(see 'memhound run --help')")
    return runner.run(program, args.module, frames=args.frames, top=args.top,
                      snapshot=args.snapshot, html=args.html, interval=args.interval,
                      signal_number=signal_number, pprof=args.pprof, watch=args.watch,
                      watch_json=args.watch_json, watch_html=args.watch_html,
                      sample_every=args.sample)
