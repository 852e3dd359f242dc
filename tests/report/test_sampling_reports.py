"""Sampled snapshots in the command line and the reports: `memhound run
--sample BYTES`, and the line saying that sizes and counts are estimates."""
import json
import re
import subprocess
import sys
import textwrap

import pytest

import memhound
from memhound import cli
from memhound.report import html

from conftest import child_env

NOTE = "sampled every 64 KiB: sizes and counts are estimates"

PROGRAM = textwrap.dedent("""\
    data = [bytes(1000) for _ in range(20000)]
    text = [str(i) * 30 for i in range(50000)]
""")


def _run(argv, cwd):
    return subprocess.run([sys.executable, "-m", "memhound"] + argv, cwd=cwd, capture_output=True,
                          text=True, env=child_env(NO_COLOR=None), timeout=120)


@pytest.mark.parametrize("value", ["12X", "0", "-4096", "KiB", "1.5MiB", ""])
def test_bad_sample_values_are_usage_errors(tmp_path, value):
    (tmp_path / "prog.py").write_text("print('ran')\n")
    proc = _run(["run", "--sample", value, "prog.py"], tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""                      # the program did not run
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "--sample" in lines[0] and "invalid size" in lines[0], lines


@pytest.mark.parametrize("text, value", [("4096", 4096), ("64KiB", 65536), ("64k", 65536),
                                         ("1MiB", 1 << 20), ("2M", 2 << 20), ("1GiB", 1 << 30)])
def test_sizes(text, value):
    assert cli.parse_size(text) == value


def test_run_sampled_reports_estimates(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    proc = _run(["run", "--sample", "64KiB", "--snapshot", "out.snap", "--html", "out.html",
                 "prog.py"], tmp_path)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.splitlines()
    # under both tables' titles: live memory at exit, and at the peak
    assert [lines[i + 1] for i, line in enumerate(lines)
            if line.startswith("memhound: ") and " top " in line] == [NOTE, NOTE]
    snap = memhound.Snapshot.load(str(tmp_path / "out.snap"))
    assert snap.sample_every == 65536
    sizes = {s.traceback[0].lineno: s.size for s in snap.statistics("lineno")
             if s.traceback[0].filename.endswith("prog.py")}
    assert 0.6 * 20000 * 1033 < sizes[1] < 1.4 * 20000 * 1033
    page = (tmp_path / "out.html").read_text()
    assert json.dumps(NOTE) in page
    # memhound top / compare of the sampled file say it too
    top = _run(["top", "out.snap"], tmp_path)
    assert top.returncode == 0 and top.stdout.splitlines()[1] == NOTE
    comp = _run(["compare", "out.snap", "out.snap"], tmp_path)
    assert comp.returncode == 0 and comp.stdout.splitlines()[1] == NOTE


def test_exact_reports_have_no_note(tmp_path):
    (tmp_path / "prog.py").write_text(PROGRAM)
    proc = _run(["run", "--snapshot", "out.snap", "prog.py"], tmp_path)
    assert proc.returncode == 0 and "estimates" not in proc.stderr
    top = _run(["top", "out.snap"], tmp_path)
    assert "estimates" not in top.stdout
    snap = memhound.Snapshot.load(str(tmp_path / "out.snap"))
    assert html.report_from_snapshots([("x", snap)])["sampling"] is None


def test_html_report_data_says_estimates():
    memhound.start(1, sample_every=65536)
    keep = [bytes(1000) for _ in range(5000)]
    snap = memhound.take_snapshot()
    memhound.stop()
    report = html.report_from_snapshots([("s", snap)])
    assert report["sampling"] == NOTE
    assert re.search(r"sampled every 64 KiB", html.render(report))
    del keep
