"""A program whose memory grows: a cache that is never trimmed.

    memhound run --interval 0.1 --snapshot cache.mhsnap --html cache.html examples/growing_cache.py
    memhound top cache.mhsnap --group-by traceback --limit 3
"""
import time

_cache = {}


def load_user(user_id):
    # the leak: every user ever seen stays in the module-level cache
    _cache[user_id] = {"id": user_id, "name": f"user-{user_id}", "avatar": bytes(2048)}
    return _cache[user_id]


def load_orders(user_id):
    return [{"order": n, "items": list(range(20))} for n in range(5)]


def handle_request(user_id):
    user = load_user(user_id)
    orders = load_orders(user_id)          # temporary: freed after the request
    return len(user["name"]) + len(orders)


def main():
    for batch in range(10):
        for user_id in range(batch * 300, (batch + 1) * 300):
            handle_request(user_id)
        time.sleep(0.05)


if __name__ == "__main__":
    main()
