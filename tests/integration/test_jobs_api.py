"""Automatic retries and DELETE through the HTTP API (Flask's test client) on a real
redis-server: what a user and a worker see, statuses and error shapes included."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from api.extensions import Services
from api.token_cache import TOKEN_CACHE_S, TokenCache
from scheduler.reaper import reap_once
from shared.config import Config
from shared.schemas.errors import ErrorSchema
from shared.store import Store
from tests.store_support import ManualClock, commit

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
BOB = {"Authorization": "Bearer bob-token"}
CONFIG = Config.from_env(
    {},
    admin_token="admin-token",
    worker_join_token="join-token",
    retry_backoff_s=7.0,
    retry_backoff_max_s=10.0,
)


@pytest.fixture
def store(store: Store) -> Store:
    """The integration tests' store (tests/integration/conftest.py), with bob's user token."""
    store.tokens.create("bob", "user", "bob-token")
    return store


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert ErrorSchema().validate(body) == {}
    error: dict[str, Any] = body["error"]
    return error


def submit(client: FlaskClient, headers: dict[str, str] = ADMIN, **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"command": ["false"], **spec}, headers=headers)
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


def run_attempt(
    client: FlaskClient, store: Store, job_id: str, attempt: int, result: dict[str, Any]
) -> dict[str, Any]:
    """A worker registers, is given the job, starts it and reports `result`."""
    answer = client.post(
        "/api/v1/workers/register",
        json={"hostname": f"host-{attempt}", "capacity": {"cpu": 2, "memory_mb": 1024}},
        headers=JOIN,
    ).get_json()
    token = {"Authorization": f"Bearer {answer['token']}"}
    assert commit(store, [(job_id, answer["worker_id"])]) == [1]
    base = f"/api/v1/jobs/{job_id}/attempts/{attempt}"
    assert client.post(f"{base}/start", headers=token).status_code == 200
    response = client.post(f"{base}/result", json=result, headers=token)
    assert response.status_code == 200, response.get_json()
    again = client.post(f"{base}/result", json=result, headers=token)  # a repeated post
    assert again.get_json() == response.get_json()
    body: dict[str, Any] = response.get_json()
    return body


@pytest.mark.parametrize("value", [-1, 101, "two"])
def test_max_retries_out_of_range_is_422(client: FlaskClient, value: object) -> None:
    response = client.post(
        "/api/v1/jobs", json={"command": ["x"], "max_retries": value}, headers=ADMIN
    )
    assert "max_retries" in error_of(response, 422)["details"]["json"]


def test_a_failing_job_retries_after_the_configured_backoff_then_fails(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    job = submit(client, max_retries=1)
    assert (job["max_retries"], job["retries"], job["retry_at"]) == (1, 0, None)
    assert run_attempt(client, store, job["id"], 1, {"exit_code": 3})["state"] == "QUEUED"
    waiting = client.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN).get_json()
    assert (waiting["state"], waiting["reason"], waiting["exit_code"]) == ("QUEUED", "exit_code", 3)
    assert waiting["retries"] == 1
    assert waiting["retry_at"] == "2023-11-14T22:13:27.000+00:00"  # JOBYARD_RETRY_BACKOFF_S=7
    assert waiting["pending_reason"] == (
        "retry 1 of 1 at 2023-11-14T22:13:27+00:00 after exit_code 3"
    )
    # A user retry is for finished jobs; this one is not finished.
    assert error_of(client.post(f"/api/v1/jobs/{job['id']}/retry", headers=ADMIN), 409)
    assert error_of(client.delete(f"/api/v1/jobs/{job['id']}", headers=ADMIN), 409)["details"] == {
        "state": "QUEUED"
    }

    clock.advance(7)
    reap_once(store, CONFIG)  # promotes it
    assert client.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN).get_json()["retry_at"] is None
    ended = run_attempt(client, store, job["id"], 2, {"exit_code": 3})
    assert ended["state"] == "FAILED"
    job = client.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN).get_json()
    assert (job["state"], job["reason"], job["retries"], job["attempt"]) == (
        "FAILED",
        "exit_code",
        1,
        2,
    )
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=ADMIN).get_json()["events"]
    assert [(e["to"], e["reason"], e["attempt"]) for e in events] == [
        ("QUEUED", None, 0),
        ("ASSIGNED", None, 1),
        ("RUNNING", None, 1),
        ("QUEUED", "exit_code", 1),
        ("ASSIGNED", None, 2),
        ("RUNNING", None, 2),
        ("FAILED", "exit_code", 2),
    ]


def test_cancel_while_waiting_to_retry_ends_the_job_at_once(
    client: FlaskClient, store: Store
) -> None:
    job = submit(client, max_retries=3)
    run_attempt(client, store, job["id"], 1, {"exit_code": None, "reason": "error", "error": "x"})
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN).get_json()
    assert (cancelled["state"], cancelled["reason"], cancelled["retry_at"]) == (
        "CANCELLED",
        "cancelled",
        None,
    )


def test_delete_removes_a_finished_job_and_everything_of_it(
    client: FlaskClient, store: Store
) -> None:
    job = submit(client)
    run_attempt(client, store, job["id"], 1, {"exit_code": 0})
    other = submit(client)
    client.post(f"/api/v1/jobs/{other['id']}/cancel", headers=ADMIN)
    assert client.delete(f"/api/v1/jobs/{job['id']}", headers=ADMIN).status_code == 204
    for path in ("", "/events", "/output"):
        assert error_of(client.get(f"/api/v1/jobs/{job['id']}{path}", headers=ADMIN), 404)
    assert error_of(client.post(f"/api/v1/jobs/{job['id']}/retry", headers=ADMIN), 404)
    assert error_of(client.delete(f"/api/v1/jobs/{job['id']}", headers=ADMIN), 404)
    listing = client.get("/api/v1/jobs", headers=ADMIN).get_json()
    assert [j["id"] for j in listing["jobs"]] == [other["id"]]
    assert listing["counts"] == {
        "QUEUED": 0,
        "ASSIGNED": 0,
        "RUNNING": 0,
        "COMPLETED": 0,
        "FAILED": 0,
        "CANCELLED": 1,
    }
    assert not [key for key in store.redis.scan_iter(match=f"*{job['id']}*")]


def test_delete_of_another_users_job_is_404_and_changes_nothing(
    client: FlaskClient, store: Store
) -> None:
    mine = submit(client, headers=BOB)
    client.post(f"/api/v1/jobs/{mine['id']}/cancel", headers=BOB)
    admins = submit(client)
    client.post(f"/api/v1/jobs/{admins['id']}/cancel", headers=ADMIN)
    assert error_of(client.delete(f"/api/v1/jobs/{admins['id']}", headers=BOB), 404)
    assert client.get(f"/api/v1/jobs/{admins['id']}", headers=ADMIN).status_code == 200
    assert error_of(client.delete("/api/v1/jobs/no-such-job", headers=BOB), 404)
    assert client.delete(f"/api/v1/jobs/{mine['id']}", headers=BOB).status_code == 204
    assert client.delete(f"/api/v1/jobs/{admins['id']}", headers=ADMIN).status_code == 204


def test_a_deregistered_workers_token_dies_everywhere_within_the_cache_period(
    store: Store,
) -> None:
    """Two API processes (two apps) on one Redis: the one that deregisters the worker
    refuses its token at once; the other remembers it for at most TOKEN_CACHE_S."""
    this_app, other_app = create_app(CONFIG, store), create_app(CONFIG, store)
    clock = ManualClock()
    other_app.extensions["jobyard"] = Services(
        CONFIG, store, TokenCache(store.tokens.lookup_hash, clock=clock)
    )
    this, other = this_app.test_client(), other_app.test_client()
    body = {"hostname": "host", "capacity": {"cpu": 2, "memory_mb": 1024}}
    answer = this.post("/api/v1/workers/register", json=body, headers=JOIN).get_json()
    token = {"Authorization": f"Bearer {answer['token']}"}
    worker = f"/api/v1/workers/{answer['worker_id']}"
    assert this.post(f"{worker}/heartbeat", json={}, headers=token).status_code == 200
    assert other.post(f"{worker}/heartbeat", json={}, headers=token).status_code == 200

    assert this.delete(worker, headers=token).status_code == 204
    assert error_of(this.post(f"{worker}/heartbeat", json={}, headers=token), 401)
    clock.advance(TOKEN_CACHE_S / 2)
    # Still remembered there; the worker it names is gone.
    assert error_of(other.post(f"{worker}/heartbeat", json={}, headers=token), 404)
    clock.advance(TOKEN_CACHE_S / 2)
    assert error_of(other.post(f"{worker}/heartbeat", json={}, headers=token), 401)
