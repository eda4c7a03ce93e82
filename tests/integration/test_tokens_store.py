"""People's tokens in the store, on a real redis-server: create and revoke are each one
script that checks its precondition (the name free, the name held), only hashes are kept,
and a last use is recorded only while the name still holds the token."""

import pytest

from shared.store import Store
from shared.store.errors import NameTaken, NotFound
from shared.store.tokens import token_hash
from tests.store_support import ManualClock, register


def everything_in(store: Store) -> str:
    """Every key and value in Redis, as one text: what a leaked token would be found in."""
    found = []
    for key in store.redis.scan_iter("*"):
        found.append(key)
        if store.redis.type(key) == "hash":
            found += [f"{k}={v}" for k, v in store.redis.hgetall(key).items()]
    return "\n".join(found)


def test_only_the_hash_of_a_created_token_is_stored(store: Store, clock: ManualClock) -> None:
    record = store.tokens.create("bob", "user", "bob-secret")
    assert record == {"name": "bob", "role": "user", "created_at": clock.t}
    assert store.tokens.lookup("bob-secret") == record
    stored = everything_in(store)
    assert token_hash("bob-secret") in stored
    assert "bob-secret" not in stored


def test_a_name_in_use_is_refused_and_nothing_is_written(store: Store) -> None:
    store.tokens.create("bob", "user", "first")
    before = everything_in(store)
    with pytest.raises(NameTaken):
        store.tokens.create("bob", "admin", "second")
    assert everything_in(store) == before
    assert store.tokens.lookup("second") is None
    assert store.tokens.lookup("first") == {"name": "bob", "role": "user", "created_at": 1.7e9}


def test_revoking_kills_the_token_and_frees_the_name(store: Store, clock: ManualClock) -> None:
    store.tokens.create("bob", "user", "first")
    store.tokens.used(token_hash("first"), {"name": "bob", "role": "user"})
    assert store.tokens.revoke("bob") == token_hash("first")
    assert store.tokens.lookup("first") is None
    assert store.tokens.people() == []
    assert everything_in(store) == ""  # the name, the hash and the last use are all gone
    with pytest.raises(NotFound):
        store.tokens.revoke("bob")
    clock.advance(5)
    store.tokens.create("bob", "admin", "second")
    assert store.tokens.people() == [
        {"name": "bob", "role": "admin", "created_at": clock.t, "last_used_at": None}
    ]


def test_a_revoked_tokens_use_is_not_given_to_the_names_next_token(
    store: Store, clock: ManualClock
) -> None:
    """Another API process may still remember the old token for a moment and record its
    use: that must neither bring the name back nor date the new token's last use."""
    old = {"name": "bob", "role": "user"}
    store.tokens.create("bob", "user", "first")
    store.tokens.revoke("bob")
    store.tokens.used(token_hash("first"), old)
    assert everything_in(store) == ""
    store.tokens.create("bob", "user", "second")
    clock.advance(10)
    store.tokens.used(token_hash("first"), old)
    assert store.tokens.people()[0]["last_used_at"] is None
    store.tokens.used(token_hash("second"), old)
    assert store.tokens.people()[0]["last_used_at"] == clock.t


def test_people_are_listed_by_name_and_workers_are_not(store: Store, clock: ManualClock) -> None:
    register(store, "w1")
    store.tokens.create("zoe", "admin", "z")
    clock.advance(1)
    store.tokens.create("al", "user", "a")
    store.tokens.used(token_hash("a"), {"name": "al", "role": "user"})
    store.tokens.used("hash-w1", {"name": "worker:w1", "role": "worker", "worker_id": "w1"})
    assert store.tokens.people() == [
        {"name": "al", "role": "user", "created_at": clock.t, "last_used_at": clock.t},
        {"name": "zoe", "role": "admin", "created_at": clock.t - 1, "last_used_at": None},
    ]
    assert not store.redis.hexists(store.keys.token_last_used, "worker:w1")
    assert store.tokens.lookup_hash("hash-w1") is not None
