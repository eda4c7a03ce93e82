"""Tenants through the HTTP API (Flask's test client) on a real redis-server: a user sees
and touches only their own jobs on every endpoint, counts included; admins see everyone's
and can narrow to one owner; the history and the feed say who asked for each change; and
a worker token speaks only about the attempts assigned to its worker."""

import json
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from scheduler.reaper import purge_finished
from shared.config import Config
from shared.states import JobState
from shared.store import Store
from shared.store.tokens import token_hash
from tests.integration.test_event_feed import stream, until
from tests.store_support import ManualClock, check_store_invariants, commit

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
BOB = {"Authorization": "Bearer bob-token"}
CAROL = {"Authorization": "Bearer carol-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
ZERO = {state.value: 0 for state in JobState}


@pytest.fixture
def store(store: Store) -> Store:
    """The integration tests' store with two users, stored the way the API looks them up
    (user tokens have no endpoint yet)."""
    for name in ("bob", "carol"):
        record = json.dumps({"name": name, "role": "user"})
        store.redis.hset(store.keys.tokens, token_hash(f"{name}-token"), record)
    return store


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    error: dict[str, Any] = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"}
    return error


def submit(client: FlaskClient, headers: dict[str, str], **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"command": ["true"], **spec}, headers=headers)
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


def register(client: FlaskClient, hostname: str) -> tuple[str, dict[str, str]]:
    body = {"hostname": hostname, "capacity": {"cpu": 2, "memory_mb": 1024}}
    answer = client.post("/api/v1/workers/register", json=body, headers=JOIN).get_json()
    return answer["worker_id"], {"Authorization": f"Bearer {answer['token']}"}


def counts(**nonzero: int) -> dict[str, int]:
    return {**ZERO, **nonzero}


# A user sees only their own jobs


def test_another_users_job_is_404_on_every_endpoint_and_changes_nothing(
    client: FlaskClient, store: Store
) -> None:
    queued = submit(client, BOB)["id"]
    failed = submit(client, BOB)["id"]
    store.jobs.cancel(failed)  # a finished job: retry and delete would apply to it
    before = {job_id: store.jobs.get(job_id) for job_id in (queued, failed)}
    for job_id in (queued, failed):
        base = f"/api/v1/jobs/{job_id}"
        for response in (
            client.get(base, headers=CAROL),
            client.get(f"{base}/events", headers=CAROL),
            client.get(f"{base}/output", headers=CAROL),
            client.get(f"{base}/output/stream", headers=CAROL),
            client.post(f"{base}/cancel", headers=CAROL),
            client.post(f"{base}/retry", headers=CAROL),
            client.delete(base, headers=CAROL),
        ):
            error = error_of(response, 404)
            assert error["code"] == "not_found" and error["message"] == f"no job {job_id}"
    assert {job_id: store.jobs.get(job_id) for job_id in before} == before
    # Bob's own calls work, so the 404s above were about whose job it is.
    assert client.get(f"/api/v1/jobs/{queued}/events", headers=BOB).status_code == 200
    assert client.delete(f"/api/v1/jobs/{failed}", headers=BOB).status_code == 204


def test_a_list_and_the_feed_hold_only_the_users_own_jobs(
    client: FlaskClient, store: Store
) -> None:
    bobs = {submit(client, BOB)["id"] for _ in range(3)}
    carols = submit(client, CAROL)["id"]
    client.post(f"/api/v1/jobs/{min(bobs)}/cancel", headers=BOB)
    for query in ("", "?state=QUEUED", "?state=CANCELLED", "?owner=carol"):
        listed = client.get(f"/api/v1/jobs{query}", headers=CAROL).get_json()["jobs"]
        assert {job["id"] for job in listed} <= {carols}, query
    assert {j["id"] for j in client.get("/api/v1/jobs", headers=BOB).get_json()["jobs"]} == bobs
    last = submit(client, CAROL)["id"]
    seen = until(stream(client, CAROL), "job", last)
    assert {event["id"] for event in seen} == {carols, last}


def test_the_workers_list_shows_a_user_only_their_own_running_jobs(
    client: FlaskClient, store: Store
) -> None:
    bobs, carols = submit(client, BOB)["id"], submit(client, CAROL)["id"]
    worker_id, _ = register(client, "host")
    assert commit(store, [(bobs, worker_id), (carols, worker_id)]) == [1, 1]

    def running(headers: dict[str, str]) -> list[str]:
        [worker] = client.get("/api/v1/workers", headers=headers).get_json()["workers"]
        jobs: list[str] = worker["running_jobs"]
        return jobs

    assert running(BOB) == [bobs]
    assert running(CAROL) == [carols]
    assert running(ADMIN) == sorted([bobs, carols])


# Counts


def test_users_get_their_own_counts_and_admins_everyones_or_one_owners(
    client: FlaskClient, store: Store
) -> None:
    bobs = [submit(client, BOB)["id"] for _ in range(3)]
    submit(client, CAROL)
    client.post(f"/api/v1/jobs/{bobs[0]}/cancel", headers=BOB)

    def listed(headers: dict[str, str], query: str = "") -> dict[str, Any]:
        response = client.get(f"/api/v1/jobs{query}", headers=headers)
        assert response.status_code == 200, response.get_json()
        body: dict[str, Any] = response.get_json()
        return body

    def stats(headers: dict[str, str]) -> tuple[dict[str, int], int]:
        body = client.get("/api/v1/stats", headers=headers).get_json()
        return body["counts"], body["queue_depth"]

    assert listed(BOB)["counts"] == counts(QUEUED=2, CANCELLED=1)
    assert listed(CAROL)["counts"] == counts(QUEUED=1)
    assert listed(ADMIN)["counts"] == counts(QUEUED=3, CANCELLED=1)
    assert stats(BOB) == (counts(QUEUED=2, CANCELLED=1), 2)
    assert stats(CAROL) == (counts(QUEUED=1), 1)
    assert stats(ADMIN) == (counts(QUEUED=3, CANCELLED=1), 3)

    # An admin narrows the list and its counts to one owner; a user may name only themselves.
    as_admin = listed(ADMIN, "?owner=bob")
    assert {job["id"] for job in as_admin["jobs"]} == set(bobs)
    assert as_admin["counts"] == counts(QUEUED=2, CANCELLED=1)
    assert listed(ADMIN, "?owner=nobody") == {"jobs": [], "next_cursor": None, "counts": ZERO}
    assert listed(BOB, "?owner=bob")["counts"] == counts(QUEUED=2, CANCELLED=1)
    error = error_of(client.get("/api/v1/jobs?owner=carol", headers=BOB), 403)
    assert error["code"] == "forbidden"
    assert "carol" not in error["message"]

    # Deleting moves both counts; a count at zero leaves no trace of the owner behind.
    assert client.delete(f"/api/v1/jobs/{bobs[0]}", headers=BOB).status_code == 204
    assert listed(BOB)["counts"] == counts(QUEUED=2)
    for job_id in bobs[1:]:
        client.post(f"/api/v1/jobs/{job_id}/cancel", headers=BOB)
        client.delete(f"/api/v1/jobs/{job_id}", headers=BOB)
    assert listed(BOB)["counts"] == ZERO
    assert store.redis.hgetall(store.keys.owner_counts) == {"carol\tQUEUED": "1"}
    check_store_invariants(store)


def test_retention_takes_finished_jobs_out_of_their_owners_counts(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    job_ids = [submit(client, BOB)["id"] for _ in range(2)]
    client.post(f"/api/v1/jobs/{job_ids[0]}/cancel", headers=BOB)
    clock.advance(10)
    assert purge_finished(store, retention_s=5) == 1
    assert store.jobs.counts("bob") == counts(QUEUED=1)
    assert store.redis.hgetall(store.keys.owner_counts) == {"bob\tQUEUED": "1"}
    check_store_invariants(store)


def test_a_store_from_before_per_owner_counts_gets_them_once_a_scheduler_leads(
    client: FlaskClient, store: Store
) -> None:
    bobs = [submit(client, BOB)["id"] for _ in range(3)]
    carols = submit(client, CAROL)["id"]
    client.post(f"/api/v1/jobs/{bobs[0]}/cancel", headers=BOB)
    # As a version without them left the store; the moves since then count from nothing.
    store.redis.delete(store.keys.owner_counts)
    client.post(f"/api/v1/jobs/{bobs[1]}/cancel", headers=BOB)
    client.post(f"/api/v1/jobs/{carols}/cancel", headers=CAROL)
    client.delete(f"/api/v1/jobs/{carols}", headers=CAROL)  # carol has no job left
    assert store.jobs.counts("bob")["QUEUED"] == -1

    assert store.scheduling.recount_owners() == 2
    assert store.jobs.counts("bob") == counts(QUEUED=1, CANCELLED=2)
    assert store.jobs.counts("carol") == ZERO
    check_store_invariants(store)
    assert store.scheduling.recount_owners() == 0  # once per store


# Who asked


def test_the_history_and_the_feed_name_who_asked_for_each_change(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    job = submit(client, BOB)["id"]
    client.post(f"/api/v1/jobs/{job}/cancel", headers=BOB)
    client.post(f"/api/v1/jobs/{job}/retry", headers=ADMIN)  # an admin acts on bob's job
    worker_id, token = register(client, "host")
    assert commit(store, [(job, worker_id)]) == [1]
    base = f"/api/v1/jobs/{job}/attempts/1"
    assert client.post(f"{base}/start", headers=token).status_code == 200
    assert client.post(f"/api/v1/jobs/{job}/cancel", headers=BOB).status_code == 200
    ended = client.post(f"{base}/result", json={"reason": "cancelled"}, headers=token)
    assert ended.status_code == 200, ended.get_json()

    events = client.get(f"/api/v1/jobs/{job}/events", headers=BOB).get_json()["events"]
    assert [(e["to"], e["actor"]) for e in events] == [
        ("QUEUED", "bob"),  # submitted
        ("CANCELLED", "bob"),
        ("QUEUED", "admin"),  # retried
        ("ASSIGNED", None),  # the scheduler
        ("RUNNING", None),  # the worker
        ("CANCELLED", None),  # the worker stopped it, as bob asked (the feed says when)
    ]
    assert client.delete(f"/api/v1/jobs/{job}", headers=ADMIN).status_code == 204
    bobs_last = submit(client, BOB)["id"]
    feed = [e for e in until(stream(client, BOB), "job", bobs_last) if e["id"] == job]
    assert [(e["kind"], e.get("to"), e["actor"]) for e in feed] == [
        ("job", "QUEUED", "bob"),
        ("job", "CANCELLED", "bob"),
        ("job", "QUEUED", "admin"),
        ("job", "ASSIGNED", None),
        ("job", "RUNNING", None),
        ("job_cancel_requested", None, "bob"),
        ("job", "CANCELLED", None),
        ("job_deleted", None, "admin"),
    ]

    # Retention is the system's doing.
    client.post(f"/api/v1/jobs/{bobs_last}/cancel", headers=BOB)
    clock.advance(10)
    assert purge_finished(store, retention_s=5) == 1
    entries = store.redis.xrange(store.keys.events, "-", "+")
    (_, purged) = entries[-1]
    assert (purged["kind"], purged["id"]) == ("job_deleted", bobs_last)
    assert json.loads(purged["data"])["actor"] is None


# Worker tokens


def attempt_call(
    client: FlaskClient, job_id: str, attempt: int, call: str, token: dict[str, str]
) -> Any:
    base = f"/api/v1/jobs/{job_id}/attempts/{attempt}"
    if call == "start":
        return client.post(f"{base}/start", headers=token)
    if call == "output":
        chunk = {"seq": 1, "stream": "stdout", "at": 1_700_000_000.0, "data": "x"}
        return client.post(f"{base}/output", json={"chunks": [chunk]}, headers=token)
    return client.post(f"{base}/result", json={"exit_code": 0}, headers=token)


CALLS = ("start", "output", "result")


def check_refused_without_a_word(
    response: Any, job: dict[str, Any], holder: str | None, status: int, code: str
) -> None:
    """Refused with `status`, and neither the job's state nor its holder in the answer."""
    error = error_of(response, status)
    assert error["code"] == code and error["details"] is None
    text = json.dumps(error)
    assert job["state"] not in text and job["state"].lower() not in text, text
    if holder is not None:
        assert holder not in text, text


def test_a_worker_is_refused_403_on_another_workers_attempt_and_learns_nothing(
    client: FlaskClient, store: Store
) -> None:
    job = submit(client, BOB)["id"]
    holder, holder_token = register(client, "holder")
    _other, other_token = register(client, "other")
    assert commit(store, [(job, holder)]) == [1]
    for state in ("ASSIGNED", "RUNNING"):
        before = store.jobs.get(job)
        assert before["state"] == state
        for call in CALLS:
            for attempt in (1, 2):  # the current attempt, and one not made yet
                response = attempt_call(client, job, attempt, call, other_token)
                check_refused_without_a_word(response, before, holder, 403, "forbidden")
        assert store.jobs.get(job) == before
        assert attempt_call(client, job, 1, "start", holder_token).status_code == 200
    # The holder's own wrong attempt number is about its own job: 409, as before.
    response = attempt_call(client, job, 2, "result", holder_token)
    assert error_of(response, 409)["code"] == "stale_attempt"


def test_a_worker_that_lost_its_attempt_hears_409_but_not_about_the_new_holder(
    client: FlaskClient, store: Store
) -> None:
    job = submit(client, BOB)["id"]
    first, first_token = register(client, "first")
    second, second_token = register(client, "second")
    assert commit(store, [(job, first)]) == [1]
    assert attempt_call(client, job, 1, "start", first_token).status_code == 200
    store.workers.mark_lost(first, max_requeues=3)  # the job is requeued
    for call in CALLS:  # its own attempt, lost: stale, as it was
        response = attempt_call(client, job, 1, call, first_token)
        assert error_of(response, 409)["code"] == "stale_attempt"
    assert commit(store, [(job, second)]) == [1]
    now = store.jobs.get(job)
    for call in CALLS:
        # Its old attempt, now that another worker holds the job: 409, not a word of it.
        response = attempt_call(client, job, 1, call, first_token)
        check_refused_without_a_word(response, now, second, 409, "stale_attempt")
        # The new holder naming the first worker's attempt: the job is its own now, so it
        # hears that the attempt is over.
        response = attempt_call(client, job, 1, call, second_token)
        assert error_of(response, 409)["code"] == "stale_attempt"
    # A third worker, which never held it, hears 403 about either attempt.
    _third, third_token = register(client, "third")
    for attempt in (1, 2):
        response = attempt_call(client, job, attempt, "start", third_token)
        check_refused_without_a_word(response, now, second, 403, "forbidden")
    assert store.jobs.get(job) == now
    assert attempt_call(client, job, 2, "start", second_token).status_code == 200

