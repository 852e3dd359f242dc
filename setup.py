"""Build the memhound._core C extension.

Every ``src/memhound/_core/*.c`` file is compiled into one extension module.
``MEMHOUND_STRICT=1`` adds ``-Werror`` (CI and development);
``MEMHOUND_SANITIZE=1`` builds with AddressSanitizer + UndefinedBehaviorSanitizer;
``MEMHOUND_CHECK_DEPTH=1`` (implied by it) checks every captured traceback
against tracemalloc's plain stack walk and aborts on a difference.
"""
import glob
import os
import sys
import sysconfig

from setuptools import Extension, setup

# The engine reads CPython's internal frame and object layouts, which differ
# per version and in free-threaded builds: refuse what it was not written for
# here, with one line, rather than with a compiler error.
if sysconfig.get_config_var("Py_GIL_DISABLED"):
    sys.exit("memhound supports the default (GIL) builds of CPython 3.11 to 3.15; "
             "this is a free-threaded build (%s)" % sys.executable)
if not (3, 11) <= sys.version_info[:2] <= (3, 15):
    sys.exit("memhound supports CPython 3.11 to 3.15; this is %d.%d (%s)"
             % (sys.version_info[:2] + (sys.executable,)))

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

setup(
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
