"""Leak scenarios of the shapes of issue 17 item 3 (one leak spread over many
groups) and item 6 (hints that name the container and the line), used by
test_leaks_grouping.py.  Each ``*_leak`` function leaks on every call; the
line that creates or stores the leaked object carries a ``# MARK`` comment
that the tests look up."""
import collections
import functools
import gc
import os
import threading
import weakref

from conftest import marker_line


def line_of(marker):
    """Line number of the source line carrying `marker` in this file."""
    return marker_line(__file__, marker)


# ---- a leaked object keeps a thread alive -------------------------------------
class Client:
    """Starts a worker thread per instance and registers an at-fork callback
    that is never removed: the interpreter's at-fork list keeps the client,
    the client its thread, and the thread's weakref sits in threading's
    bookkeeping (threading._dangling)."""

    def __init__(self):
        self._stop = threading.Event()
        self._buffer = bytearray(8192)
        self._thread = threading.Thread(target=self._stop.wait, name="client-worker")
        self._thread.start()
        os.register_at_fork(after_in_child=self._reset)  # GROW:atfork

    def _reset(self):
        pass

    def close(self):
        self._stop.set()
        self._thread.join()


def thread_leak():
    Client()  # LEAK:client


def close_clients():
    """Stop the workers of every Client the at-fork list still holds."""
    for obj in gc.get_objects():
        if type(obj) is Client:
            obj.close()


# ---- a method lru_cache holding self -----------------------------------------
class Resolver:
    """Much internal state per instance; resolve() is cached per instance
    by a class-level lru_cache, which keeps every instance."""

    def __init__(self, n):
        self.n = n
        self.options = {"retries": [1, 2, 3], "headers": {"x-id": "r%d" % n}}
        self.pools = [bytearray(256) for _ in range(3)]
        self.lock = threading.Lock()
        self.stats = {"hits": [], "misses": []}
        self.hooks = [lambda: None, lambda: None]

    @functools.lru_cache(maxsize=None)
    def resolve(self, name):
        return "%s.%d" % (name, self.n)


_resolver_n = [0]


def lru_self_leak():
    _resolver_n[0] += 1
    r = Resolver(_resolver_n[0])  # LEAK:resolver
    r.resolve("host")  # GROW:resolve


# ---- an event bus whose subscriber list holds the same dict at 4 indexes ------
class EventBus:
    def __init__(self):
        self.subscribers = []

    def subscribe(self, handler, *topics):
        entry = {"handler": handler, "topics": list(topics), "filters": {}}
        for _topic in topics:
            self.subscribers.append(entry)  # GROW:bus


class Widget:
    def __init__(self):
        self.rows = [[i] for i in range(4)]
        self.state = {"selected": None}

    def on_event(self, event):
        self.state["selected"] = event


_bus = EventBus()


def event_bus_leak():
    w = Widget()  # LEAK:widget
    _bus.subscribe(w.on_event, "open", "close", "move", "resize")


# ---- a stored exception keeps a 50 KB bytearray ------------------------------
_failures = []


def parse(data):
    scratch = bytearray(50_000)  # LEAK:scratch
    raise ValueError("cannot parse %d bytes into %d" % (len(data), len(scratch)))


def stored_exception_leak():
    try:
        parse(b"payload")
    except ValueError as exc:
        _failures.append(exc)


# ---- a hint names the container, the attribute and the line -------------------
class Order:
    def __init__(self, n):
        self.n = n


_history = []


def place_order():
    order = Order(len(_history))  # LEAK:order
    _history.append(order)  # GROW:history


class Session:
    def __init__(self):
        self.handlers = {}


_session = Session()


def register_handler():
    key = "h%d" % len(_session.handlers)
    _session.handlers[key] = Order(0)  # GROW:handlers


# ---- a weak container that still leaks: its values keep their keys ---------
class Key:
    pass


class Meta:
    def __init__(self, key):
        self.key = key


_meta = weakref.WeakKeyDictionary()


def weak_key_leak():
    k = Key()
    _meta[k] = Meta(k)  # GROW:meta


# ---- two leaks in one call: the one that keeps more bytes comes first --------
_small = []
_big = []


def two_leaks():
    for _ in range(3):
        _small.append(Order(0))
    _big.append(bytearray(100_000))  # LEAK:big


# ---- a container whose storage memhound does not read: the creation line ----
_log = collections.deque()


def deque_leak():
    for _ in range(4):
        _log.append(Order(1))  # LEAK:deque


# ---- a container grown by other code: its growth line is not this leak's ----
_shared = []


def grow_shared_elsewhere():
    """Give _shared room for 64 entries, from a line that has nothing to do
    with the leak below (which then never needs to grow it)."""
    _shared.extend([None] * 64)  # GROW:elsewhere
    del _shared[32:]


def shared_leak():
    _shared.append(Order(2))  # LEAK:shared
