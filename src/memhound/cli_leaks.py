"""``memhound leaks TARGET``: run a zero-argument callable repeatedly and
report what leaks.

TARGET is ``path/to/file.py:function`` or ``package.module:function``
(``function`` may be dotted: ``module:Class.method``).  Exit status: 0 no
leak, 1 leak found, 2 usage or target error (one clear line on stderr).

Example::

    $ memhound leaks examples/leaky_app.py:handle_request --runs 5 --json out.json
"""
import argparse
import importlib
import importlib.util
import json
import os
import sys

from .leaks import find_leaks

EXIT_OK, EXIT_LEAK, EXIT_ERROR = 0, 1, 2


class TargetError(Exception):
    """The target cannot be loaded or called."""


def add_arguments(parser):
    """Add the ``leaks`` options to an argparse parser.

    Example::

        >>> p = argparse.ArgumentParser(); add_arguments(p)
        >>> p.parse_args(["app.py:main", "--runs", "3"]).runs
        3
    """
    parser.add_argument("target", metavar="TARGET",
                        help="path/to/file.py:function or package.module:function")
    parser.add_argument("--warmup", type=int, default=3, metavar="N",
                        help="calls ignored before measuring (default 3)")
    parser.add_argument("--runs", type=int, default=5, metavar="N",
                        help="measured calls; a leak must grow in every one (default 5)")
    parser.add_argument("--frames", type=int, default=16, metavar="N",
                        help="frames kept per creation traceback (default 16)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the report as JSON to FILE ('-' for stdout)")
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


def _error(message):
    print("memhound leaks: error: %s" % message, file=sys.stderr)
    return EXIT_ERROR


def run(args):
    """Run the ``leaks`` command; returns the exit status.

    Example::

        >>> p = add_arguments(argparse.ArgumentParser())
        >>> run(p.parse_args(["examples/leaky_app.py:handle_request"]))  # doctest: +SKIP
        1
    """
    for name, low in (("warmup", 0), ("runs", 1), ("frames", 1)):
        if getattr(args, name) < low:
            return _error("--%s must be >= %d, got %d" % (name, low, getattr(args, name)))
    try:
        func = load_target(args.target)
    except TargetError as exc:
        return _error(str(exc))
    try:
        report = find_leaks(func, warmup=args.warmup, runs=args.runs, frames=args.frames)
    except SystemExit as exc:
        return _error("%s called sys.exit(%s)" % (args.target, exc.code))
    except Exception as exc:
        return _error("%s raised %s: %s" % (args.target, type(exc).__name__, exc))
    print(report)
    if args.json:
        text = json.dumps(report.to_dict(), indent=2)
        if args.json == "-":
            print(text)
        else:
            try:
                with open(args.json, "w", encoding="utf-8") as f:
                    f.write(text + "\n")
            except OSError as exc:
                return _error("cannot write %s: %s" % (args.json, exc.strerror or exc))
    return EXIT_LEAK if report.leaked else EXIT_OK


def main(argv=None):
    """Stand-alone entry point (``python -m memhound.cli_leaks TARGET``)."""
    parser = add_arguments(argparse.ArgumentParser(prog="memhound leaks"))
    return run(parser.parse_args(argv))


if __name__ == "__main__":
    sys.exit(main())
