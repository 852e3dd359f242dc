"""Sampled tracing: start(nframe, sample_every=BYTES).

Each allocation of s bytes is recorded with probability p = 1 - exp(-s / R)
and stands for w = 1 / p blocks, so per-site bytes (sum of s * w) and counts
(sum of w) are unbiased estimates.  The accuracy tests compare them with
the exact values of the same workload traced by memhound's exact mode.
"""
import ctypes
import os
import math
import pickle
import sys

import pytest

import memhound
from conftest import marker_line, run_child
from memhound import _core

R = memhound.DEFAULT_SAMPLE_EVERY


@pytest.fixture(autouse=True)
def _stopped():
    if memhound.is_tracing():
        memhound.stop()
    yield
    if memhound.is_tracing():
        memhound.stop()
    _core._set_sample_seed(None)


def weight(size, rate):
    return 1.0 / -math.expm1(-size / rate)


# ---------------------------------------------------------------- the workload

# Sites of known sizes, all above 1 % of the live memory they make: bytes
# objects (one allocation of getsizeof() bytes each), small str, dicts and
# big buffers; `scale` multiplies every count.
def workload(scale=1):
    small = [str(i).zfill(60) for i in range(int(120_000 * scale))]           # site:small
    medium = [bytes(1000 + i % 7) for i in range(int(12_000 * scale))]        # site:medium
    dicts = [{"a": i, "b": i} for i in range(int(40_000 * scale))]            # site:dicts
    big = [bytearray(300_000) for _ in range(int(20 * scale))]                # site:big
    return small, medium, dicts, big


def site_sizes(snapshot):
    """{lineno: (size, count)} of this file's lines."""
    return {s.traceback[0].lineno: (s.size, s.count)
            for s in snapshot.statistics("lineno") if s.traceback[0].filename == __file__}


def exact_run(scale=1):
    memhound.start(1)
    keep = workload(scale)
    snap = memhound.take_snapshot()
    memhound.stop()
    del keep
    return snap


def sampled_run(rate, seed, scale=1):
    _core._set_sample_seed(seed)
    memhound.start(1, sample_every=rate)
    keep = workload(scale)
    snap = memhound.take_snapshot()
    traced = memhound.get_traced_memory()[0]
    memhound.stop()
    del keep
    return snap, traced


def big_sites(exact):
    """The lines holding more than 1 % of the live memory of the exact run."""
    total = sum(s.size for s in exact.statistics("lineno"))
    return {line: sc for line, sc in site_sizes(exact).items() if sc[0] > total / 100}


# ---------------------------------------------------------------- the API

def test_rate_is_reported_and_kept():
    assert memhound.get_sample_every() == 0
    memhound.start(3, sample_every=65536)
    assert memhound.get_sample_every() == 65536
    snap = memhound.take_snapshot()
    assert snap.sample_every == 65536 and snap.traceback_limit == 3
    # start() while tracing keeps both the traceback limit and the rate
    memhound.start(5)
    assert memhound.get_sample_every() == 65536 and memhound.get_traceback_limit() == 3
    memhound.stop()
    assert memhound.get_sample_every() == 0
    memhound.start(1)
    assert memhound.get_sample_every() == 0 and memhound.take_snapshot().sample_every == 0


@pytest.mark.parametrize("bad, error", [(-1, ValueError), (2 ** 63, ValueError),
                                        (1.5, TypeError), (True, TypeError), ("4096", TypeError)])
def test_bad_rates(bad, error):
    with pytest.raises(error, match="sample_every"):
        memhound.start(1, sample_every=bad)
    assert not memhound.is_tracing()


def test_same_seed_same_samples_and_other_seeds_differ():
    # In fresh processes: the samples depend on every byte allocated since
    # start(), so only the same program from the same state repeats them.
    code = """
        import os, sys
        os.environ["MEMHOUND_SAMPLE_SEED"] = sys.argv[1] if len(sys.argv) > 1 else "%s"
        import memhound
        memhound.start(1, sample_every=%d)
        keep = [bytes(100 + i %% 900) for i in range(100_000)]
        data = memhound.take_snapshot().traces._data
        print(sorted(data.recorded_size(i) for i in range(len(data))))
    """
    first = run_child(code % ("11", R)).stdout
    assert len(eval(first)) > 20
    assert run_child(code % ("11", R)).stdout == first
    assert run_child(code % ("12", R)).stdout != first


def test_seed_from_environment(monkeypatch):
    monkeypatch.setenv("MEMHOUND_SAMPLE_SEED", "not a number")
    with pytest.raises(ValueError, match="MEMHOUND_SAMPLE_SEED"):
        memhound.start(1, sample_every=R)
    assert not memhound.is_tracing()


def test_unsampled_objects_have_no_traceback():
    # 2**40 bytes between samples: no small object is ever recorded
    memhound.start(1, sample_every=1 << 40)
    objs = [bytes(100) for _ in range(1000)]
    assert all(memhound.get_object_traceback(o) is None for o in objs)
    assert len(memhound.take_snapshot().traces) < 5
    memhound.stop()
    # one byte between samples: a 100-byte block is recorded unless
    # exp(-100) happens, and then its weight is 1 (the exact value)
    memhound.start(1, sample_every=1)
    objs = [bytes(100) for _ in range(1000)]
    tbs = [memhound.get_object_traceback(o) for o in objs]
    assert all(tb is not None and tb[0].filename == __file__ for tb in tbs)
    memhound.stop()


def test_sampled_and_unsampled_frees_keep_the_tables_consistent():
    _core._set_sample_seed(3)
    memhound.start(1, sample_every=4096)
    before = memhound.get_traced_memory()[0]
    for _ in range(5):
        objs = [bytes(50 + i % 400) for i in range(50_000)]
        assert memhound.get_traced_memory()[0] > before + 10_000_000
        del objs
    # every recorded block was freed again, whether it was sampled or not
    after = memhound.get_traced_memory()[0]
    assert abs(after - before) < 1_000_000
    snap = memhound.take_snapshot()
    assert sum(s.size for s in site_sizes(snap).values()) < 1_000_000
    memhound.stop()


def test_traced_memory_is_the_estimate():
    _core._set_sample_seed(5)
    memhound.start(1, sample_every=R)
    keep = workload(0.5)
    current = memhound.get_traced_memory()[0]
    snap = memhound.take_snapshot()
    total = sum(s.size for s in snap.statistics("lineno"))
    # the same per-block estimates, summed by the hooks and by the snapshot
    assert abs(current - total) < 64 * 1024
    # and they are estimates, not the recorded bytes
    recorded = sum(snap.traces._data.recorded_size(i) for i in range(len(snap.traces)))
    assert recorded < total / 2
    memhound.stop()
    del keep


def test_trace_sizes_and_counts_are_weighted():
    _core._set_sample_seed(9)
    memhound.start(1, sample_every=R)
    keep = [bytes(1000) for _ in range(20_000)]
    snap = memhound.take_snapshot()
    memhound.stop()
    data = snap.traces._data
    line = site_sizes(snap)
    stat = next(s for s in snap.statistics("traceback")
                if s.traceback[0].filename == __file__)
    mine = [i for i in range(len(data)) if snap.traces[i].traceback[0].filename == __file__
            and snap.traces[i].traceback[0].lineno == stat.traceback[0].lineno]
    assert mine and line
    for i in mine:
        s = data.recorded_size(i)
        assert snap.traces[i].size == round(s * weight(s, R))
    assert stat.size == sum(snap.traces[i].size for i in mine)
    assert stat.count == round(sum(weight(data.recorded_size(i), R) for i in mine))
    del keep


def test_realloc_calloc_and_raw_blocks():
    rate = 4096
    _core._set_sample_seed(21)
    memhound.start(1, sample_every=rate)
    grown = []
    for i in range(200_000):                  # list storage: realloc after realloc
        grown.append(i)  # site:grown
    zeroed = [bytearray(2000) for _ in range(5_000)]  # site:zeroed
    raw = ctypes.pythonapi.PyMem_RawMalloc
    raw.restype, raw.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    rawre = ctypes.pythonapi.PyMem_RawRealloc
    rawre.restype, rawre.argtypes = ctypes.c_void_p, [ctypes.c_void_p, ctypes.c_size_t]
    rawfree = ctypes.pythonapi.PyMem_RawFree
    rawfree.argtypes = [ctypes.c_void_p]
    before_raw = memhound.get_traced_memory()[0]
    blocks = [raw(100_000) for _ in range(50)]    # recorded with p = 1 - exp(-24)
    blocks = [rawre(b, 200_000) for b in blocks]
    after_raw = memhound.get_traced_memory()[0]
    snap = memhound.take_snapshot()
    for b in blocks:
        rawfree(b)
    after_free = memhound.get_traced_memory()[0]
    memhound.stop()
    assert abs((after_raw - before_raw) - 50 * 200_000) < 500_000
    assert abs((after_raw - after_free) - 50 * 200_000) < 500_000
    sizes = {s.traceback[0].lineno: s.size for s in snap.statistics("lineno")
             if s.traceback[0].filename == __file__}
    # a realloc'd storage block of ~1.6 MB: recorded with certainty, weight 1
    storage = sys.getsizeof(grown) - sys.getsizeof([])
    assert abs(sizes[marker_line(__file__, "site:grown")] - storage) < 0.02 * storage
    zeroed_exact = sum(sys.getsizeof(b) for b in zeroed)   # 2 blocks per bytearray
    assert abs(sizes[marker_line(__file__, "site:zeroed")] - zeroed_exact) < 0.15 * zeroed_exact
    del grown, zeroed


def test_file_keeps_the_rate(tmp_path):
    _core._set_sample_seed(2)
    memhound.start(1, sample_every=R)
    keep = workload(0.2)
    snap = memhound.take_snapshot()
    memhound.stop()
    path = tmp_path / "s.mhsnap"
    snap.dump(str(path))
    assert path.read_bytes()[8] == 2            # format version 2: sampled
    loaded = memhound.Snapshot.load(str(path))
    assert loaded.sample_every == R
    assert loaded.statistics("lineno") == snap.statistics("lineno")
    assert loaded.traces == snap.traces
    # pickling and filters keep it too
    again = pickle.loads(pickle.dumps(snap))
    assert again.sample_every == R and again.statistics("lineno") == snap.statistics("lineno")
    filtered = snap.filter_traces([memhound.Filter(True, __file__)])
    assert filtered.sample_every == R
    assert filtered.statistics("lineno") == [s for s in snap.statistics("lineno")
                                             if s.traceback[0].filename == __file__]

    class MyFilter(memhound.Filter):          # runs in Python, not in C
        pass
    slow = snap.filter_traces([MyFilter(True, __file__)])
    assert slow.sample_every == R and slow.statistics("lineno") == filtered.statistics("lineno")
    # an exact snapshot is still written as version 1, as before
    exact = memhound.Snapshot([(0, 8, (("a.py", 1),), 1)], 1)
    exact.dump(str(path))
    assert path.read_bytes()[8] == 1
    del keep


def test_compare_to_uses_the_estimates():
    _core._set_sample_seed(4)
    memhound.start(1, sample_every=R)
    old = memhound.take_snapshot()
    keep = workload(0.3)
    new = memhound.take_snapshot()
    memhound.stop()
    diff = {d.traceback[0].lineno: d for d in new.compare_to(old, "lineno")
            if d.traceback[0].filename == __file__}
    for line, (size, count) in site_sizes(new).items():
        assert diff[line].size == size and diff[line].count == count
    del keep


def test_leak_finder_refuses_sampled_tracing():
    memhound.start(1, sample_every=R)
    with pytest.raises(RuntimeError, match="needs exact tracing.*sample_every=%d" % R):
        memhound.find_leaks(lambda: None)
    assert memhound.is_tracing() and memhound.get_sample_every() == R
    memhound.stop()
    assert not memhound.find_leaks(lambda: None, warmup=1, runs=2).leaked


# ---------------------------------------------------------------- accuracy

def test_accuracy_at_the_default_rate_fixed_seed():
    """Sites above 1 % of live memory: the estimate within +-10 % of the exact
    live bytes, at the default rate, for a fixed seed (reproducible)."""
    exact = exact_run(scale=4)
    sites = big_sites(exact)
    assert len(sites) >= 4
    snap, _ = sampled_run(R, seed=20261206, scale=4)
    est = site_sizes(snap)
    for line, (size, count) in sites.items():
        assert abs(est[line][0] - size) <= 0.10 * size, (line, est[line], size)


def bernstein_failure_bound(sizes, rate, tolerance):
    """Upper bound on P(|estimate - exact| > tolerance) for one site whose
    live blocks have the given sizes.  The estimate is a sum of independent
    X_i in {0, s_i * w_i} with mean s_i.  A block with exp(-s_i / R) below
    1e-12 is recorded unless an event of that probability happens (added to
    the bound); the others satisfy Bernstein's inequality
    P(|sum X_i - mean| >= t) <= 2 exp(-t^2 / (2 (V + M t / 3))) with
    V = sum s_i^2 (w_i - 1) and M = max |X_i - s_i| <= max(s_i, s_i (w_i - 1)).
    Rounding each block's estimate to whole bytes moves the sum by at most
    n / 2: taken off t."""
    certain = [s for s in sizes if s / rate > 12 * math.log(10)]
    random = [s for s in sizes if s / rate <= 12 * math.log(10)]
    unrecorded = sum(math.exp(-s / rate) for s in certain)
    if not random:
        return unrecorded
    var = sum(s * s * (weight(s, rate) - 1) for s in random)
    m = max(max(s, s * (weight(s, rate) - 1)) for s in random)
    t = tolerance - len(sizes) / 2
    assert t > 0
    return unrecorded + 2 * math.exp(-t * t / (2 * (var + m * t / 3)))


def test_accuracy_statistical_bound():
    """The same claim as a statistical test with a stated false-failure
    probability: with a random seed, each site above 1 % of live memory is
    within +-10 % unless an event of probability below the Bernstein bound
    (computed below from the exact block sizes, summed over the sites)
    happens.  The rate is small enough for this test's 40 MB of sites to
    make that bound < 1e-6; the estimator and the bound scale with R."""
    rate = 2048
    memhound.start(1)
    keep = workload(scale=1)
    exact = memhound.take_snapshot()
    memhound.stop()
    del keep
    sites = big_sites(exact)
    blocks = {}
    for trace in exact.traces:
        frame = trace.traceback[0]
        if frame.filename == __file__ and frame.lineno in sites:
            blocks.setdefault(frame.lineno, []).append(trace.size)
    # The blocks of a site differ between two runs only by a few interpreter
    # allocations (a list's spare capacity, a frame): 1 % of the site at most
    # is allowed for that, the rest of the 10 % for sampling.
    bound = sum(bernstein_failure_bound(blocks[line], rate, 0.09 * sites[line][0])
                for line in sites)
    assert bound < 1e-6, bound                  # the stated false-failure probability
    snap, _ = sampled_run(rate, seed=None, scale=1)
    est = site_sizes(snap)
    for line, (size, count) in sites.items():
        assert abs(est[line][0] - size) <= 0.10 * size, (line, est[line], size, bound)


# ---------------------------------------------------------------- old files

# Written by main at 6765055 (format version 1, before sampling) from these
# raw traces: Snapshot(MAIN_TRACES, 2), metadata {"writer": ...}, dump().
MAIN_TRACES = ([(0, 1000 + 10 * i, (("app.py", 10 + i % 3), ("main.py", 5)), 2) for i in range(30)]
               + [(0, 64, (("lib.py", 7),), 1)] * 5)


def test_file_written_before_sampling_loads():
    path = os.path.join(os.path.dirname(__file__), "data", "main-6765055.mhsnap")
    with open(path, "rb") as f:
        assert f.read(10)[8:] == b"\x01\x00"          # format version 1
    loaded = memhound.Snapshot.load(path)
    assert loaded.sample_every == 0
    assert loaded.metadata == {"writer": "memhound main 6765055"}
    expected = memhound.Snapshot(MAIN_TRACES, 2)
    for key in ("lineno", "filename", "traceback"):
        assert loaded.statistics(key) == expected.statistics(key)
    assert [t.size for t in loaded.traces] == [t.size for t in expected.traces]


def test_countdown_of_an_earlier_session_does_not_carry_over():
    # A thread that drew its countdown at a 1 GiB rate, then allocates 2 MB
    # after a restart at 4 KiB: its memory is sampled at the new rate.
    import threading
    drawn, go = threading.Event(), threading.Event()
    kept = []

    def worker():
        kept.append(bytearray(100))
        drawn.set()
        go.wait(60)
        kept.extend(bytearray(4096) for _ in range(500))        # site:after-restart

    memhound.start(1, sample_every=1 << 30)
    try:
        thread = threading.Thread(target=worker)
        thread.start()
        assert drawn.wait(60)
        memhound.stop()
        memhound.start(1, sample_every=4096)
        go.set()
        thread.join(60)
        snap = memhound.take_snapshot()
    finally:
        memhound.stop()
    line = marker_line(__file__, "site:after-restart")
    size = sum(s.size for s in snap.statistics("lineno") if s.traceback[0].lineno == line
               and s.traceback[0].filename == __file__)
    assert 0.7 * 500 * 4096 < size < 1.4 * 500 * 4096, size
