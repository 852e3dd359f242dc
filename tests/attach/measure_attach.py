"""Measure `memhound attach PID --census` on a server with many live objects:
the time from the command to its report, and the server's request latency
(median, p99) while censuses run vs without.  Not a test: run it by hand,
with CPython 3.14+ and sys.remote_exec allowed (root, or ptrace scope 0):

    PYTHONPATH=src python tests/attach/measure_attach.py --objects 1000000

Prints one JSON document; docs/attach.md quotes the numbers.
"""
import argparse
import http.client
import json
import os
import statistics
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(os.path.abspath(__import__("memhound").__file__)))


def latencies(port, seconds, stop=None):
    """Sequential GET /hello on one kept-alive connection for `seconds`."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    out = []
    end = time.monotonic() + seconds
    while time.monotonic() < end and not (stop and stop.is_set()):
        t0 = time.perf_counter()
        conn.request("GET", "/hello")
        conn.getresponse().read()
        out.append(time.perf_counter() - t0)
    conn.close()
    return out


def summary(values):
    values = sorted(values)
    return {"n": len(values), "median_ms": round(1000 * statistics.median(values), 3),
            "p99_ms": round(1000 * values[int(0.99 * (len(values) - 1))], 3),
            "max_ms": round(1000 * values[-1], 3)}


def census_cli(pid):
    t0 = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "memhound", "attach", str(pid), "--census",
                           "--json", "-", "--timeout", "60"], capture_output=True, text=True,
                          env=dict(os.environ, PYTHONPATH=SRC))
    wall = time.perf_counter() - t0
    if proc.returncode != 0:
        raise SystemExit(proc.stderr)
    data = json.loads(proc.stdout)
    return wall, data


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--objects", type=int, default=1_000_000)
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=5.0)
    args = ap.parse_args()
    server = subprocess.Popen([sys.executable, os.path.join(HERE, "leaky_app.py"), "--objects",
                               str(args.objects)], stdout=subprocess.PIPE, text=True,
                              env=dict(os.environ, PYTHONPATH=SRC))
    try:
        port = int(server.stdout.readline())
        latencies(port, 1.0)                       # warm up
        base = latencies(port, args.seconds)
        idle = [census_cli(server.pid)[0] for _ in range(args.runs)]
        walls, inner, objects = [], [], 0
        stop = threading.Event()
        during = []
        t = threading.Thread(target=lambda: during.extend(latencies(port, 3600, stop)))
        t.start()
        for _ in range(args.runs):
            wall, data = census_cli(server.pid)
            walls.append(wall)
            inner.append(data["census"]["stats"])
            objects = data["census"]["objects"]
        stop.set()
        t.join()
        print(json.dumps({
            "python": sys.version.split()[0], "objects": objects, "runs": args.runs,
            "census_wall_s_idle": {"median": round(statistics.median(idle), 3),
                                   "all": [round(w, 3) for w in idle]},
            "census_wall_s_under_load": {"median": round(statistics.median(walls), 3),
                                         "all": [round(w, 3) for w in walls]},
            "in_target_s": {k: round(statistics.median(s[k] for s in inner), 3)
                            for k in ("t_collect", "t_census", "t_types", "t_graph", "t_keeps",
                                      "t_holders", "t_total")},
            "latency_without": summary(base), "latency_during_censuses": summary(during)},
            indent=2))
    finally:
        server.kill()
        server.wait()


if __name__ == "__main__":
    main()
