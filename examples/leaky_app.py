"""A small request handler with a realistic leak.

    memhound leaks examples/leaky_app.py:handle_request

Every request is parsed into a Request object and, for "auditing", appended
to a module-level list that nobody ever trims.  memhound reports the
Request objects (and the strings they hold), the path
``module leaky_app -> global _audit_log (list) -> [i] -> leaky_app.Request``,
the line that created them, and the cause ``global-collection``.
"""
import itertools
import json

_audit_log = []          # grows forever: the leak
_counter = itertools.count()
_templates = {"ok": '{"status": "ok", "id": %d}'}   # bounded: not a leak


class Request:
    def __init__(self, request_id, path, body):
        self.request_id = request_id
        self.path = path
        self.body = body


def parse(raw):
    data = json.loads(raw)
    return Request(data["id"], data["path"], data.get("body", ""))


def handle_request():
    n = next(_counter)
    raw = json.dumps({"id": n, "path": "/items/%d" % n, "body": "payload-%d" % n})
    request = parse(raw)
    _audit_log.append(request)               # <- keeps every request alive
    return _templates["ok"] % request.request_id


if __name__ == "__main__":
    for _ in range(3):
        print(handle_request())
