"""Worker records stay bounded, through the HTTP API (Flask's test client) and the reaper on
a real redis-server: registration is refused past JOBYARD_MAX_WORKERS records, and workers
lost longer than JOBYARD_WORKER_RETENTION_S are removed with their token hashes and every
per-worker key; deregistration removes a record at once."""

from typing import Any

import pytest
from flask.testing import FlaskClient

import scheduler.reaper
from api.app import create_app
from scheduler.reaper import forget_lost_workers, reap_once
from shared.config import Config
from shared.store import Store
from shared.store.tokens import token_hash
from tests.store_support import ManualClock, check_store_invariants, commit, submit

JOIN = {"Authorization": "Bearer join-token"}
MAX_WORKERS = 5
CONFIG = Config.from_env(
    {},
    admin_token="admin-token",
    worker_join_token="join-token",
    max_workers=MAX_WORKERS,
    worker_timeout_s=30.0,
    worker_retention_s=600.0,
)


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def register(client: FlaskClient, hostname: str = "host") -> Any:
    body = {"hostname": hostname, "capacity": {"cpu": 2, "memory_mb": 1024}}
    return client.post("/api/v1/workers/register", json=body, headers=JOIN)


def registered(client: FlaskClient, hostname: str = "host") -> tuple[str, str]:
    response = register(client, hostname)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    return answer["worker_id"], answer["token"]


def worker_keys(store: Store) -> list[str]:
    """Every key that is about one worker (its record, jobs, inbox)."""
    return sorted(store.redis.scan_iter(match=store.keys.worker("*"), count=1000))


def check_refused(response: Any) -> None:
    assert response.status_code == 503, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "worker_limit"
    assert error["details"] == {"max_workers": MAX_WORKERS}
    assert "JOBYARD_MAX_WORKERS" in error["message"]


def test_a_flood_of_registrations_stops_at_the_cap_and_lost_ones_go_after_retention(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    workers = [registered(client, f"host{n}") for n in range(MAX_WORKERS)]
    keys_before = store.redis.dbsize()
    for _ in range(20):
        check_refused(register(client))
    assert store.redis.dbsize() == keys_before  # a refusal writes nothing at all
    assert store.redis.zcard(store.keys.workers) == MAX_WORKERS
    # A worker that held a job leaves a per-worker key or two behind it when lost.
    submit(store, "job", owner="bob")
    assert commit(store, [("job", workers[0][0])]) == [1]

    clock.advance(CONFIG.worker_timeout_s)
    reap_once(store, CONFIG)  # every worker is silent: all lost
    assert {w["status"] for w in store.workers.all()} == {"lost"}
    check_refused(register(client))  # lost records count until their retention ends

    clock.advance(CONFIG.worker_retention_s - 1)
    reap_once(store, CONFIG)
    assert store.redis.zcard(store.keys.workers) == MAX_WORKERS
    clock.advance(1)
    reap_once(store, CONFIG)
    assert worker_keys(store) == []
    assert not store.redis.exists(store.keys.workers, store.keys.lost_workers)
    for _, token in workers:
        assert not store.redis.hexists(store.keys.tokens, token_hash(token))
    assert store.redis.hlen(store.keys.tokens) == 0
    assert store.jobs.get("job")["state"] == "QUEUED"  # requeued when its worker was lost
    check_store_invariants(store)
    # A fresh API process (no token remembered) refuses the old tokens; a new worker joins.
    fresh = create_app(CONFIG, store).test_client()
    worker_id, token = workers[0]
    heartbeat = fresh.post(
        f"/api/v1/workers/{worker_id}/heartbeat",
        json={},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert heartbeat.status_code == 401
    for n in range(MAX_WORKERS):
        registered(client, f"again{n}")
    check_refused(register(client))


def test_deregistration_frees_a_place_at_once_even_for_a_lost_worker(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    workers = [registered(client, f"host{n}") for n in range(MAX_WORKERS)]
    check_refused(register(client))
    worker_id, token = workers[0]
    store.workers.mark_lost(worker_id, max_requeues=3)
    response = client.delete(
        f"/api/v1/workers/{worker_id}", headers={"Authorization": f"Bearer {token}"}
    )
    assert response.status_code == 204, response.get_data(as_text=True)
    assert not store.redis.exists(store.keys.lost_workers)  # nothing left to retain
    assert not store.redis.hexists(store.keys.tokens, token_hash(token))
    registered(client, "newcomer")
    check_refused(register(client))
    check_store_invariants(store)


def test_retention_is_counted_from_the_first_time_a_worker_was_declared_lost(
    store: Store, clock: ManualClock, client: FlaskClient
) -> None:
    worker_id, _ = registered(client)
    store.workers.mark_lost(worker_id, max_requeues=3)
    clock.advance(100)
    store.workers.mark_lost(worker_id, max_requeues=3)  # said again: the clock stays
    clock.advance(CONFIG.worker_retention_s - 100)
    assert forget_lost_workers(store, CONFIG.worker_retention_s) == 1
    assert worker_keys(store) == []


def test_the_reaper_forgets_lost_workers_in_bounded_batches(
    store: Store, clock: ManualClock, client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(scheduler.reaper, "FORGET_BATCH", 2)
    monkeypatch.setattr(scheduler.reaper, "PURGE_BATCHES_PER_PASS", 2)
    for n in range(MAX_WORKERS):
        store.workers.mark_lost(registered(client, f"host{n}")[0], max_requeues=3)
    clock.advance(CONFIG.worker_retention_s)
    assert forget_lost_workers(store, CONFIG.worker_retention_s) == 4  # two batches of two
    assert store.redis.zcard(store.keys.workers) == 1
    check_store_invariants(store)
    assert forget_lost_workers(store, CONFIG.worker_retention_s) == 1
    assert worker_keys(store) == []
    # The feed says each one is gone, as for a deregistration.
    removed = [
        fields["id"]
        for _, fields in store.redis.xrange(store.keys.events, "-", "+")
        if fields["kind"] == "worker_removed"
    ]
    assert len(removed) == MAX_WORKERS
