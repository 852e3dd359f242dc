"""Growth watch: which allocation sites of a long-running process grow steadily.

``memhound.watch(interval)`` starts a thread that measures the live size of
every allocation site (file and line) every ``interval`` seconds.  It keeps
a bounded series of per-site sizes, never the snapshots: the measurements
are summarised per window of ``window`` samples as the window's minimum and
maximum, and when ``max_windows`` windows are kept, neighbouring windows are
merged (the series covers the whole run at a resolution that halves).

A site is reported as growing when the minima of the recent half of the
windows rise by a one-sided Mann-Kendall trend test at the stated
``confidence`` (per site, 0.99 by default) and by at least ``min_growth``
bytes.  The minima make a periodic batch peak (shorter than a window) count
for nothing; testing the recent half only means a cache that fills once and
then stays full is not reported once its filling is in the older half.  The
growth rate is the Theil-Sen slope of the same minima.

>>> import memhound
>>> w = memhound.watch(60, window=2, min_growth=1024)     # sampled by hand below
>>> hoard = []
>>> for _ in range(40):
...     hoard.append(bytearray(4096))                # the site that grows
...     _ = w.sample()
>>> w.stop()
>>> [(g.lineno, g.growth >= 4096 * 8) for g in w.growing()]
[(2, True)]
"""
import json
import math
import os
import re
import threading
import time
from importlib import resources

from . import tracing

__all__ = ["watch", "Watch", "Growth"]

_OWN_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def check_interval(value, name="interval"):
    """``value`` as a float number of seconds, or ValueError naming the problem.

    >>> check_interval("0.5"), check_interval(2)
    (0.5, 2.0)
    """
    where = f"{name}: " if name else ""
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{where}expected a number of seconds, got {value!r}") from None
    if isinstance(value, bool) or not (0 < seconds < math.inf):
        raise ValueError(f"{where}expected a positive, finite number of seconds, got {value!r}")
    return seconds


def _check_int(value, name, low):
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name}: expected an integer >= {low}, got {value!r}")
    return value


def mann_kendall(values):
    """(S, p) of the one-sided Mann-Kendall test for an upward trend: S
    counts increasing minus decreasing pairs; p is its normal
    approximation with the tie correction (and continuity correction).

    >>> s, p = mann_kendall([1, 2, 3, 4, 5, 6, 7, 8])
    >>> s, round(p, 5)
    (28, 0.00042)
    >>> mann_kendall([5, 5, 5, 5])
    (0, 1.0)
    """
    n = len(values)
    s = 0
    for i in range(n - 1):
        vi = values[i]
        for j in range(i + 1, n):
            d = values[j] - vi
            s += (d > 0) - (d < 0)
    ties = {}
    for v in values:
        ties[v] = ties.get(v, 0) + 1
    var = (n * (n - 1) * (2 * n + 5) - sum(t * (t - 1) * (2 * t + 5) for t in ties.values())) / 18
    if s <= 0 or var <= 0:
        return s, 1.0
    z = (s - 1) / math.sqrt(var)
    return s, 0.5 * math.erfc(z / math.sqrt(2))


def theil_sen(xs, ys):
    """Median of the slopes between every two points (robust to outliers).

    >>> theil_sen([0, 1, 2, 3, 4], [0, 10, 20, 30, 1000])
    10.0
    """
    slopes = sorted((ys[j] - ys[i]) / (xs[j] - xs[i])
                    for i in range(len(xs) - 1) for j in range(i + 1, len(xs)) if xs[j] != xs[i])
    if not slopes:
        return 0.0
    m = len(slopes) // 2
    return float(slopes[m]) if len(slopes) % 2 else (slopes[m - 1] + slopes[m]) / 2


class Growth:
    """One steadily growing site: where, how fast, how sure, and its series.

    ``windows`` is a list of (start, end, minimum, maximum) per window, times
    in seconds since the watch started; ``growth`` the rise of the minima
    over the tested windows and ``rate`` their Theil-Sen slope (bytes/s).

    >>> g = Growth("app.py", 12, "handle", 4096, 2048, 16.0, 1e-4, [(0, 1, 0, 10)], False)
    >>> g.site, g.confidence
    ('app.py:12', 0.9999)
    """

    __slots__ = ("filename", "lineno", "function", "size", "growth", "rate", "p_value",
                 "windows", "estimates")

    def __init__(self, filename, lineno, function, size, growth, rate, p_value, windows,
                 estimates):
        self.filename, self.lineno, self.function = filename, lineno, function
        self.size, self.growth, self.rate = size, growth, rate
        self.p_value, self.windows, self.estimates = p_value, windows, estimates

    @property
    def site(self):
        return f"{self.filename}:{self.lineno}"

    @property
    def confidence(self):
        return round(1 - self.p_value, 6)

    def as_dict(self):
        """The JSON-able form (see ``Watch.to_json``).

        >>> Growth("a.py", 1, None, 1, 1, 1.0, 0.5, [], False).as_dict()["site"]
        'a.py:1'
        """
        return {"site": self.site, "filename": self.filename, "lineno": self.lineno,
                "function": self.function, "size": self.size, "growth": self.growth,
                "rate": self.rate, "p_value": self.p_value, "confidence": self.confidence,
                "estimates": self.estimates,
                "windows": [list(w) for w in self.windows]}

    def __repr__(self):
        return (f"<Growth {self.site} +{self.growth} B ({self.rate:.0f} B/s), "
                f"p={self.p_value:.2g}>")


class _Site:
    __slots__ = ("function", "mins", "maxs", "cur_min", "cur_max", "seen", "last", "last_at")

    def __init__(self, function, nwindows):
        self.function = function
        self.mins = [0] * nwindows
        self.maxs = [0] * nwindows
        self.cur_min = self.cur_max = self.seen = self.last = self.last_at = 0


class Watch:
    """A growth watch (see the module's description); ``memhound.watch()``
    makes and starts one.  Use ``sample()`` to measure now, ``growing()``
    for the steadily growing sites, ``report()``, ``to_json()`` and
    ``write_html()`` for the results.

    >>> w = Watch(60, window=3)
    >>> w.interval, w.running, w.growing()
    (60.0, False, [])
    """

    def __init__(self, interval, *, window=5, min_windows=8, max_windows=64, confidence=0.99,
                 min_growth=64 * 1024, max_sites=1000):
        self.interval = check_interval(interval)
        self.window = _check_int(window, "window", 1)
        # below 6 windows, even a strictly rising series is not significant at 99%
        self.min_windows = _check_int(min_windows, "min_windows", 6)
        # after a merge, as many windows as a test needs must remain
        self.max_windows = _check_int(max_windows, "max_windows", 4 * self.min_windows)
        if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) \
                or not 0.5 <= confidence < 1:
            raise ValueError(f"confidence: expected a number in [0.5, 1), got {confidence!r}")
        self.confidence = float(confidence)
        if isinstance(min_growth, bool) or not isinstance(min_growth, (int, float)) \
                or not 0 <= min_growth < math.inf:
            raise ValueError(f"min_growth: expected a number of bytes >= 0, got {min_growth!r}")
        self.min_growth = min_growth
        self.max_sites = _check_int(max_sites, "max_sites", 1)
        self.sample_every = 0
        self.samples = 0
        self.note = None                 # why sampling stopped, if it did
        self._lock = threading.Lock()
        self._sites = {}
        self._windows = []               # (start, end) per closed window
        self._window_len = self.window   # samples per window; doubles with each merge
        self._in_window = 0
        self._window_start = None
        self._t0 = time.monotonic()
        self._stop = threading.Event()
        self._go = threading.Event()
        self._go.set()
        self._parked = threading.Event()
        self._sampling = threading.Lock()     # held by the thread while it samples
        self._thread = None
        self._started_tracing = False

    # ------------------------------------------------------------ running

    @property
    def running(self):
        return self._thread is not None and self._thread.is_alive()

    def start(self):
        """Start the sampling thread; start tracing (1 frame) first when
        memhound is not tracing yet, and stop it again in ``stop()``.

        >>> w = Watch(0.05).start()
        >>> w.running
        True
        >>> w.stop(); w.running
        False
        """
        from . import runner
        if self.running:
            raise RuntimeError("this watch is already running")
        with tracing.pause_tracing():
            if not tracing.is_tracing():
                tracing.start(1)
                self._started_tracing = True
            self._stop.clear()
            self._thread = threading.Thread(target=self._loop, name="memhound-watch",
                                            daemon=True)
            self._thread.start()
            runner._RECORDERS.append(self)   # parked while the leak finder measures
        return self

    def stop(self):
        """Stop sampling (the results stay readable); stop tracing if
        ``start()`` started it.

        >>> Watch(1).stop()            # stopping a watch that never ran is fine
        """
        from . import runner
        self._stop.set()
        self._go.set()
        if self in runner._RECORDERS:
            runner._RECORDERS.remove(self)
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join()
        if self._started_tracing:
            self._started_tracing = False
            if tracing.is_tracing():
                tracing.stop()

    def __enter__(self):
        return self if self.running else self.start()

    def __exit__(self, *exc):
        self.stop()
        return False

    def pause(self, timeout=10.0):
        """Stop the thread's sampling (``runner.recording_paused``): True once
        no sample runs; the thread parks when it next wakes up."""
        if not self.running or threading.current_thread() is self._thread:
            return False
        self._go.clear()
        if self._sampling.acquire(timeout=timeout):
            self._sampling.release()
            return True
        self._go.set()          # not paused: the caller will not resume() it
        return False

    def resume(self):
        self._go.set()

    # A sample holds the GIL for about one snapshot: the next one waits at
    # least SHARE times as long as the last took, so the watch costs the
    # program at most ~10% even when `interval` is too short for its heap.
    SHARE = 10

    def _loop(self):
        with tracing.pause_tracing():
            wait = self.interval
            while not self._stop.wait(wait):
                if not self._go.is_set():
                    self._parked.set()
                    self._go.wait()
                    self._parked.clear()
                    continue
                # this thread's CPU time: its wall time also counts the
                # program's threads that ran while it waited for the GIL
                t = time.thread_time()
                with self._sampling:
                    if not self._go.is_set():
                        continue
                    sampled = self.sample()
                if not sampled:
                    return
                wait = max(self.interval, self.SHARE * (time.thread_time() - t))

    # ------------------------------------------------------------ measuring

    def sample(self):
        """Measure every site's live size now; False once tracing has
        stopped (the watch then keeps what it has).

        >>> import memhound
        >>> memhound.start(); w = Watch(1); w.sample(), w.samples
        (True, 1)
        >>> memhound.stop(); w.sample(), w.note
        (False, 'tracing stopped')
        """
        with tracing.pause_tracing():
            try:
                snap = tracing.take_snapshot()
            except RuntimeError:
                self.note = "tracing stopped"
                return False
            rows = snap.traces._data.statistics(0, False)     # by line, biggest first
            rate = snap.sample_every
            del snap
            with self._lock:
                self._add(time.monotonic() - self._t0, rows, rate)
        return True

    def _add(self, now, rows, rate):
        self.sample_every = rate
        self.samples += 1
        if self._window_start is None:
            self._window_start = now
        sites, nwin, taken = self._sites, len(self._windows), 0
        for frames, functions, size, _count in rows:
            key = frames[0] if frames else ("<unknown>", 0)
            if key[0].startswith(_OWN_DIR):
                continue
            site = sites.get(key)
            if site is None:
                site = sites[key] = _Site(functions[0] if functions else None, nwin)
            if site.seen == 0 or size < site.cur_min:
                site.cur_min = size
            if size > site.cur_max:
                site.cur_max = size
            site.seen += 1
            site.last = size
            site.last_at = self.samples
            taken += 1
            if taken >= self.max_sites:
                break
        self._in_window += 1
        if self._in_window >= self._window_len:
            self._close_window(now)

    def _close_window(self, now):
        n = self._in_window
        for site in self._sites.values():
            site.mins.append(site.cur_min if site.seen == n else 0)
            site.maxs.append(site.cur_max)
            site.cur_min = site.cur_max = site.seen = 0
        self._windows.append((self._window_start, now))
        self._in_window = 0
        self._window_start = None
        if len(self._windows) >= self.max_windows:
            self._merge()

    def _merge(self):
        """Halve the resolution: windows 2i and 2i+1 become one."""
        def pairs(values, combine):
            out = [combine(values[i], values[i + 1]) for i in range(0, len(values) - 1, 2)]
            return out + values[len(values) & ~1:]
        self._windows = pairs(self._windows, lambda a, b: (a[0], b[1]))
        for key in list(self._sites):
            site = self._sites[key]
            site.mins = pairs(site.mins, min)
            site.maxs = pairs(site.maxs, max)
            if not any(site.maxs):
                del self._sites[key]
        self._window_len *= 2

    # ------------------------------------------------------------ results

    def growing(self):
        """The steadily growing sites, fastest first (empty until
        ``2 * min_windows`` windows are complete).

        >>> Watch(1).growing()
        []
        """
        with tracing.pause_tracing(), self._lock:
            windows = list(self._windows)
            n = len(windows)
            if n < 2 * self.min_windows:
                return []
            lo = n - max(self.min_windows, n // 2)
            times = [(a + b) / 2 for a, b in windows[lo:]]
            alpha = 1 - self.confidence
            found = []
            for (filename, lineno), site in self._sites.items():
                ys = site.mins[lo:n]
                if ys[-1] - ys[0] < self.min_growth or ys[-1] <= ys[0]:
                    continue
                _s, p = mann_kendall(ys)
                if p > alpha:
                    continue
                series = [(round(a, 3), round(b, 3), mn, mx) for (a, b), mn, mx
                          in zip(windows, site.mins, site.maxs)]
                size = site.last if site.last_at == self.samples else 0
                found.append(Growth(filename, lineno, site.function, size, ys[-1] - ys[0],
                                    theil_sen(times, ys), p, series, bool(self.sample_every)))
        found.sort(key=lambda g: (-g.rate, g.site))
        return found

    def summary(self):
        """What the watch covered, as a dict (part of ``to_json``).

        >>> sorted(Watch(1).summary())[:3]
        ['confidence', 'duration', 'estimates']
        """
        with self._lock:
            windows = list(self._windows)
            n = len(windows)
            tested = max(self.min_windows, n // 2) if n >= 2 * self.min_windows else 0
            return {"interval": self.interval, "samples": self.samples, "windows": n,
                    "samples_per_window": self._window_len, "tested_windows": tested,
                    "tested_since": windows[n - tested][0] if tested else None,
                    "duration": windows[-1][1] if windows else 0.0,
                    "confidence": self.confidence, "min_growth": self.min_growth,
                    "sample_every": self.sample_every, "estimates": bool(self.sample_every),
                    "test": "one-sided Mann-Kendall on per-window minima, recent half",
                    "note": self.note}

    def to_json(self):
        """The summary and the growing sites as JSON text.

        >>> json.loads(Watch(1).to_json())["growing"]
        []
        """
        return json.dumps({"summary": self.summary(),
                           "growing": [g.as_dict() for g in self.growing()]}, indent=1)

    def report(self, limit=10):
        """Plain-text report, one line per growing site.

        >>> print(Watch(1).report())            # doctest: +ELLIPSIS
        memhound watch: not enough data yet (0 of 16 windows of 5 samples every 1.0 s)
        """
        from .report.terminal import format_size
        s, found = self.summary(), self.growing()
        est = " (estimates: sampled tracing)" if s["estimates"] else ""
        if not s["tested_windows"]:
            return (f"memhound watch: not enough data yet ({s['windows']} of "
                    f"{2 * self.min_windows} windows of {s['samples_per_window']} samples every "
                    f"{self.interval} s)")
        head = (f"memhound watch: {len(found) or 'no'} site{'s' * (len(found) != 1)} growing "
                f"steadily{est} (Mann-Kendall on per-window minima, "
                f"{self.confidence:.0%} confidence per site, over the last "
                f"{s['duration'] - s['tested_since']:.1f} s of {s['duration']:.1f} s)")
        lines = [head]
        if found:
            lines.append(f"{'#':>3}  {'Rate':>12}  {'Growth':>10}  {'Live':>10}  Location")
        for i, g in enumerate(found[:limit], 1):
            where = g.site + (f" in {g.function}" if g.function else "")
            lines.append(f"{i:>3}  {format_size(g.rate) + '/s':>12}  "
                         f"{format_size(g.growth, sign=True):>10}  {format_size(g.size):>10}  "
                         f"{where}")
        if len(found) > limit:
            lines.append(f"     ... and {len(found) - limit} more")
        return "\n".join(lines)

    def write_json(self, path):
        """Write ``to_json()`` to a file.

        >>> import os, tempfile
        >>> Watch(1).write_json(os.path.join(tempfile.mkdtemp(), "watch.json"))
        """
        with tracing.pause_tracing():
            text = self.to_json()
            with open(path, "w", encoding="utf-8") as fp:
                fp.write(text + "\n")

    def write_html(self, path, title="memhound watch"):
        """Write a self-contained HTML page with one timeline per growing site.

        >>> import os, tempfile
        >>> path = os.path.join(tempfile.mkdtemp(), "watch.html")
        >>> Watch(1).write_html(path)
        >>> open(path, encoding="utf-8").read().startswith("<!DOCTYPE html>")
        True
        """
        with tracing.pause_tracing():
            text = render_html(self.summary(), self.growing(), title)
            with open(path, "w", encoding="utf-8") as fp:
                fp.write(text)


def watch(interval, **options):
    """Start a growth watch that samples every ``interval`` seconds; see
    ``Watch`` for the options and the results.

    >>> import memhound
    >>> w = memhound.watch(30)
    >>> w.running
    True
    >>> w.stop()
    """
    return Watch(interval, **options).start()


# ---------------------------------------------------------------- HTML

def _esc(text):
    return (str(text).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
            .replace('"', "&quot;"))


def _chart(g, tested_since=None, width=720, height=180):
    """An inline SVG line chart of a site's per-window minima (line) and
    maxima (shaded band), time in seconds across, bytes up; the tested
    windows on a tinted background."""
    from .report.terminal import format_size
    pad_l, pad_r, pad_t, pad_b = 70, 10, 10, 24
    pts = g.windows
    t0, t1 = pts[0][0], pts[-1][1]
    top = max(max(p[3] for p in pts), 1)
    span = (t1 - t0) or 1.0

    def x(t):
        return pad_l + (t - t0) / span * (width - pad_l - pad_r)

    def y(v):
        return pad_t + (1 - v / top) * (height - pad_t - pad_b)

    mids = [((a + b) / 2) for a, b, _mn, _mx in pts]
    band = " ".join(f"{x(t):.1f},{y(p[3]):.1f}" for t, p in zip(mids, pts))
    band += " " + " ".join(f"{x(t):.1f},{y(p[2]):.1f}" for t, p in reversed(list(zip(mids, pts))))
    line = " ".join(f"{x(t):.1f},{y(p[2]):.1f}" for t, p in zip(mids, pts))
    axis = []
    for frac in (0, 0.5, 1):
        v = top * frac
        axis.append(f'<text x="{pad_l - 6}" y="{y(v) + 4:.1f}" text-anchor="end">'
                    f'{_esc(format_size(int(v)))}</text>'
                    f'<line x1="{pad_l}" x2="{width - pad_r}" y1="{y(v):.1f}" y2="{y(v):.1f}" '
                    f'class="grid"/>')
    for t, anchor in ((t0, "start"), ((t0 + t1) / 2, "middle"), (t1, "end")):
        axis.append(f'<text x="{x(t):.1f}" y="{height - 6}" text-anchor="{anchor}">'
                    f'{t:.0f} s</text>')
    if tested_since is not None:
        axis.insert(0, f'<rect x="{x(tested_since):.1f}" y="{pad_t}" '
                       f'width="{x(t1) - x(tested_since):.1f}" height="{height - pad_t - pad_b}" '
                       f'class="tested"><title>tested windows</title></rect>')
    return (f'<svg viewBox="0 0 {width} {height}" width="100%" role="img" '
            f'aria-label="live size of {_esc(g.site)} over time">{"".join(axis)}'
            f'<polygon points="{band}" class="band"/>'
            f'<polyline points="{line}" class="min"/></svg>')


def render_html(summary, found, title="memhound watch"):
    """The HTML page: a summary and one chart per growing site.

    >>> render_html(Watch(1).summary(), []).count("<svg")
    0
    """
    from .report.terminal import format_size
    if summary["tested_windows"]:
        text = (f"{len(found)} site(s) growing steadily: one-sided Mann-Kendall test on the "
                f"per-window minima of the last {summary['tested_windows']} of "
                f"{summary['windows']} windows, {summary['confidence']:.0%} confidence per "
                f"site; {summary['samples']} samples every {summary['interval']} s.")
    else:
        text = (f"Not enough data yet: {summary['windows']} windows, "
                f"{summary['samples']} samples every {summary['interval']} s.")
    if summary["estimates"]:
        text += f" Sizes are estimates (sampled every {summary['sample_every']} bytes)."
    sections = []
    for g in found:
        where = g.site + (f" in {g.function}" if g.function else "")
        sections.append(
            f'<section class="site"><h2>{_esc(where)}</h2><p class="facts">'
            f'{_esc(format_size(g.rate))}/s, {_esc(format_size(g.growth, sign=True))} over the '
            f'tested windows, {_esc(format_size(g.size))} live at the last sample, '
            f'p = {g.p_value:.2g}</p>{_chart(g, summary["tested_since"])}</section>')
    page = resources.files("memhound.report").joinpath("watch.html").read_text(encoding="utf-8")
    parts = {"title": _esc(title), "summary": _esc(text),
             "sites": "".join(sections) or "<p>No site grows steadily.</p>"}
    return re.sub(r"\{\{(title|summary|sites)\}\}", lambda m: parts[m.group(1)], page)
