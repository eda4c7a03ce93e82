"""The API's token cache: found tokens remembered for TOKEN_CACHE_S, unknown ones never;
a token's use recorded at most once every LAST_USED_EVERY_S."""

from typing import Any

import redis

from api.token_cache import LAST_USED_EVERY_S, TOKEN_CACHE_S, TokenCache
from shared.store.tokens import token_hash
from tests.store_support import ManualClock

WORKER = {"name": "worker:w1", "role": "worker", "worker_id": "w1"}


class Tokens:
    """A token table that counts its lookups, as the Redis hash would serve them."""

    def __init__(self) -> None:
        self.records: dict[str, dict[str, Any]] = {}
        self.lookups = 0

    def add(self, token: str, record: dict[str, Any]) -> None:
        self.records[token_hash(token)] = record

    def revoke(self, token: str) -> None:
        del self.records[token_hash(token)]

    def lookup(self, digest: str) -> dict[str, Any] | None:
        self.lookups += 1
        return self.records.get(digest)


def test_a_found_token_is_looked_up_once_per_period() -> None:
    tokens, clock = Tokens(), ManualClock()
    tokens.add("tok", WORKER)
    cache = TokenCache(tokens.lookup, clock=clock)
    assert [cache.get("tok") for _ in range(5)] == [WORKER] * 5
    assert tokens.lookups == 1
    clock.advance(TOKEN_CACHE_S)
    assert cache.get("tok") == WORKER
    assert tokens.lookups == 2


def test_a_revoked_token_is_refused_once_the_period_has_passed() -> None:
    tokens, clock = Tokens(), ManualClock()
    tokens.add("tok", WORKER)
    cache = TokenCache(tokens.lookup, clock=clock)
    assert cache.get("tok") == WORKER
    tokens.revoke("tok")
    clock.advance(TOKEN_CACHE_S * 0.9)
    assert cache.get("tok") == WORKER  # the stated bound: at most TOKEN_CACHE_S late
    clock.advance(TOKEN_CACHE_S * 0.1)
    assert cache.get("tok") is None


def test_an_unknown_token_is_looked_up_every_time_and_found_once_stored() -> None:
    tokens = Tokens()
    cache = TokenCache(tokens.lookup, clock=ManualClock())
    assert cache.get("tok") is None
    assert cache.get("tok") is None
    assert tokens.lookups == 2
    tokens.add("tok", WORKER)
    assert cache.get("tok") == WORKER


def test_forgetting_a_worker_drops_only_its_tokens() -> None:
    tokens = Tokens()
    other = {"name": "worker:w2", "role": "worker", "worker_id": "w2"}
    tokens.add("tok1", WORKER)
    tokens.add("tok2", other)
    cache = TokenCache(tokens.lookup, clock=ManualClock())
    cache.get("tok1"), cache.get("tok2")
    tokens.revoke("tok1")
    tokens.revoke("tok2")
    cache.forget_worker("w1")
    assert cache.get("tok1") is None
    assert cache.get("tok2") == other


def test_the_cache_stays_within_its_size() -> None:
    tokens, clock = Tokens(), ManualClock()
    for n in range(10):
        tokens.add(f"tok{n}", {"name": f"u{n}", "role": "user"})
    cache = TokenCache(tokens.lookup, clock=clock, max_entries=4)
    for n in range(10):
        assert cache.get(f"tok{n}") == {"name": f"u{n}", "role": "user"}
        assert len(cache._entries) <= 4
    lookups = tokens.lookups
    assert cache.get("tok9") is not None
    assert tokens.lookups == lookups  # the newest is still remembered


class Uses:
    """A record_use that remembers each call; `down` makes it fail as Redis would."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.down = False

    def __call__(self, digest: str, record: dict[str, Any]) -> None:
        if self.down:
            raise redis.ConnectionError("Redis is down")
        self.calls.append(record["name"])


def test_a_tokens_use_is_recorded_at_most_once_per_period_from_the_refresh_path() -> None:
    tokens, clock, uses = Tokens(), ManualClock(), Uses()
    tokens.add("tok", {"name": "bob", "role": "user"})
    cache = TokenCache(tokens.lookup, record_use=uses, clock=clock)
    for _ in range(int(LAST_USED_EVERY_S / TOKEN_CACHE_S) - 1):
        assert cache.get("tok") is not None
        clock.advance(TOKEN_CACHE_S)
    assert tokens.lookups == LAST_USED_EVERY_S / TOKEN_CACHE_S - 1  # refreshed every time
    assert uses.calls == ["bob"]  # but its use recorded only the first
    clock.advance(TOKEN_CACHE_S)
    cache.get("tok")
    assert uses.calls == ["bob", "bob"]


def test_a_failed_record_of_use_lets_the_request_through_and_is_tried_again() -> None:
    tokens, clock, uses = Tokens(), ManualClock(), Uses()
    tokens.add("tok", {"name": "bob", "role": "user"})
    cache = TokenCache(tokens.lookup, record_use=uses, clock=clock)
    uses.down = True
    assert cache.get("tok") == {"name": "bob", "role": "user"}
    uses.down = False
    clock.advance(TOKEN_CACHE_S)
    cache.get("tok")
    assert uses.calls == ["bob"]


def test_forgetting_a_token_drops_it_at_once() -> None:
    tokens = Tokens()
    tokens.add("tok", {"name": "bob", "role": "user"})
    cache = TokenCache(tokens.lookup, clock=ManualClock())
    assert cache.get("tok") is not None
    tokens.revoke("tok")
    cache.forget(token_hash("tok"))
    assert cache.get("tok") is None
