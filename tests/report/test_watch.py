"""Growth watch: the trend test flags steady growth and nothing else, the
series stays bounded, and `memhound run --watch` names a leaking request
handler's line while a server with a bounded cache and periodic spikes is
left alone."""
import json
import math
import random
import subprocess
import sys
import threading
import time

import pytest

import memhound
from memhound import runner
from memhound.watch import Watch, mann_kendall, theil_sen

from conftest import child_env, marker_line

KiB = 1024


@pytest.fixture
def traced():
    memhound.start(1)
    try:
        yield
    finally:
        memhound.stop()


def _lines(found):
    return [(g.filename, g.lineno) for g in found]


def test_leak_is_flagged_with_its_line(traced):
    w = Watch(60, window=3, min_windows=8)
    hoard, cache = [], {}
    for i in range(60):
        hoard.append(bytearray(8 * KiB))                    # watch-leak
        cache[i % 10] = bytearray(4 * KiB)                  # watch-bounded
        assert w.sample()
    found = w.growing()
    assert _lines(found) == [(__file__, marker_line(__file__, "watch-leak"))]
    g = found[0]
    assert g.function == "test_leak_is_flagged_with_its_line"
    assert g.p_value < 0.01 and g.growth >= 8 * 8 * KiB * 3 and g.rate > 0
    assert g.size >= 59 * 8 * KiB
    text = w.report()
    assert f"{__file__}:{g.lineno} in {g.function}" in text and "99% confidence" in text
    data = json.loads(w.to_json())
    assert [d["site"] for d in data["growing"]] == [g.site]
    assert data["summary"]["estimates"] is False and data["summary"]["samples"] == 60


def test_cache_that_fills_once_and_periodic_spikes_are_not_flagged(traced):
    w = Watch(60, window=4, min_windows=8)
    cache, batch = {}, None
    for i in range(96):
        if i < 30:                                          # fills during the first third
            for k in range(10):
                cache[(i, k)] = bytearray(4 * KiB)
        batch = [bytearray(64 * KiB) for _ in range(8)] if i % 4 == 1 else None
        assert w.sample()
    assert w.growing() == []
    assert "no sites growing" in w.report()
    del batch


def test_spikes_with_growing_peaks_but_flat_baseline_are_not_flagged(traced):
    w = Watch(60, window=4, min_windows=8)
    batch = None
    for i in range(80):
        batch = [bytearray(KiB) for _ in range(i * 4)] if i % 4 == 2 else None
        assert w.sample()
    assert w.growing() == []
    del batch


def test_not_enough_data_yet(traced):
    w = Watch(60, window=5, min_windows=8)
    hoard = []
    for _ in range(5 * 16 - 1):
        hoard.append(bytearray(16 * KiB))
        w.sample()
    assert w.growing() == [] and "not enough data yet" in w.report()
    hoard.append(bytearray(16 * KiB))
    w.sample()
    assert len(w.growing()) == 1


def test_series_stays_bounded_and_covers_the_run(traced):
    w = Watch(60, window=1, min_windows=6, max_windows=24)
    hoard = []
    for _ in range(200):
        hoard.append(bytearray(4 * KiB))                    # watch-bounded-leak
        w.sample()
    s = w.summary()
    assert s["windows"] < 24 and s["samples_per_window"] >= 8 and s["samples"] == 200
    (g,) = w.growing()
    assert g.lineno == marker_line(__file__, "watch-bounded-leak")
    assert len(g.windows) == s["windows"]
    mins = [m for _a, _b, m, _x in g.windows]
    assert mins == sorted(mins) and mins[-1] - mins[0] >= 150 * 4 * KiB


def test_site_that_went_away_reports_zero_live(traced):
    w = Watch(60, window=2, min_windows=6)
    hoard = []
    for _ in range(30):
        hoard.append(bytearray(16 * KiB))
        w.sample()
    del hoard[:]
    w.sample()
    (g,) = w.growing()
    assert g.size == 0


def test_mann_kendall_false_alarm_rate_matches_the_confidence():
    # Pure noise: one-sided test at 99% should fire for about 1% of series
    # (the normal approximation is slightly conservative for n = 10).  With
    # 4000 series, a rate above 2% has probability far below 1e-6.
    rng = random.Random(20)
    fired = sum(mann_kendall([rng.random() for _ in range(10)])[1] <= 0.01 for _ in range(4000))
    assert fired / 4000 < 0.02
    # and a steady trend with noise is found
    found = sum(mann_kendall([i + rng.random() * 3 for i in range(10)])[1] <= 0.01
                for _ in range(200))
    assert found > 150


def test_mann_kendall_and_theil_sen_values():
    s, p = mann_kendall(list(range(10)))
    assert s == 45 and p < 1e-4
    s, p = mann_kendall(list(range(10, 0, -1)))
    assert s == -45 and p == 1.0
    assert theil_sen([0, 1, 2, 3, 4, 5], [0, 2, 4, 6, 8, 10]) == 2.0
    assert theil_sen([1, 1], [0, 5]) == 0.0


@pytest.mark.parametrize("kwargs, words", [
    ({"interval": 0}, "positive"), ({"interval": -1}, "positive"),
    ({"interval": math.inf}, "finite"), ({"interval": math.nan}, "positive"),
    ({"interval": "soon"}, "number of seconds"), ({"interval": True}, "positive"),
    ({"interval": 1, "window": 0}, "window"), ({"interval": 1, "min_windows": 5}, "min_windows"),
    ({"interval": 1, "max_windows": 31}, "max_windows"),
    ({"interval": 1, "confidence": 1.0}, "confidence"),
    ({"interval": 1, "min_growth": -5}, "min_growth"),
    ({"interval": 1, "max_sites": 0}, "max_sites"),
])
def test_bad_arguments(kwargs, words):
    with pytest.raises(ValueError) as info:
        memhound.watch(**kwargs)
    assert words in str(info.value) and "\n" not in str(info.value)


def test_thread_samples_and_stop_ends_tracing_it_started():
    assert not memhound.is_tracing()
    w = memhound.watch(0.01)
    assert memhound.is_tracing() and w.running
    done = threading.Event()
    for _ in range(500):
        if w.samples >= 3:
            break
        done.wait(0.01)
    w.stop()
    assert w.samples >= 3 and not w.running and not memhound.is_tracing()
    with pytest.raises(RuntimeError):
        w.start() and w.start()
    w.stop()


def test_recording_paused_parks_the_watch(traced):
    w = memhound.watch(0.005)
    try:
        with runner.recording_paused():
            before = w.samples
            threading.Event().wait(0.1)
            assert w.samples == before
    finally:
        w.stop()


def test_pause_does_not_wait_for_the_next_sample(traced):
    # A watch sampling every 30 s pauses at once (the leak finder must not
    # wait for its next tick) and samples again after resume().
    w = memhound.watch(30)
    try:
        start = time.monotonic()
        assert w.pause(timeout=5)
        assert time.monotonic() - start < 2
        w.resume()
        assert w._go.is_set()
    finally:
        w.stop()


def test_survivors_refused_under_sampling_leaves_the_watch_running():
    memhound.start(1, sample_every=4 * KiB)
    w = memhound.watch(0.005)
    try:
        with pytest.raises(RuntimeError, match="exact"):
            with memhound.survivors():
                pass
        before = w.samples
        threading.Event().wait(0.3)
        assert w.samples > before, "the refused survivors() left the watch paused"
    finally:
        w.stop()
        memhound.stop()


def test_html_has_one_timeline_per_growing_site(traced, tmp_path):
    w = Watch(60, window=2, min_windows=6)
    a, b = [], []
    for _ in range(30):
        a.append(bytearray(16 * KiB))
        b.append(bytearray(32 * KiB))
        w.sample()
    path = tmp_path / "w.html"
    w.write_html(str(path), title="<demo>")
    page = path.read_text()
    assert page.count("<svg") == len(w.growing()) == 2
    body = page.split("<body>")[1]
    assert "&lt;demo&gt;" in page and "<script" not in page and "http" not in body


def test_sampled_snapshots_are_reported_as_estimates(tmp_path):
    memhound.start(1, sample_every=4 * KiB)
    try:
        w = Watch(60, window=2, min_windows=6)
        hoard = []
        for _ in range(30):
            hoard.append(bytearray(64 * KiB))
            w.sample()
    finally:
        memhound.stop()
    (g,) = w.growing()
    assert g.estimates and "estimates" in w.report()
    data = json.loads(w.to_json())
    assert data["summary"]["estimates"] and data["summary"]["sample_every"] == 4 * KiB
    w.write_html(str(tmp_path / "w.html"))
    assert "estimates" in (tmp_path / "w.html").read_text()


# ---------------------------------------------------------------- memhound run --watch

SERVER = """\
import threading, time, urllib.request
from wsgiref.simple_server import make_server, WSGIRequestHandler
import memhound.runner

_sessions = []


def app(environ, start_response):
    _sessions.append(bytearray(2048))          # leak
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"ok"]


class Quiet(WSGIRequestHandler):
    def log_message(self, *args):
        pass


def watch_samples():
    return max((getattr(r, "samples", 0) for r in memhound.runner._RECORDERS), default=0)


server = make_server("127.0.0.1", 0, app, handler_class=Quiet)
threading.Thread(target=server.serve_forever, daemon=True).start()
url = f"http://127.0.0.1:{server.server_port}/"
# A bounded loop of requests, about 10 per watch sample (however loaded the
# machine is), until the watch has taken 100 samples.
deadline = time.monotonic() + 120
served = 0
while time.monotonic() < deadline:
    n = watch_samples()
    if n >= 100:
        break
    if served >= 10 * (n + 1):
        time.sleep(0.005)
        continue
    with urllib.request.urlopen(url) as r:
        r.read()
    served += 1
server.shutdown()
server.server_close()
"""

# A bounded cache that fills during the first 30 samples, and a batch of
# 2.5 MiB held for about one sample in every seven.
STEADY = """\
import time
import memhound.runner

_cache = {}
_batch = None


def watch_samples():
    return max((getattr(r, "samples", 0) for r in memhound.runner._RECORDERS), default=0)


def handle(i, n):
    global _batch
    _cache[(min(n, 30), i % 10)] = bytearray(4096)             # cache
    if n % 7 == 0:
        if _batch is None:
            _batch = [bytearray(65536) for _ in range(40)]      # spike
    else:
        _batch = None


deadline = time.monotonic() + 120
i = 0
while time.monotonic() < deadline:
    n = watch_samples()
    if n >= 100:
        break
    handle(i, n)
    i += 1
    time.sleep(0.001)
"""


def _run_watch(tmp_path, source):
    script = tmp_path / "prog.py"
    script.write_text(source)
    out_json, out_html = tmp_path / "w.json", tmp_path / "w.html"
    proc = subprocess.run([sys.executable, "-m", "memhound", "run", "--watch", "0.05",
                           "--watch-json", str(out_json), "--watch-html", str(out_html),
                           str(script)], capture_output=True, text=True, env=child_env(),
                          timeout=180)
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out_json.read_text())
    assert data["summary"]["samples"] >= 100, proc.stderr
    return script, data, out_html.read_text(), proc.stderr


def test_run_watch_names_the_leaking_request_handler(tmp_path):
    script, data, page, err = _run_watch(tmp_path, SERVER)
    line = marker_line(str(script), "leak")
    assert [g["site"] for g in data["growing"]] == [f"{script}:{line}"], err
    assert data["growing"][0]["function"] == "app"
    assert f"{script}:{line} in app" in err and "growing steadily" in err
    assert page.count("<svg") == 1 and f"{script}:{line}" in page


def test_run_watch_leaves_a_bounded_cache_with_spikes_alone(tmp_path):
    script, data, page, err = _run_watch(tmp_path, STEADY)
    assert data["growing"] == [], err
    assert "no sites growing steadily" in err
    # the spike was seen (its window maxima) but its minima stay at zero
    assert "<svg" not in page


@pytest.mark.parametrize("argv, words", [
    (["--watch", "0"], "--watch"), (["--watch", "-2"], "--watch"),
    (["--watch", "nan"], "--watch"), (["--watch", "often"], "--watch"),
    (["--watch-json", "x.json"], "need --watch"), (["--watch-html", "x.html"], "need --watch"),
])
def test_run_watch_bad_arguments(tmp_path, argv, words):
    script = tmp_path / "p.py"
    script.write_text("print('ran')\n")
    proc = subprocess.run([sys.executable, "-m", "memhound", "run", *argv, str(script)],
                          capture_output=True, text=True, env=child_env(), timeout=60)
    assert proc.returncode == 2
    assert len(proc.stderr.strip().splitlines()) == 1 and words in proc.stderr
    assert "ran" not in proc.stdout
