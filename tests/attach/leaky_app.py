"""A small threaded HTTP server that leaks one Record per /leak request into
a module-level registry, for the tests of ``memhound attach``.

Run as ``python leaky_app.py [--objects N]``: it prints its port on the
first line of stdout, then serves on 127.0.0.1 until killed.  ``--objects``
keeps N more live objects (a list of small tuples) for the measurements.

``/state`` answers with the server's own view of what an attach could have
changed: its threads, the allocator functions of the three domains, the
reference tracer (3.13+), the profile/trace hooks, gc.callbacks and whether
memhound traces.  It is read from inside the target, through ctypes, so it
does not rely on memhound to tell.
"""
import ctypes
import gc
import http.server
import json
import sys
import threading


class Record:
    def __init__(self, n, payload):
        self.n = n
        self.payload = payload


REGISTRY = []
_COUNT = [0]
_BALLAST = []


class _Allocator(ctypes.Structure):
    _fields_ = [("ctx", ctypes.c_void_p), ("malloc", ctypes.c_void_p),
                ("calloc", ctypes.c_void_p), ("realloc", ctypes.c_void_p),
                ("free", ctypes.c_void_p)]


def allocators():
    out = []
    for domain in range(3):      # PYMEM_DOMAIN_RAW, _MEM, _OBJ
        a = _Allocator()
        ctypes.pythonapi.PyMem_GetAllocator(ctypes.c_int(domain), ctypes.byref(a))
        out.append([a.ctx, a.malloc, a.calloc, a.realloc, a.free])
    return out


def ref_tracer():
    fn = getattr(ctypes.pythonapi, "PyRefTracer_GetTracer", None)
    if fn is None:
        return None
    fn.restype = ctypes.c_void_p
    data = ctypes.c_void_p()
    return [fn(ctypes.byref(data)), data.value]


def state():
    mh = sys.modules.get("memhound._core")
    # Per-connection threads come and go with the clients.
    return {"threads": sorted(t.name for t in threading.enumerate()
                              if "process_request_thread" not in t.name),
            "allocators": allocators(), "ref_tracer": ref_tracer(),
            "profile": repr(sys.getprofile()), "trace": repr(sys.gettrace()),
            "gc_callbacks": len(gc.callbacks),
            "memhound_imported": mh is not None,
            "memhound_tracing": bool(mh is not None and mh.is_tracing()),
            "registry": len(REGISTRY), "served": _COUNT[0],
            "blocks": _blocks()}


def _blocks():
    gc.collect()
    return sys.getallocatedblocks()


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    # Headers and body are two writes: without this, a kept-alive client
    # waits for the delayed ACK (40 ms) on every request.
    disable_nagle_algorithm = True

    def do_GET(self):
        if self.path == "/leak":
            REGISTRY.append(Record(len(REGISTRY), bytearray(64)))  # leak-line
            body = b"ok"
        elif self.path == "/state":
            body = json.dumps(state()).encode()
        else:
            body = b"hello"
        _COUNT[0] += 1
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def main():
    if "--objects" in sys.argv:
        n = int(sys.argv[sys.argv.index("--objects") + 1])
        _BALLAST.extend((i, str(i)) for i in range(n // 3))
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    # Two worker threads of its own besides the per-request ones.
    for name in ("worker-1", "worker-2"):
        threading.Thread(target=threading.Event().wait, name=name, daemon=True).start()
    print(server.server_address[1], flush=True)
    server.serve_forever(poll_interval=0.05)


if __name__ == "__main__":
    # As the module leaky_app, not __main__: the reports name it.
    import leaky_app
    leaky_app.main()
