"""``memhound attach PID``: look into a running Python process without
restarting it.

The target must run CPython 3.14+ (PEP 768): ``sys.remote_exec(pid,
script)`` has it run a script at its next safe point, in its main thread.
The script imports ``memhound._attach_agent`` there, runs one request and
writes the result into a private directory (mode 0700, made by the
attaching user; given to the target's user when root attaches to another
user's process), first under a temporary name, then renamed.  This side
waits for the file with a timeout: a target blocked in a C call never
reaches a safe point, and is reported instead of waited for.  A request that
runs after its deadline does nothing but remove its directory.

Commands (one per invocation; ``--start`` may come with ``--watch``):

- ``--census``: the live heap now -- objects and bytes by type, the biggest
  holders with their paths from named roots (``_core.heap_census_report``).
- ``--start [--frames N]``, ``--stop``, ``--snapshot FILE``: tracing in the
  target and a snapshot file that ``memhound top/compare/html`` read.
- ``--watch SECONDS [--times N]``: a census at the start of each interval and
  the leak finder's analysis at its end: what each interval left alive, who
  holds it, where it was created (while tracing) and why.
- ``--detach``: stop tracing and drop what the agent keeps; memhound's
  modules stay imported in the target.

Every refusal is one line and exit status 2; a watch that saw growth in
every interval exits 1, otherwise 0.

Example::

    $ memhound attach 4242 --census
    $ memhound attach 4242 --start --watch 10 --times 3 --html watch.html
    $ memhound attach 4242 --detach
"""
import errno
import json
import os
import re
import shutil
import stat
import subprocess
import sys
import tempfile
import time

from . import tracing
from .report import html
from .report.terminal import format_count, format_size, print_error

EXIT_OK, EXIT_GREW, EXIT_ERROR = 0, 1, 2
EXIT_INTERRUPTED = 130
MIN_VERSION = (3, 14)
_POLL = 0.01

# Run by the target at its next safe point.  Nothing of it stays in the
# target's namespace; a late run (the attaching side gave up) removes its
# directory and does nothing else.  Until the agent pauses tracing it
# allocates nothing (no function object, no bound method): a traceback
# through this script would keep its code objects alive for as long as the
# target traces.
_SCRIPT = '''\
try:
    __import__("memhound._attach_agent", None, None, ("handle",)).handle({directory!r}, {deadline!r})
except ImportError as _memhound_exc:
    def _memhound_failed(exc, directory={directory!r}, deadline={deadline!r}):
        import json, os, shutil, sys, time
        if time.time() > deadline:
            shutil.rmtree(directory, ignore_errors=True)
            return
        tmp = os.path.join(directory, "result.json.tmp")
        with open(os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), "w") as f:
            json.dump({{"ok": False, "error": "import", "message": "%s: %s" % (type(exc).__name__, exc),
                       "executable": sys.executable, "path": list(sys.path),
                       "version": "%d.%d.%d" % sys.version_info[:3]}}, f)
        os.replace(tmp, os.path.join(directory, "result.json"))
    try:
        _memhound_failed(_memhound_exc)
    finally:
        del _memhound_failed
'''

# sys.remote_exec() from the target's own interpreter, when this one has
# none (3.11-3.13) or is another version than the target's.
_HELPER = '''\
import sys
try:
    sys.remote_exec(int(sys.argv[1]), sys.argv[2])
except PermissionError as exc:
    print("permission", exc, file=sys.stderr); sys.exit(3)
except ProcessLookupError as exc:
    print("gone", exc, file=sys.stderr); sys.exit(4)
except Exception as exc:
    print("error", type(exc).__name__, exc, file=sys.stderr); sys.exit(5)
'''


class AttachError(Exception):
    """Attaching is refused or failed: one line, exit status 2."""


class _Late(Exception):
    """No result by the deadline."""


class Target:
    """What /proc says about the process to attach to (inspect_target()).

    Example::

        >>> t = Target(4242)
        >>> t.pid, t.version
        (4242, None)
    """

    def __init__(self, pid):
        self.pid = pid
        self.exe = None
        self.version = None
        self.uid = None
        self.name = "?"


def add_arguments(parser):
    """Add the ``attach`` options to an argparse parser.

    Example::

        >>> import argparse
        >>> p = add_arguments(argparse.ArgumentParser())
        >>> a = p.parse_args(["123", "--census", "--timeout", "5"])
        >>> a.pid, a.census, a.timeout
        (123, True, 5.0)
    """
    parser.add_argument("pid", type=int, metavar="PID", help="the process to attach to")
    what = parser.add_argument_group("what to do (one of them; --start may come with --watch)")
    what.add_argument("--census", action="store_true",
                      help="the live heap now: objects by type, the biggest holders and their paths")
    what.add_argument("--start", action="store_true", help="start tracing allocations in the target")
    what.add_argument("--stop", action="store_true", help="stop tracing in the target")
    what.add_argument("--snapshot", metavar="FILE", help="write a snapshot of the target's traces to FILE")
    what.add_argument("--watch", type=float, metavar="SECONDS",
                      help="report what each interval of SECONDS left alive and who holds it")
    what.add_argument("--detach", action="store_true",
                      help="stop tracing and remove everything memhound keeps in the target")
    parser.add_argument("--times", type=int, default=3, metavar="N",
                        help="intervals for --watch (default 3)")
    parser.add_argument("--frames", type=int, default=tracing.LEAK_FRAMES, metavar="N",
                        help=f"frames per traceback for --start (default {tracing.LEAK_FRAMES})")
    parser.add_argument("--top", type=int, default=15, metavar="N",
                        help="types and holders listed by --census (default 15)")
    parser.add_argument("--timeout", type=float, default=10.0, metavar="SECONDS",
                        help="wait at most this long for the target to answer (default 10)")
    parser.add_argument("--json", metavar="FILE", default=None,
                        help="also write the result as JSON to FILE ('-': stdout gets only the JSON)")
    parser.add_argument("--html", metavar="FILE", default=None,
                        help="also write --census or --watch as a self-contained HTML file")
    return parser


# ---- the target --------------------------------------------------------------

def _read_proc(pid, name):
    with open("/proc/%d/%s" % (pid, name), "rb") as f:
        return f.read()


def _version_from(text):
    m = re.search(r"python(\d)\.(\d+)", text)
    return (int(m.group(1)), int(m.group(2))) if m else None


def _effective_uid(pid):
    """The effective uid of the process (/proc/PID is root's for a worker
    that dropped privileges: it is no longer dumpable)."""
    for line in _read_proc(pid, "status").decode("ascii", "replace").splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[2])
    return os.stat("/proc/%d" % pid).st_uid


def inspect_target(pid):
    """The target's interpreter and version from /proc, or AttachError.

    Example::

        >>> import os, sys
        >>> inspect_target(os.getpid()).version == sys.version_info[:2]
        True
    """
    t = Target(pid)
    if pid <= 0 or not os.path.exists("/proc/%d" % pid):
        raise AttachError("no process %d is running" % pid)
    try:
        t.name = _read_proc(pid, "comm").decode("utf-8", "replace").strip()
        t.uid = _effective_uid(pid)
    except OSError:
        raise AttachError("no process %d is running" % pid) from None
    try:
        t.exe = os.readlink("/proc/%d/exe" % pid)
        maps = _read_proc(pid, "maps").decode("utf-8", "replace")
    except PermissionError:
        raise AttachError("no permission to inspect process %d (%s, uid %d): attach as its user "
                          "or as root" % (pid, t.name, t.uid)) from None
    except OSError as exc:
        if exc.errno == errno.ENOENT:
            raise AttachError("no process %d is running" % pid) from None
        raise AttachError("cannot inspect process %d: %s" % (pid, exc.strerror or exc)) from None
    libs = re.findall(r"libpython(\d)\.(\d+)", maps)
    if libs:
        t.version = (int(libs[0][0]), int(libs[0][1]))
    else:
        t.version = _version_from(os.path.basename(t.exe.replace(" (deleted)", "")))
    if t.version is None:
        if not _has_python_symbols(pid):
            raise AttachError("process %d (%s, %s) is not a Python process" % (pid, t.name, t.exe))
        raise AttachError("process %d (%s) embeds Python, but its version cannot be told from %s"
                          % (pid, t.name, t.exe))
    return t


def _has_python_symbols(pid):
    try:
        with open("/proc/%d/exe" % pid, "rb") as f:
            return b"Py_Initialize" in f.read(64 << 20)
    except OSError:
        return False


def _remote_debug_disabled(pid):
    """How remote debugging was disabled in the target, or None."""
    try:
        environ = _read_proc(pid, "environ").split(b"\0")
        argv = _read_proc(pid, "cmdline").split(b"\0")
    except OSError:
        return None
    for entry in environ:
        name, _, value = entry.partition(b"=")
        if name == b"PYTHON_DISABLE_REMOTE_DEBUG" and value:
            return "PYTHON_DISABLE_REMOTE_DEBUG is set in its environment"
    for k, arg in enumerate(argv):
        if arg == b"-Xdisable_remote_debug" or (
                arg == b"-X" and k + 1 < len(argv) and argv[k + 1] == b"disable_remote_debug"):
            return "it runs with -X disable_remote_debug"
        if arg in (b"-c", b"-m") or (arg and not arg.startswith(b"-") and k > 0):
            break
    return None


def _ptrace_note():
    try:
        with open("/proc/sys/kernel/yama/ptrace_scope") as f:
            scope = f.read().strip()
    except OSError:
        return "attach as the target's user or as root"
    if scope == "0":
        return "attach as the target's user or as root"
    return ("kernel.yama.ptrace_scope is %s: only a parent process or root (CAP_SYS_PTRACE) may "
            "attach" % scope)


def check_target(pid):
    """inspect_target() plus the refusals that need no attempt: an old
    Python, remote debugging disabled.

    Example::

        >>> import os, sys
        >>> try:
        ...     ok = check_target(os.getpid()).pid == os.getpid()
        ... except AttachError:
        ...     ok = False
        >>> ok == (sys.version_info >= (3, 14))
        True
    """
    t = inspect_target(pid)
    if t.version < MIN_VERSION:
        raise AttachError("process %d runs Python %d.%d (%s): attaching needs 3.14+ (PEP 768); "
                          "start it with 'memhound run --signal USR2 --snapshot FILE ...' instead"
                          % ((pid,) + t.version + (t.exe,)))
    why = _remote_debug_disabled(pid)
    if why:
        raise AttachError("remote debugging is disabled in process %d: %s" % (pid, why))
    return t


# ---- running a request in the target ---------------------------------------------

_MAX_RESULT = 256 << 20     # a result file larger than this is not one the agent wrote


def _open_private(path):
    """A regular file the target wrote into the private directory, opened
    for reading without following a link (the target's user controls that
    directory): a binary file object, OSError or ValueError."""
    fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ValueError("%s is not a regular file" % os.path.basename(path))
    return os.fdopen(fd, "rb")


class Session:
    """Requests to one target, each in its own private directory.

    Example::

        >>> s = Session(0, timeout=1.0)     # no process: nothing is sent
        >>> s.timeout
        1.0
    """

    def __init__(self, target, timeout=10.0):
        self.target = target
        self.timeout = timeout
        self.seq = 0

    def _owner(self):
        """The uid the private directory goes to: root attaching to another
        user's process hands it to that user (and root) only."""
        if os.geteuid() == 0 and self.target.uid not in (None, 0):
            return self.target.uid
        return None

    def _private_dir(self):
        """A new 0700 directory for one request (only this user can write
        there until _hand_over())."""
        try:
            return tempfile.mkdtemp(prefix="memhound-attach-%d-" % self.target.pid)
        except OSError as exc:
            raise AttachError("cannot make a private directory: %s" % (exc.strerror or exc)) from None

    def _write_private(self, d, name, blob):
        """Create d/name, never through a link, owned by the target's user."""
        fd = os.open(os.path.join(d, name), os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW,
                     0o600)
        try:
            view = memoryview(blob)
            while view:
                view = view[os.write(fd, view):]
            if self._owner() is not None:
                os.fchown(fd, self._owner(), -1)
        finally:
            os.close(fd)

    def _hand_over(self, d):
        """Give the directory to the target's user, after its files exist:
        that user may control it from now on, never before."""
        if self._owner() is not None:
            os.chown(d, self._owner(), -1)

    def request(self, command, **fields):
        """Run one command in the target: (result dict, private directory),
        or AttachError.

        Example::

            >>> t = Target(999999999); t.version = sys.version_info[:2]
            >>> Session(t, timeout=1).request("state")         # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            memhound.attach.AttachError: ...
        """
        d = self._private_dir()
        try:
            deadline = time.time() + self.timeout
            self._write_private(d, "request.json",
                                json.dumps(dict(fields, command=command)).encode("utf-8"))
            self._write_private(d, "attach.py",
                                _SCRIPT.format(directory=d, deadline=deadline).encode("utf-8"))
            self._hand_over(d)
        except OSError as exc:
            shutil.rmtree(d, ignore_errors=True)
            raise AttachError("cannot write the request for process %d: %s"
                              % (self.target.pid, exc.strerror or exc)) from None
        late = False
        try:
            self._remote_exec(os.path.join(d, "attach.py"))
            try:
                data = self.wait_for(d, "result.json", time.monotonic() + self.timeout)
            except _Late:
                late = True
                raise AttachError(
                    "process %d did not reach a safe point within %g s (its main thread may be "
                    "blocked in a C call or a sleep); nothing was done, and the request is "
                    "dropped if it runs later (--timeout to wait longer)"
                    % (self.target.pid, self.timeout)) from None
            return data, d
        except BaseException:
            if not late:
                shutil.rmtree(d, ignore_errors=True)
            raise

    def wait_for(self, directory, name, deadline):
        """The JSON result file `name` once it is there; _Late after
        `deadline` (time.monotonic()), AttachError if the target exits.

        Example::

            >>> import os, tempfile
            >>> d = tempfile.mkdtemp()
            >>> with open(os.path.join(d, "result.json"), "w") as f:
            ...     _ = f.write('{"ok": true}')
            >>> Session(Target(os.getpid())).wait_for(d, "result.json", time.monotonic() + 1)
            {'ok': True}
        """
        path = os.path.join(directory, name)
        while not os.path.exists(path):
            if time.monotonic() > deadline:
                raise _Late(name)
            if not os.path.exists("/proc/%d" % self.target.pid):
                raise AttachError("process %d exited before answering" % self.target.pid)
            time.sleep(_POLL)
        try:
            with _open_private(path) as f:
                blob = f.read(_MAX_RESULT + 1)
            if len(blob) > _MAX_RESULT:
                raise ValueError("%s is larger than %d bytes" % (name, _MAX_RESULT))
            return json.loads(blob)
        except (OSError, ValueError) as exc:
            raise AttachError("process %d gave an unreadable result (%s)"
                              % (self.target.pid, exc)) from None

    def call(self, command, **fields):
        """request(), the directory removed and the agent's refusals raised.

        Example::

            >>> t = Target(999999999); t.version = sys.version_info[:2]
            >>> Session(t, timeout=1).call("census")           # doctest: +ELLIPSIS
            Traceback (most recent call last):
            ...
            memhound.attach.AttachError: ...
        """
        data, d = self.request(command, **fields)
        shutil.rmtree(d, ignore_errors=True)
        self._check(data)
        return data

    def _check(self, data):
        if data.get("ok", False):
            return
        pid = self.target.pid
        err = data.get("error")
        if err == "import":
            raise AttachError("memhound is not importable in process %d (%s, Python %s, sys.path %s): "
                              "%s; install memhound into that environment"
                              % (pid, data.get("executable"), data.get("version"),
                                 data.get("path"), data.get("message")))
        if err == "not-tracing":
            raise AttachError("process %d is not tracing: run 'memhound attach %d --start' first"
                              % (pid, pid))
        raise AttachError("the request failed in process %d: %s" % (pid, data.get("message", err)))

    def _remote_exec(self, script):
        pid = self.target.pid
        if hasattr(sys, "remote_exec") and sys.version_info[:2] == self.target.version:
            try:
                sys.remote_exec(pid, script)
            except PermissionError:
                raise AttachError("no permission to attach to process %d: %s"
                                  % (pid, _ptrace_note())) from None
            except ProcessLookupError:
                raise AttachError("no process %d is running" % pid) from None
            except (RuntimeError, OSError) as exc:
                raise self._exec_error(str(exc)) from None
            return
        # This Python cannot (3.11-3.13) or may not (another version) do it:
        # the target's own interpreter can.
        exe = "/proc/%d/exe" % pid
        if os.geteuid() == 0:
            self._check_interpreter_trusted()
        try:
            proc = subprocess.run([exe, "-I", "-S", "-c", _HELPER, str(pid), script],
                                  capture_output=True, text=True, timeout=self.timeout)
        except (OSError, subprocess.TimeoutExpired) as exc:
            raise AttachError("this Python (%d.%d) has no sys.remote_exec for Python %d.%d and "
                              "could not run the target's interpreter (%s): run memhound attach "
                              "with Python %d.%d" % (sys.version_info[:2] + self.target.version
                                                     + (exc,) + self.target.version)) from None
        if proc.returncode == 3:
            raise AttachError("no permission to attach to process %d: %s" % (pid, _ptrace_note()))
        if proc.returncode == 4:
            raise AttachError("no process %d is running" % pid)
        if proc.returncode != 0:
            raise self._exec_error(proc.stderr.strip().splitlines()[-1] if proc.stderr.strip()
                                   else "exit status %d" % proc.returncode)

    def _check_interpreter_trusted(self):
        """As root, run the target's interpreter only if root owns it (and its
        libpython) and nobody else can write it: another user's binary run by
        root would be that user's code with root's rights."""
        pid = self.target.pid
        try:
            paths = [os.path.realpath("/proc/%d/exe" % pid)]
            maps = _read_proc(pid, "maps").decode("utf-8", "replace")
            paths += sorted(set(re.findall(r"(/\S*libpython3\.\d+\S*\.so\S*)", maps)))
            for path in paths:
                st = os.stat(path)
                if st.st_uid != 0 or st.st_mode & 0o022:
                    raise AttachError(
                        "as root, memhound runs a target's interpreter only when root owns it and "
                        "nobody else can write it, and %s is not: run memhound attach with Python "
                        "%d.%d" % ((path,) + self.target.version))
        except OSError as exc:
            raise AttachError("cannot check the interpreter of process %d (%s): run memhound "
                              "attach with Python %d.%d"
                              % ((pid, exc.strerror or exc) + self.target.version)) from None

    def _exec_error(self, text):
        pid = self.target.pid
        if "disable" in text.lower() or "not enabled" in text.lower():
            return AttachError("remote debugging is disabled in process %d: %s" % (pid, text))
        if "permission" in text.lower() or "not permitted" in text.lower():
            return AttachError("no permission to attach to process %d: %s" % (pid, _ptrace_note()))
        if "PyRuntime" in text:
            return AttachError("cannot find the Python runtime in process %d (still starting, or "
                               "not a CPython 3.14+ interpreter?): %s" % (pid, text))
        return AttachError("cannot attach to process %d: %s" % (pid, text))


# ---- the command -------------------------------------------------------------------

def _check_args(args):
    chosen = [name for name in ("census", "start", "stop", "snapshot", "watch", "detach")
              if getattr(args, name) is not None and getattr(args, name) is not False]
    if not chosen:
        raise AttachError("say what to do: --census, --start, --stop, --snapshot FILE, "
                          "--watch SECONDS or --detach")
    if len(chosen) > 1 and set(chosen) != {"start", "watch"}:
        raise AttachError("one of --census, --start, --stop, --snapshot, --watch, --detach at a "
                          "time (--start may come with --watch), got --%s" % ", --".join(chosen))
    if args.watch is not None and not 0 < args.watch <= 86400:
        raise AttachError("--watch must be between 0 and 86400 seconds, got %g" % args.watch)
    if not 1 <= args.times <= 10000:
        raise AttachError("--times must be between 1 and 10000, got %d" % args.times)
    if not 0 < args.timeout <= 3600:
        raise AttachError("--timeout must be between 0 and 3600 seconds, got %g" % args.timeout)
    if not 1 <= args.top <= 1000:
        raise AttachError("--top must be between 1 and 1000, got %d" % args.top)
    try:
        tracing.check_frames(args.frames, "--frames")
    except ValueError as exc:
        raise AttachError(str(exc)) from None
    if args.snapshot == "":
        raise AttachError("--snapshot needs a file name")
    if args.html and not (args.census or args.watch is not None):
        raise AttachError("--html goes with --census or --watch")
    return chosen


def run(args):
    """Run the ``attach`` command; returns the exit status.

    Example::

        >>> import argparse
        >>> p = add_arguments(argparse.ArgumentParser())
        >>> run(p.parse_args(["999999999", "--census"]))
        2
    """
    try:
        return _run(args)
    except AttachError as exc:
        print_error(str(exc), command="attach")
        return EXIT_ERROR
    except OSError as exc:
        print_error("%s" % (exc.strerror or exc), command="attach")
        return EXIT_ERROR
    except KeyboardInterrupt:
        print("memhound attach: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED


def _out(args):
    return sys.stderr if args.json == "-" else sys.stdout


def _write_json(args, data):
    if not args.json:
        return
    text = json.dumps(data, indent=2)
    if args.json == "-":
        print(text)
        return
    try:
        with open(args.json, "w", encoding="utf-8") as f:
            f.write(text + "\n")
    except OSError as exc:
        raise AttachError("cannot write %s: %s" % (args.json, exc.strerror or exc)) from None


def _write_html(args, title, leaks):
    if not args.html:
        return
    try:
        html.write_html(html.report_from_snapshots([], title=title, leaks=leaks), args.html)
    except OSError as exc:
        raise AttachError("cannot write %s: %s" % (args.html, exc.strerror or exc)) from None
    print("memhound: wrote %s" % args.html, file=sys.stderr)


def _run(args):
    _check_args(args)
    if args.snapshot:
        parent = os.path.dirname(os.path.abspath(args.snapshot))
        if not os.path.isdir(parent):
            raise AttachError("cannot write %s: no such directory %s" % (args.snapshot, parent))
    session = Session(check_target(args.pid), timeout=args.timeout)
    out = _out(args)
    pid = args.pid
    if args.census:
        t0 = time.perf_counter()
        data = session.call("census", types=args.top, holders=args.top)
        data["elapsed"] = time.perf_counter() - t0
        print(format_census(data), file=out)
        _write_json(args, {"pid": pid, "command": "census", "target": data["target"],
                           "elapsed": data["elapsed"], "census": data["census"]})
        _write_html(args, "memhound attach %d --census" % pid, [("census of %d" % pid,
                                                                 census_as_leak_report(data))])
        return EXIT_OK
    if args.start:
        data = session.call("start", frames=args.frames)
        print("memhound attach %d: %s" % (pid, data.get("note") or
                                          "tracing started (%d frames)" % args.frames), file=out)
        if args.watch is None:
            _write_json(args, {"pid": pid, "command": "start", "target": data["target"]})
            return EXIT_OK
    if args.stop:
        data = session.call("stop")
        print("memhound attach %d: %s" % (pid, data.get("note") or "tracing stopped"), file=out)
        _write_json(args, {"pid": pid, "command": "stop", "target": data["target"]})
        return EXIT_OK
    if args.snapshot:
        data, d = session.request("snapshot")
        try:
            session._check(data)
            try:
                src = _open_private(os.path.join(d, "snapshot.mhsnap"))
            except (OSError, ValueError) as exc:
                raise AttachError("process %d wrote no readable snapshot (%s)" % (pid, exc)) from None
            try:
                with src, open(args.snapshot, "wb") as dst:
                    shutil.copyfileobj(src, dst, 1 << 20)
            except OSError as exc:
                raise AttachError("cannot write %s: %s" % (args.snapshot, exc.strerror or exc)) from None
        finally:
            shutil.rmtree(d, ignore_errors=True)
        print("memhound attach %d: wrote %s" % (pid, args.snapshot), file=out)
        _write_json(args, {"pid": pid, "command": "snapshot", "file": args.snapshot,
                           "target": data["target"]})
        return EXIT_OK
    if args.detach:
        data = session.call("detach")
        print("memhound attach %d: detached (%s; memhound's modules stay imported)"
              % (pid, "tracing stopped" if data.get("stopped_tracing") else "was not tracing"),
              file=out)
        _write_json(args, {"pid": pid, "command": "detach", "target": data["target"]})
        return EXIT_OK
    return _watch(args, session, out)


def _watch(args, session, out):
    pid = args.pid
    intervals = []
    data, d = session.request("watch-begin", seconds=args.watch, times=args.times,
                              frames=args.frames)
    try:
        session._check(data)
        last = time.monotonic()
        for n in range(1, args.times + 1):
            # from the previous result: each interval also takes the target
            # its census and analysis
            try:
                data = session.wait_for(d, "result-%d.json" % n,
                                        last + args.watch + session.timeout)
            except _Late:
                raise AttachError("process %d gave no result for interval %d within %g s of its end "
                                  "(--timeout to wait longer)" % (pid, n, session.timeout)) from None
            last = time.monotonic()
            session._check(data)
            intervals.append(data)
            print(format_interval(n, args.times, data), file=out, flush=True)
    except BaseException:
        try:
            session.call("watch-end")
        except AttachError:
            pass
        raise
    finally:
        shutil.rmtree(d, ignore_errors=True)
    grew = bool(steady_groups(intervals))
    print(format_watch_summary(intervals, grew), file=out)
    _write_json(args, {"pid": pid, "command": "watch", "seconds": args.watch, "grew": grew,
                       "steady": [{"type": t, "path_text": p, "counts": c}
                                  for t, p, c in steady_groups(intervals)],
                       "target": intervals[-1]["target"] if intervals else None,
                       "intervals": [{"seconds": i["seconds"], "report": i["report"],
                                      "grown_lines": i["grown_lines"]} for i in intervals]})
    _write_html(args, "memhound attach %d --watch %g" % (pid, args.watch),
                [("interval %d (%.1f s)" % (n, i["seconds"]), i["report"])
                 for n, i in enumerate(intervals, 1)])
    return EXIT_GREW if grew else EXIT_OK


# ---- text ----------------------------------------------------------------------------

def format_census(data):
    """The census as text.

    Example::

        >>> from memhound._attach_agent import census, _describe
        >>> text = format_census({"census": census(types=3, holders=2), "target": _describe(),
        ...                       "elapsed": 0.5})
        >>> text.splitlines()[0]                              # doctest: +ELLIPSIS
        'memhound attach ...: census of Python ... objects, ... in 0.50 s'
    """
    c, t = data["census"], data["target"]
    lines = ["memhound attach %d: census of Python %s (%s): %s objects, %s in %.2f s"
             % (t["pid"], t["version"], t["executable"], format_count(c["objects"]),
                format_size(c["bytes"]), data.get("elapsed", c["stats"].get("t_total", 0)))]
    lines.append("  tracing: %s; threads: %s" % ("on (%d frames)" % t["frames"] if t["tracing"] else "off",
                                                 ", ".join(t["threads"])))
    lines.append("")
    lines.append("objects by type (%d types)" % c["types_seen"])
    width = max([len(e["type"]) for e in c["types"]] + [4])
    lines.append("  %-*s  %12s  %10s" % (width, "type", "count", "bytes"))
    for e in c["types"]:
        lines.append("  %-*s  %12s  %10s" % (width, e["type"], format_count(e["count"]),
                                               format_size(e["bytes"])))
    lines.append("")
    lines.append("biggest holders (objects held directly; keeps: with what those keep)")
    for n, h in enumerate(c["holders"], 1):
        lines.append("#%d %s: %s objects, keeps %s" % (n, h["type"], format_count(h["count"]),
                                                       format_size(h["keeps"])))
        lines.append("   held by: " + (h["path_text"] or "(no path from a root found)"))
        if h["contents"]:
            lines.append("   holds:   " + ", ".join("%s %s (%s)" % (format_count(e["count"]), e["type"],
                                                                    format_size(e["bytes"]))
                                                    for e in h["contents"]))
    return "\n".join(lines)


def census_as_leak_report(data):
    """The census's holders in the leak report's shape, for the HTML report.

    Example::

        >>> d = {"census": {"holders": [{"type": "list", "count": 3, "bytes": 80, "keeps": 200,
        ...      "contents": [], "path": [], "path_text": "module app -> global x (list)"}]}}
        >>> census_as_leak_report(d)["groups"][0]["retained_bytes"]
        200
    """
    groups = [{"type": h["type"], "count": h["count"], "bytes": h["bytes"],
               "retained_bytes": h["keeps"], "contents": h["contents"], "path": h["path"],
               "path_text": h["path_text"], "cause": "holder", "created_at": []}
              for h in data["census"]["holders"]]
    return {"leaked": False, "groups": groups, "census": True}


def format_interval(n, times, data):
    """One interval of --watch as text.

    Example::

        >>> rep = {"leaked": False, "groups": [], "deltas": {"blocks": [0], "objects": [0]}}
        >>> print(format_interval(1, 2, {"report": rep, "text": "no leak", "seconds": 1.0,
        ...                              "grown_lines": []}))
        interval 1/2 (1.0 s): blocks 0, objects 0 -- nothing new stays alive
    """
    rep = data["report"]
    d = rep["deltas"]
    head = "interval %d/%d (%.1f s): blocks %s, objects %s" % (
        n, times, data["seconds"], format_count(d["blocks"][0], sign=True),
        format_count(d["objects"][0], sign=True))
    if not rep["groups"]:
        return head + " -- nothing new stays alive"
    body = data["text"].split("\n")
    # The leak report's first lines speak of runs; the groups are what matter here.
    first = next((k for k, line in enumerate(body) if line.startswith("#")), len(body))
    lines = [head] + [line.replace(" per run, ", " in the interval, ") for line in body[first:]]
    if data["grown_lines"]:
        lines.append("   traced lines that grew:")
        for g in data["grown_lines"][:5]:
            lines.append("     %s:%s  %s, %s blocks" % (g["filename"], g["lineno"],
                                                        format_size(g["size_diff"], sign=True),
                                                        format_count(g["count_diff"], sign=True)))
    return "\n".join(lines) + "\n"


def steady_groups(intervals):
    """The refleak rule over time: [(type, path, counts)] of the groups that
    every interval left alive, their holder growing.  The same holder at
    another index is the same leak (its groups in one interval add up).  The
    process's block and object counts are not asked: in a server, other
    threads allocate and free meanwhile.  Left out: a group held only by a
    running frame's local (the main loop's current list is new in every
    interval without growing) or only from outside Python (the thread-state
    dict of a request in flight), and one whose holder is a plain container
    that did not grow (its entries were replaced).

    Example::

        >>> g = {"type": "app.Order", "path_text": "module app -> global _q (list) -> [7] -> app.Order",
        ...      "count": 3}
        >>> i = {"report": {"deltas": {"blocks": [9], "objects": [3]}, "groups": [g]}}
        >>> steady_groups([i, i])
        [('app.Order', 'module app -> global _q (list) -> [...] -> app.Order', [3, 3])]
    """
    kinds = {}
    for n, interval in enumerate(intervals):
        for g in interval["report"]["groups"]:
            path = re.sub(r"\[\d+\]", "[...]", g["path_text"] or "")
            root = (g.get("path") or [{}])[0].get("kind")
            if path.startswith("thread ") or root == "external":
                continue
            per = kinds.setdefault((g["type"], path), {})
            count, size = per.get(n, (0, None))
            held = g.get("holder_len")
            per[n] = (count + g["count"], held if size is None or held is None else max(size, held))
    out = []
    for (tp, path), per in kinds.items():
        if len(per) != len(intervals):
            continue
        seen = [per[n] for n in range(len(intervals))]
        sizes = [size for _count, size in seen]
        if None not in sizes and any(b <= a for a, b in zip(sizes, sizes[1:])):
            continue
        out.append((tp, path, [count for count, _size in seen]))
    return out


def format_watch_summary(intervals, grew):
    """The closing lines of --watch.

    Example::

        >>> format_watch_summary([], False)
        'no steady growth over 0 interval(s)'
    """
    if not grew:
        return "no steady growth over %d interval(s)" % len(intervals)
    lines = ["LEAK: memory grew in every one of %d intervals" % len(intervals)]
    for tp, path, counts in steady_groups(intervals):
        lines.append("  %s via %s: %s per interval" % (tp, path, ", ".join(map(str, counts))))
    return "\n".join(lines)
