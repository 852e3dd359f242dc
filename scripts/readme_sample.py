#!/usr/bin/env python3
"""README's sample output, produced by running README's first command.

    python scripts/readme_sample.py            # run it, rewrite the sample block in README.md
    python scripts/readme_sample.py --check    # exit 1 (and say why) if README's sample is stale

The sample is the output of ``memhound leaks examples/leaky_app.py:handle_request``
(this checkout's memhound) with the checkout's path left out of file names.
``--check`` and tests/tooling/test_readme_sample.py compare structure, not
text: the verdict, the objects per run, each group's number, type, object
counts and cause, the holder path, the kept types, the creation frames and
the fix's source line; sizes, block counts and absolute paths may differ
between runs and Python versions.
"""
import glob
import os
import re
import subprocess
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COMMAND = ["leaks", "examples/leaky_app.py:handle_request"]
START = "<!-- sample:start -->"
END = "<!-- sample:end -->"


def sample_output(root=ROOT, pythonpath=None):
    """The command's stdout with ``root`` left out of paths; and its status.
    ``pythonpath``: the directory holding the memhound to run (default: this
    checkout's src/ when the extension is built there, else the installed one).

    >>> text, status = sample_output()
    >>> status, text.startswith("LEAK: "), ROOT in text
    (1, True, False)
    """
    env = dict(os.environ, NO_COLOR="1")
    if pythonpath is None and glob.glob(os.path.join(root, "src", "memhound", "_core*.so")):
        pythonpath = os.path.join(root, "src")
    if pythonpath:
        env["PYTHONPATH"] = pythonpath + os.pathsep + env.get("PYTHONPATH", "")
    res = subprocess.run([sys.executable, "-m", "memhound"] + COMMAND, cwd=root, env=env,
                         capture_output=True, text=True, timeout=300)
    return res.stdout.replace(root + os.sep, ""), res.returncode


def readme_block(text):
    """The sample inside README's markers (without the code fence), or None.

    >>> readme_block("a\\n<!-- sample:start -->\\n```\\n$ x\\nout\\n```\\n<!-- sample:end -->\\n")
    'out\\n'
    """
    if START not in text or END not in text:
        return None
    block = text[text.index(START) + len(START):text.index(END)]
    lines = [line for line in block.strip("\n").splitlines() if not line.startswith("```")]
    if lines and lines[0].startswith("$ "):
        lines = lines[1:]
    return "".join(line + "\n" for line in lines)


def structure(report):
    """What must not change between the README's sample and a fresh run.

    >>> structure("LEAK: every measured run left memory behind (3 warm-up, 5 measured runs)\\n"
    ...           "  objects  [1, 1]\\n  bytes    [403, 427]\\n"
    ...           "#1 a.B: 5 object(s), 1 per run, 735 bytes  [global-collection]\\n"
    ...           "   keeps:   str 10 (495 B), a.B 5 (240 B)\\n")
    ... # doctest: +NORMALIZE_WHITESPACE
    [('verdict', 'LEAK: every measured run left memory behind (3 warm-up, 5 measured runs)'),
     ('objects', '[1, 1]'), ('group', '1', 'a.B', '5', '1', 'global-collection'),
     ('keeps', ('str 10', 'a.B 5'))]
    """
    out = []
    frames = False
    for line in report.splitlines():
        s = line.strip()
        m = re.match(r"#(\d+) (\S+): (\d+) object\(s\), (\d+) per run, .*\[([\w-]+)\]$", s)
        if s.startswith(("LEAK:", "no leak", "NO LEAK")):
            out.append(("verdict", s))
        elif s.startswith("objects "):
            out.append(("objects", s.split(None, 1)[1]))
        elif m:
            out.append(("group",) + m.groups())
        elif s.startswith("held by:"):
            out.append(("held by", s.split(":", 1)[1].strip()))
        elif s.startswith("keeps:"):
            kept = re.findall(r"([\w.<>]+ \d+) \(", s)
            out.append(("keeps", tuple(kept)))
        elif s == "created at:":
            frames = True
            continue
        elif s.startswith("fix:"):
            code = re.search(r"`([^`]*)` at (\S+?:\d+)", s)
            out.append(("fix", code.groups() if code else s))
        elif frames and re.match(r"\S+:\d+ in \S+$", s):
            out.append(("frame", s))
            continue
        frames = False
    return out


def write(readme, sample):
    """README text with its sample block replaced by ``sample``.

    >>> write("x\\n<!-- sample:start -->\\nold\\n<!-- sample:end -->\\n", "new\\n").splitlines()
    ... # doctest: +NORMALIZE_WHITESPACE
    ['x', '<!-- sample:start -->', '```', '$ memhound leaks examples/leaky_app.py:handle_request',
     'new', '```', '<!-- sample:end -->']
    """
    a = readme.index(START) + len(START)
    b = readme.index(END)
    block = "\n```\n$ memhound " + " ".join(COMMAND) + "\n" + sample + "```\n"
    return readme[:a] + block + readme[b:]


def main(argv=None):
    argv = sys.argv[1:] if argv is None else argv
    path = os.path.join(ROOT, "README.md")
    with open(path, encoding="utf-8") as f:
        readme = f.read()
    if readme_block(readme) is None:
        print(f"readme_sample: no {START} ... {END} block in {path}", file=sys.stderr)
        return 2
    sample, status = sample_output()
    if status != 1 or not sample:
        print(f"readme_sample: the command exited {status} (expected 1: a leak)", file=sys.stderr)
        return 2
    if argv == ["--check"]:
        old, new = structure(readme_block(readme)), structure(sample)
        if old != new:
            print("readme_sample: README's sample is stale; run python scripts/readme_sample.py\n"
                  f"  README: {old}\n  now:    {new}", file=sys.stderr)
            return 1
        return 0
    if argv:
        print("usage: python scripts/readme_sample.py [--check]", file=sys.stderr)
        return 2
    with open(path, "w", encoding="utf-8") as f:
        f.write(write(readme, sample))
    print(f"readme_sample: wrote the sample into {path}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
