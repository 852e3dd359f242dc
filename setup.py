"""Build the memhound._core C extension.

Every ``src/memhound/_core/*.c`` file is compiled into one extension module.
``MEMHOUND_STRICT=1`` adds ``-Werror`` (CI and development);
``MEMHOUND_SANITIZE=1`` builds with AddressSanitizer + UndefinedBehaviorSanitizer;
``MEMHOUND_CHECK_DEPTH=1`` (implied by it) checks every captured traceback
against tracemalloc's plain stack walk and aborts on a difference.
Building needs a C compiler and the Python headers; without them the build
stops with one line that says what to install (docs/install.md).
"""
import glob
import os
import re
import subprocess
import sys
import sysconfig
import tempfile

import setuptools

# The engine reads CPython's internal frame and object layouts, which differ
# per version and in free-threaded builds: refuse what it was not written for
# here, with one line, rather than with a compiler error.
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit("memhound supports the default (GIL) builds of CPython 3.11 to 3.15; "
             "this is a free-threaded build (%s)" % sys.executable)
if not (3, 11) <= sys.version_info[:2] <= (3, 15):
    sys.exit("memhound supports CPython 3.11 to 3.15; this is %d.%d (%s)"
             % (sys.version_info[:2] + (sys.executable,)))
# pyproject.toml's SPDX `license` and `license-files` need setuptools 77; an older one
# (a build without isolation) would stop with a schema dump instead.
if int(setuptools.__version__.split(".")[0]) < 77:
    sys.exit("memhound: building needs setuptools 77 or newer; this is %s (%s): "
             "pip install -U 'setuptools>=77'" % (setuptools.__version__, sys.executable))

from setuptools import Extension, setup  # noqa: E402  (after the checks above)
from setuptools.command.build import build  # noqa: E402
from setuptools.command.build_ext import build_ext  # noqa: E402
from setuptools.command.egg_info import egg_info, write_file  # noqa: E402

flags = ["-std=gnu11", "-O2", "-Wall", "-Wextra", "-Wno-missing-field-initializers",
         "-fvisibility=hidden", "-fno-strict-aliasing"]
link = []
if os.environ.get("MEMHOUND_STRICT") == "1":
    flags.append("-Werror")
if os.environ.get("MEMHOUND_SANITIZE") == "1":
    san = ["-fsanitize=address,undefined", "-fno-omit-frame-pointer", "-fno-sanitize-recover=undefined"]
    flags += san + ["-O1", "-g"]
    link += san
if os.environ.get("MEMHOUND_CHECK_DEPTH") == "1" or os.environ.get("MEMHOUND_SANITIZE") == "1":
    flags.append("-DMH_CHECK_DEPTH")    # abort if a captured traceback is ever wrong
if os.environ.get("MEMHOUND_DEBUG") == "1":
    flags += ["-O0", "-g", "-UNDEBUG"]

sources = sorted(glob.glob("src/memhound/_core/*.c"))


def check_toolchain(command):
    """Exit with one line naming what to install unless the compiler the build will use
    compiles a file that includes Python.h.

    Without this, a missing compiler or header shows up as a setuptools traceback
    around a raw compiler error. The probe runs the build's own compiler command
    (CC, CFLAGS and the include path it will use), silently, once per process.
    """
    if getattr(check_toolchain, "done", False):
        return
    ext = command.get_finalized_command("build_ext")
    cc = ext.compiler if not isinstance(ext.compiler, (str, type(None))) else None
    if cc is None:
        from distutils.ccompiler import new_compiler        # setuptools' copy, as in build_ext
        from distutils.sysconfig import customize_compiler
        cc = new_compiler(compiler=ext.compiler)
        customize_compiler(cc)
    argv = list(cc.compiler_so) + ["-I" + d for d in ext.include_dirs or []]
    with tempfile.TemporaryDirectory() as tmp:
        for what, code in (("no working C compiler (%s)" % argv[0], "int main(void) { return 0; }\n"),
                           ("no Python.h in %s" % sysconfig.get_path("include"),
                            "#include <Python.h>\n")):
            src = os.path.join(tmp, "probe.c")
            with open(src, "w") as f:
                f.write(code)
            try:
                ok = subprocess.run(argv + ["-c", src, "-o", src + ".o"], stdout=subprocess.DEVNULL,
                                    stderr=subprocess.DEVNULL).returncode == 0
            except OSError:
                ok = False
            if not ok:
                sys.exit("memhound: cannot build its C extension: %s; install a C compiler and the "
                         "Python %d.%d development headers, e.g. `apt-get install gcc python3-dev` "
                         "(docs/install.md)" % ((what,) + sys.version_info[:2]))
    check_toolchain.done = True


class Build(build):
    # Before build_py prints a line per file: a missing compiler is then the only output.
    def run(self):
        if self.distribution.has_ext_modules():
            check_toolchain(self)
        super().run()


class BuildExt(build_ext):
    def build_extensions(self):
        check_toolchain(self)
        super().build_extensions()


# Bytecode and build products of a working tree: never sources, whether or not git is here.
NOT_SOURCES = re.compile(r"(^|/)__pycache__/|\.(py[cod]|so|o)$")


def ignored_by_git(paths):
    """The paths that git ignores, when this directory is a git work tree's top."""
    if not os.path.exists(".git"):
        return set()
    try:
        proc = subprocess.run(["git", "check-ignore", "--stdin", "-z"], input="\0".join(paths),
                              capture_output=True, text=True)
    except OSError:
        return set()
    return set(proc.stdout.split("\0")) - {""} if proc.returncode == 0 else set()


class EggInfo(egg_info):
    # MANIFEST.in grafts whole directories (tests/, examples/, ...); exclusion lines there
    # would print a warning on every clean tree, where they match nothing.  The sdist drops
    # here what git ignores (findings of the fuzzer, benchmark results, builds) instead.
    def find_sources(self):
        super().find_sources()
        files = self.filelist.files
        own = self.egg_info.replace(os.sep, "/") + "/"
        candidates = [f for f in files if not f.startswith(own)]
        drop = {f for f in candidates if NOT_SOURCES.search(f)} | ignored_by_git(candidates)
        if drop:
            self.filelist.files = [f for f in files if f not in drop]
            write_file(os.path.join(self.egg_info, "SOURCES.txt"), self.filelist.files)


setup(
    cmdclass={"build": Build, "build_ext": BuildExt, "egg_info": EggInfo},
    ext_modules=[
        Extension(
            "memhound._core",
            sources=sources,
            depends=sorted(glob.glob("src/memhound/_core/*.h")),
            extra_compile_args=flags,
            extra_link_args=link,
        )
    ]
)
