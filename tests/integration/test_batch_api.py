"""POST /api/v1/jobs/batch on a real redis-server: many submissions checked as a whole and
stored in one atomic step, in order, with per-item idempotency."""

from typing import Any

import pytest
import redis
from flask.testing import FlaskClient

from api.app import create_app
from shared.batches import MAX_BATCH
from shared.config import Config
from shared.resources import Resources
from shared.schemas.errors import ErrorSchema
from shared.states import JobState
from shared.store import Store
from shared.store.jobs import Submission

ADMIN = {"Authorization": "Bearer admin-token"}
BOB = {"Authorization": "Bearer bob-token"}
CONFIG = Config.from_env(
    {}, admin_token="admin-token", worker_join_token="join-token", max_job_cpu=4.0
)
BATCH = "/api/v1/jobs/batch"


@pytest.fixture
def store(store: Store) -> Store:
    store.tokens.create("bob", "user", "bob-token")
    return store


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def jobs(n: int, **spec: Any) -> list[dict[str, Any]]:
    return [{"command": ["echo", str(i)], **spec} for i in range(n)]


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert ErrorSchema().validate(body) == {}
    error: dict[str, Any] = body["error"]
    return error


def queued(store: Store) -> list[str]:
    return list(store.redis.zrange(store.keys.queue, 0, -1))


def test_a_batch_is_stored_in_order_and_queued(client: FlaskClient, store: Store) -> None:
    response = client.post(BATCH, json={"jobs": jobs(3, labels={"set": "a"})}, headers=BOB)
    assert response.status_code == 201, response.get_json()
    answered = response.get_json()["jobs"]
    assert [job["command"] for job in answered] == [["echo", "0"], ["echo", "1"], ["echo", "2"]]
    assert {job["state"] for job in answered} == {JobState.QUEUED}
    assert {job["owner"] for job in answered} == {"bob"}
    ids = [job["id"] for job in answered]
    assert len(set(ids)) == 3
    # In the queue in submission order (same priority), and each as GET shows it.
    assert queued(store) == ids
    for job in answered:
        assert client.get(f"/api/v1/jobs/{job['id']}", headers=BOB).get_json() == job
    listed = client.get("/api/v1/jobs?label=set=a", headers=BOB).get_json()
    assert [job["id"] for job in listed["jobs"]] == ids[::-1]
    assert listed["counts"]["QUEUED"] == 3
    assert store.jobs.counts()["QUEUED"] == 3


def test_one_bad_item_refuses_the_whole_batch(client: FlaskClient, store: Store) -> None:
    body = {"jobs": [{"command": ["true"]}, {"command": []}, {"command": ["x"], "priority": 5000}]}
    error = error_of(client.post(BATCH, json=body, headers=BOB), 422)
    assert set(error["details"]["json"]["jobs"]) == {"1", "2"}
    assert "command" in error["details"]["json"]["jobs"]["1"]
    assert "priority" in error["details"]["json"]["jobs"]["2"]
    assert queued(store) == []
    assert store.jobs.counts()["QUEUED"] == 0


def test_an_item_past_the_installations_limits_refuses_the_batch(
    client: FlaskClient, store: Store
) -> None:
    body = {"jobs": [{"command": ["true"]}, {"command": ["true"], "resources": {"cpu": 8}}]}
    error = error_of(client.post(BATCH, json=body, headers=BOB), 422)
    assert error["details"]["json"]["jobs"] == {
        "1": {"resources": {"cpu": ["at most 4 (JOBYARD_MAX_JOB_CPU)"]}}
    }
    assert queued(store) == []


@pytest.mark.parametrize("size", [0, MAX_BATCH + 1])
def test_a_batch_holds_one_to_max_batch_jobs(client: FlaskClient, size: int) -> None:
    error = error_of(client.post(BATCH, json={"jobs": jobs(size)}, headers=BOB), 422)
    assert "jobs" in error["details"]["json"]


@pytest.mark.parametrize("body", [[], {"jobs": "no"}, {"jobs": [1, 2]}, {}])
def test_a_malformed_batch_is_a_clear_error(client: FlaskClient, body: Any) -> None:
    response = client.post(BATCH, json=body, headers=BOB)
    assert response.status_code in (400, 422)
    assert ErrorSchema().validate(response.get_json()) == {}


def test_the_largest_batch_is_taken(client: FlaskClient, store: Store) -> None:
    response = client.post(BATCH, json={"jobs": jobs(MAX_BATCH)}, headers=BOB)
    assert response.status_code == 201
    assert len(response.get_json()["jobs"]) == MAX_BATCH
    assert store.redis.zcard(store.keys.queue) == MAX_BATCH


def test_an_idempotency_key_makes_a_resent_batch_return_the_first_jobs(
    client: FlaskClient, store: Store
) -> None:
    headers = {**BOB, "Idempotency-Key": "array-7"}
    first = client.post(BATCH, json={"jobs": jobs(4)}, headers=headers)
    again = client.post(BATCH, json={"jobs": jobs(4)}, headers=headers)
    assert first.status_code == 201 and again.status_code == 200
    assert [j["id"] for j in again.get_json()["jobs"]] == [
        j["id"] for j in first.get_json()["jobs"]
    ]
    assert store.redis.zcard(store.keys.queue) == 4
    # The key is the owner's: another user's same key makes their own jobs.
    other = client.post(
        BATCH, json={"jobs": jobs(4)}, headers={**ADMIN, "Idempotency-Key": "array-7"}
    )
    assert other.status_code == 201
    assert store.redis.zcard(store.keys.queue) == 8


def test_each_item_keeps_whether_it_named_memory(client: FlaskClient, store: Store) -> None:
    body = {"jobs": [{"command": ["a"]}, {"command": ["b"], "resources": {"memory_mb": 64}}]}
    ids = [job["id"] for job in client.post(BATCH, json=body, headers=BOB).get_json()["jobs"]]
    assert [store.redis.hget(store.keys.job(i), "cpu_only") for i in ids] == ["1", "0"]


def test_a_collision_stores_nothing_of_the_batch(store: Store) -> None:
    taken = store.jobs.submit("taken", "bob", {"command": ["x"]}, Resources(100, 64, 0), 0)[0]
    batch = [
        Submission("fresh", {"command": ["y"]}, Resources(100, 64, 0), 0),
        Submission(taken["id"], {"command": ["z"]}, Resources(100, 64, 0), 0),
    ]
    with pytest.raises(redis.ResponseError, match="collision"):
        store.jobs.submit_many("bob", batch)
    assert queued(store) == ["taken"]
    assert not store.redis.exists(store.keys.job("fresh"))
    assert store.jobs.counts()["QUEUED"] == 1
