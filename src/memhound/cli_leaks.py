"""``memhound leaks TARGET``: run a zero-argument callable repeatedly and
report what leaks.

TARGET is ``path/to/file.py:function`` or ``package.module:function``
(``function`` may be dotted: ``module:Class.method``); a module is looked
up from the current directory first, as ``python -m`` does.  A coroutine
function runs to completion in an event loop, a generator function is
exhausted (``memhound.targets``).  Exit status: 0 no leak, 1 leak found, 2
usage or target error (one clear line on stderr), 130 interrupted (Ctrl-C).
``--json -`` writes only the JSON to stdout (the text report goes to
stderr).  ``memhound.cli`` builds the parser (with ``add_arguments``) and
calls ``run``.

Example::

    $ memhound leaks examples/leaky_app.py:handle_request --runs 5 --json out.json --html out.html
"""
import importlib
import importlib.util
import json
import os
import sys

from . import tracing
from .leaks import MAX_RUNS, find_leaks
from .report import html
from .report.terminal import print_error

EXIT_OK, EXIT_LEAK, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130          # 128 + SIGINT, as a shell reports Ctrl-C


class CommandError(Exception):
    """The command cannot run: its message is printed as one line, exit status 2."""


class TargetError(CommandError):
    """The target cannot be loaded or called."""


def add_arguments(parser):
    """Add the ``leaks`` options to an argparse parser.

    Example::

        >>> import argparse
        >>> p = add_arguments(argparse.ArgumentParser())
        >>> p.parse_args(["app.py:main", "--runs", "3"]).runs
        3
    """
    parser.add_argument("target", metavar="TARGET",
                        help="path/to/file.py:function or package.module:function")
    parser.add_argument("--warmup", type=int, default=3, metavar="N",
                        help="calls ignored before measuring (default 3)")
    parser.add_argument("--runs", type=int, default=5, metavar="N",
                        help="measured calls; a leak must grow in every one (default 5)")
    parser.add_argument("--frames", type=int, default=tracing.LEAK_FRAMES, metavar="N",
                        help=f"frames kept per creation traceback (default {tracing.LEAK_FRAMES})")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the report as JSON to FILE ('-': stdout gets only "
                             "the JSON, the text report goes to stderr)")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write the report as a self-contained HTML file")
    return parser


def _load_module(spec_text):
    if spec_text.endswith(".py") or os.sep in spec_text or "/" in spec_text:
        path = os.path.abspath(spec_text)
        if not os.path.isfile(path):
            raise TargetError("no such file: %s" % spec_text)
        name = os.path.splitext(os.path.basename(path))[0]
        if not name.isidentifier():
            name = "__memhound_target__"
        spec = importlib.util.spec_from_file_location(name, path)
        if spec is None or spec.loader is None:
            raise TargetError("cannot load %s as a Python module" % spec_text)
        module = importlib.util.module_from_spec(spec)
        directory = os.path.dirname(path)
        if directory not in sys.path:
            sys.path.insert(0, directory)
        previous = sys.modules.get(name)
        sys.modules[name] = module
        try:
            spec.loader.exec_module(module)
        except BaseException:
            if previous is None:
                sys.modules.pop(name, None)
            else:
                sys.modules[name] = previous
            raise
        return module
    # As `python -m`: the current directory comes first (the installed
    # `memhound` script has its own directory there instead).
    cwd = os.getcwd()
    if cwd not in sys.path and "" not in sys.path:
        sys.path.insert(0, cwd)
    return importlib.import_module(spec_text)


def load_target(target):
    """Resolve TARGET to a callable, raising TargetError with a clear message.

    Example::

        >>> load_target("json:dumps")          # doctest: +ELLIPSIS
        <function dumps at ...>
    """
    module_part, sep, attr_part = target.rpartition(":")
    if not sep or not module_part or not attr_part:
        raise TargetError("TARGET must be path/to/file.py:function or package.module:function, "
                          "got %r" % target)
    try:
        module = _load_module(module_part)
    except TargetError:
        raise
    except SystemExit as exc:
        raise TargetError("importing %s called sys.exit(%s)" % (module_part, exc.code))
    except KeyboardInterrupt:
        raise
    except BaseException as exc:  # noqa: B902 -- any import failure is a target error
        raise TargetError("cannot import %s: %s: %s" % (module_part, type(exc).__name__, exc))
    obj = module
    for part in attr_part.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise TargetError("%s has no attribute %r" % (module_part, attr_part)) from None
    if not callable(obj):
        raise TargetError("%s:%s is not callable (it is a %s)"
                          % (module_part, attr_part, type(obj).__name__))
    return obj


def run(args):
    """Run the ``leaks`` command; returns the exit status.

    Example::

        >>> import argparse
        >>> p = add_arguments(argparse.ArgumentParser())
        >>> run(p.parse_args(["gc:collect", "--runs", "2"]))       # doctest: +ELLIPSIS
        no leak (3 warm-up, 2 measured runs)
        ...
        0
    """
    try:
        return _run(args)
    except CommandError as exc:
        print_error(str(exc), command="leaks")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("memhound leaks: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _run(args):
    # memhound's own options are checked here, before the target is loaded,
    # so that find_leaks() never fails on them and blames the target.
    for name, low in (("warmup", 0), ("runs", 1)):
        value = getattr(args, name)
        if value < low:
            raise CommandError("--%s must be >= %d, got %d" % (name, low, value))
        if value > MAX_RUNS:
            raise CommandError("--%s must be <= %d, got %d" % (name, MAX_RUNS, value))
    try:
        tracing.check_frames(args.frames, "--frames")
    except ValueError as exc:
        raise CommandError(str(exc)) from None
    func = load_target(args.target)
    try:
        report = find_leaks(func, warmup=args.warmup, runs=args.runs, frames=args.frames)
    except SystemExit as exc:
        raise CommandError("%s called sys.exit(%s)" % (args.target, exc.code)) from None
    except Exception as exc:
        raise CommandError("%s raised %s: %s" % (args.target, type(exc).__name__, exc)) from None
    print(report, file=sys.stderr if args.json == "-" else sys.stdout)
    try:
        if args.json:
            text = json.dumps(report.to_dict(), indent=2)
            if args.json == "-":
                print(text)
            else:
                with open(args.json, "w", encoding="utf-8") as f:
                    f.write(text + "\n")
        if args.html:
            page = html.report_from_snapshots([], title="memhound leaks " + args.target,
                                              leaks=[(args.target, report.to_dict())])
            html.write_html(page, args.html)
            print("memhound: wrote %s" % args.html, file=sys.stderr)
    except OSError as exc:
        raise CommandError("cannot write %s: %s" % (exc.filename, exc.strerror or exc)) from None
    return EXIT_LEAK if report.leaked else EXIT_OK
