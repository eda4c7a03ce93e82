"""A batch of placements in one assign.lua call leaves Redis exactly as the same placements
made one call each: the writes its transitions share (indexes, counts, histograms) are
gathered and made at the end, and must add up to the same."""

from typing import Any

import redis

from shared.store import Store, connect
from tests.store_support import ManualClock, check_store_invariants, commit, register, submit

OWNERS = ("alice", "bob")


def fill(store: Store, clock: ManualClock) -> list[tuple[str, str]]:
    for worker_id in ("w1", "w2"):
        register(store, worker_id, slots=8)
    placements = []
    for n in range(8):
        # Some with a queue timeout: their deadline leaves its index as they are placed.
        queue_timeout_s = 600 if n % 3 == 0 else None
        submit(store, f"j{n}", owner=OWNERS[n % 2], queue_timeout_s=queue_timeout_s)
        placements.append((f"j{n}", f"w{n % 2 + 1}"))
        clock.advance(0.7 * n)  # placed after waits of different lengths: several buckets
    # One the batch cannot place: it is already assigned when its second placement comes.
    placements.append(("j0", "w2"))
    return placements


def dump(client: redis.Redis, prefix: str) -> dict[str, Any]:
    """Every key under the prefix with its content (stream entries without their ids, which
    are the server's clock)."""
    contents: dict[str, Any] = {}
    for key in sorted(client.scan_iter(match=f"{prefix}*")):
        name = key[len(prefix) :]
        kind = client.type(key)
        if kind == "hash":
            # A histogram's sum, added up in another order, may differ in its last digits.
            contents[name] = {
                field: round(float(value), 6) if field.endswith("\tsum") else value
                for field, value in client.hgetall(key).items()
            }
        elif kind == "zset":
            contents[name] = client.zrange(key, 0, -1, withscores=True)
        elif kind == "list":
            contents[name] = client.lrange(key, 0, -1)
        elif kind == "set":
            contents[name] = sorted(client.smembers(key))
        elif kind == "stream":
            contents[name] = [fields for _, fields in client.xrange(key)]
        else:
            contents[name] = client.get(key)
    return contents


def test_a_batch_of_placements_writes_what_one_at_a_time_would(redis_url: str) -> None:
    client = connect(redis_url)
    client.flushdb()
    clocks = ManualClock(), ManualClock()
    one, many = Store(client, "one:", clocks[0]), Store(client, "many:", clocks[1])
    placements = fill(one, clocks[0])
    assert fill(many, clocks[1]) == placements

    singles = [outcome for placement in placements for outcome in commit(one, [placement])]
    batched = commit(many, placements)

    assert batched == singles == [1] * 8 + ["job not queued"]
    assert dump(client, "many:") == dump(client, "one:")
    check_store_invariants(many)
    client.close()
