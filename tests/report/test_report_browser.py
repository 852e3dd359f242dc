"""The HTML report in a real headless Chromium: no JavaScript error, the flame
graph, chart, table and leak chain render with the expected labels, zoom,
search and sort work; a screenshot is kept as a test artifact.

Needs Debian's ``chromium`` (``apt-get install -y chromium``); skipped if absent.
"""
import html as html_escape
import json
import os
import re
import shutil
import subprocess
import tempfile

import pytest

import memhound
from memhound.report import html

from conftest import SAMPLE_LEAK_REPORT

MiB = 1024 * 1024
CHROMIUM = next((p for p in (shutil.which(n) for n in ("chromium", "chromium-browser", "google-chrome"))
                 if p), None)
pytestmark = pytest.mark.skipif(
    CHROMIUM is None, reason="headless Chromium not installed (apt-get install -y chromium)")

ARTIFACTS = os.environ.get("MEMHOUND_ARTIFACTS") or os.path.join(tempfile.gettempdir(), "memhound-artifacts")

RAW = ([(0, MiB, (("/srv/app/cache.py", 12, ), ("/srv/app/main.py", 30)), 2)] * 3
       + [(0, 512 * 1024, (("/srv/app/db.py", 44), ("/srv/app/main.py", 31)), 2)] * 2
       + [(0, 3000, (("/srv/lib/util.py", 5), ("/srv/app/main.py", 30)), 2)])
TIMELINE = [[i * 0.5, int(MiB * i * 0.8), int(MiB * i * 0.8) + 1000] for i in range(9)]

PROBE = """<script>
(function () {
  var out = {};
  out.before = document.getElementById("mh-flame").getAttribute("data-labels");
  out.zoomed = window.__mh.zoom("main.py:31");
  out.focus = document.getElementById("mh-flame").getAttribute("data-focus");
  out.afterZoom = JSON.parse(document.getElementById("mh-flame").getAttribute("data-labels"));
  out.match = window.__mh.search("cache");
  window.__mh.sortSites("count");
  out.firstSite = document.querySelector("#mh-sites tbody td.loc").textContent;
  out.siteRows = document.querySelectorAll("#mh-sites tbody tr").length;
  document.documentElement.setAttribute("data-probe", JSON.stringify(out));
})();
</script>"""


def _chromium(url, tmp_path, *extra):
    profile = tmp_path / "chromium-profile"
    cmd = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--no-first-run",
           f"--user-data-dir={profile}", "--enable-logging=stderr", "--v=0",
           "--virtual-time-budget=5000", "--window-size=1280,1500", *extra, url]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=120)


def _attr(dom, name):
    m = re.search(r"<html[^>]*\s" + name + r'="([^"]*)"', dom)
    return html_escape.unescape(m.group(1)) if m else None


def _console_errors(stderr):
    return [line for line in stderr.splitlines()
            if "CONSOLE" in line and ("Uncaught" in line or "Error" in line)]


@pytest.fixture
def report_file(tmp_path):
    snap = memhound.Snapshot(tuple(RAW), 16)
    snap.metadata = {"memhound": {"kind": "exit", "time": 4.0, "timeline": TIMELINE}}
    report = html.report_from_snapshots([("app.snap", snap)], title="browser test",
                                        leaks=[("leaks.json", SAMPLE_LEAK_REPORT)])
    path = tmp_path / "report.html"
    html.write_html(report, str(path))
    return path


def test_report_renders_without_errors(report_file, tmp_path):
    res = _chromium(report_file.as_uri(), tmp_path, "--dump-dom")
    dom = res.stdout
    assert res.returncode == 0, res.stderr[-2000:]
    assert _attr(dom, "data-js-errors") is None, _attr(dom, "data-js-errors")
    assert not _console_errors(res.stderr)
    assert _attr(dom, "data-rendered") == "flame timeline sites leaks"
    labels = json.loads(re.search(r'id="mh-flame"[^>]*data-labels="([^"]*)"', dom).group(1)
                        .replace("&quot;", '"'))
    # every frame wide enough for text is labelled; util.py:5 (3000 B) is too narrow
    assert sorted(labels) == ["all (4.0 MiB)", "cache.py:12", "db.py:44", "main.py:30", "main.py:31"]
    chart = json.loads(_attr(dom, "data-chart-labels"))
    assert {"current traced memory", "peak", "time (s)", "0 B", "4.0 MiB", "2 s"} <= set(chart)
    assert "4.0 MiB live in 6 blocks (app.snap)" in dom
    # the leak group's path is drawn as a chain of nodes ending at the leaked type
    chain = re.search(r'<div class="chain">(.*?)</div>', dom, re.S).group(1)
    assert re.findall(r'<span class="label">([^<]*)</span>', chain) == ["app", "_seen", "[41]", "app.Record"]
    assert "global-collection" in dom and "drop entries from _seen when done" in dom


def test_zoom_search_sort_and_screenshot(report_file, tmp_path):
    probed = tmp_path / "probed.html"
    probed.write_text(report_file.read_text().replace("</body>", PROBE + "</body>"))
    res = _chromium(probed.as_uri(), tmp_path, "--dump-dom")
    assert _attr(res.stdout, "data-js-errors") is None, _attr(res.stdout, "data-js-errors")
    probe = json.loads(_attr(res.stdout, "data-probe"))
    assert probe["zoomed"] is True and probe["focus"] == "main.py:31"
    # zoomed on main.py:31: its ancestors and descendants only
    assert sorted(probe["afterZoom"]) == ["all (4.0 MiB)", "db.py:44", "main.py:31"]
    assert probe["match"] == "matched 3.0 MiB (74.9%)"
    assert probe["firstSite"] == "/srv/app/cache.py:12" and probe["siteRows"] == 3

    os.makedirs(ARTIFACTS, exist_ok=True)
    shot = os.path.join(ARTIFACTS, "report.png")
    if os.path.exists(shot):
        os.remove(shot)
    res = _chromium(report_file.as_uri(), tmp_path, f"--screenshot={shot}")
    assert os.path.getsize(shot) > 10000, res.stderr[-2000:]
    with open(shot, "rb") as fp:
        assert fp.read(8) == b"\x89PNG\r\n\x1a\n"
    print(f"\nscreenshot of the HTML report: {shot}")


def test_error_detector_catches_script_errors(report_file, tmp_path):
    # negative control: a page that throws must be reported as failing
    broken = tmp_path / "broken.html"
    broken.write_text(report_file.read_text().replace(
        "</body>", "<script>undefinedFunction();</script></body>"))
    res = _chromium(broken.as_uri(), tmp_path, "--dump-dom")
    errors = json.loads(_attr(res.stdout, "data-js-errors"))
    assert len(errors) == 1 and "undefinedFunction" in errors[0]
