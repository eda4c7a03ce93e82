"""The HTTP contract through Flask's test client on fakeredis: shapes, statuses, errors."""

from collections.abc import Iterator
from typing import Any

import fakeredis
import pytest
from flask.testing import FlaskClient
from marshmallow import Schema

from api.app import create_app
from scheduler.loop import schedule_once
from shared.config import Config
from shared.schemas.errors import ErrorSchema
from shared.store import Store, connect

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
CONFIG = Config.from_env(
    {},
    admin_token="admin-token",
    worker_join_token="join-token",
    max_request_bytes=64 * 1024,
    max_job_cpu=8.0,
)


@pytest.fixture
def store() -> Store:
    return Store(fakeredis.FakeRedis(decode_responses=True))


@pytest.fixture
def client(store: Store) -> Iterator[FlaskClient]:
    yield create_app(CONFIG, store).test_client()


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    body = response.get_json()
    assert ErrorSchema().validate(body) == {}
    error: dict[str, Any] = body["error"]
    return error


def submit(client: FlaskClient, **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"command": ["echo", "hi"], **spec}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


def register(
    client: FlaskClient, cpu: float = 2, memory_mb: int = 1024
) -> tuple[str, dict[str, str]]:
    body = {"hostname": "host-a", "capacity": {"cpu": cpu, "memory_mb": memory_mb}}
    answer = client.post("/api/v1/workers/register", json=body, headers=JOIN).get_json()
    return answer["worker_id"], {"Authorization": f"Bearer {answer['token']}"}


def test_submit_returns_the_queued_job(client: FlaskClient) -> None:
    job = submit(
        client, resources={"cpu": 0.25, "memory_mb": 64}, name="hello", labels={"team": "a"}
    )
    assert job["state"] == "QUEUED"
    assert job["resources"] == {"cpu": 0.25, "memory_mb": 64, "gpus": 0}
    assert job["image"] == CONFIG.default_image
    assert job["owner"] == "admin"
    assert job["created_at"].endswith("+00:00")
    fetched = client.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN).get_json()
    assert fetched == job


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"command": "echo hi"}, "command"),
        ({"command": []}, "command"),
        ({"command": ["x"], "resources": {"cpu": -1}}, "resources"),
        ({"command": ["x"], "resources": {"memory_mb": "lots"}}, "resources"),
        ({"command": ["x"], "surprise": True}, "surprise"),
        ({"command": ["x"], "max_retries": 101}, "max_retries"),
        ({"command": ["x"], "env": {"1BAD": "v"}}, "env"),
        ({"command": ["x"], "priority": 5000}, "priority"),
        ({}, "command"),
    ],
)
def test_invalid_submissions_get_422_naming_the_field(
    client: FlaskClient, body: dict, field: str
) -> None:
    error = error_of(client.post("/api/v1/jobs", json=body, headers=ADMIN), 422)
    assert error["code"] == "invalid"
    assert field in error["details"]["json"]


def test_a_request_above_the_job_limits_is_refused(client: FlaskClient) -> None:
    error = error_of(
        client.post(
            "/api/v1/jobs", json={"command": ["x"], "resources": {"cpu": 16}}, headers=ADMIN
        ),
        422,
    )
    assert "JOBYARD_MAX_JOB_CPU" in str(error["details"])


def test_malformed_json_is_400(client: FlaskClient) -> None:
    response = client.post(
        "/api/v1/jobs", data="{not json", headers={**ADMIN, "Content-Type": "application/json"}
    )
    assert error_of(response, 400)["code"] == "bad_request"


def test_a_body_over_the_limit_is_413(client: FlaskClient) -> None:
    response = client.post("/api/v1/jobs", json={"command": ["x" * 100_000]}, headers=ADMIN)
    assert error_of(response, 413)["code"] == "too_large"


def test_tokens_are_required_and_checked(client: FlaskClient) -> None:
    assert error_of(client.get("/api/v1/jobs"), 401)["code"] == "unauthorized"
    assert error_of(client.get("/api/v1/jobs", headers={"Authorization": "Bearer wrong"}), 401)
    assert error_of(client.get("/api/v1/jobs", headers={"Authorization": "Basic abc"}), 401)
    # The join token may register, nothing else.
    assert error_of(client.get("/api/v1/jobs", headers=JOIN), 403)["code"] == "forbidden"


def test_worker_tokens_only_reach_worker_endpoints_for_themselves(client: FlaskClient) -> None:
    worker_id, token = register(client)
    other_id, _ = register(client)
    assert error_of(client.get("/api/v1/jobs", headers=token), 403)
    response = client.post(f"/api/v1/workers/{other_id}/heartbeat", json={}, headers=token)
    assert error_of(response, 403)
    assert (
        client.post(f"/api/v1/workers/{worker_id}/heartbeat", json={}, headers=token).status_code
        == 200
    )
    job = submit(client)
    assert error_of(client.post(f"/api/v1/jobs/{job['id']}/attempts/1/start", headers=ADMIN), 403)


def test_unknown_things_are_404_json(client: FlaskClient) -> None:
    assert error_of(client.get("/api/v1/jobs/nope", headers=ADMIN), 404)["code"] == "not_found"
    assert error_of(client.get("/api/v1/jobs/nope/events", headers=ADMIN), 404)
    assert error_of(client.get("/no/such/page"), 404)


def test_cancel_queued_then_409_once_terminal(client: FlaskClient) -> None:
    job = submit(client)
    cancelled = client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN).get_json()
    assert (cancelled["state"], cancelled["reason"]) == ("CANCELLED", "cancelled")
    error = error_of(client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN), 409)
    assert error["details"] == {"state": "CANCELLED"}


def test_idempotency_key_returns_the_first_job(client: FlaskClient) -> None:
    headers = {**ADMIN, "Idempotency-Key": "abc"}
    first = client.post("/api/v1/jobs", json={"command": ["x"]}, headers=headers)
    again = client.post("/api/v1/jobs", json={"command": ["y"]}, headers=headers)
    assert (first.status_code, again.status_code) == (201, 200)
    assert again.get_json()["id"] == first.get_json()["id"]


def test_the_whole_worker_conversation(client: FlaskClient, store: Store) -> None:
    job = submit(client, resources={"cpu": 1, "memory_mb": 128})
    worker_id, token = register(client)
    assert schedule_once(store, CONFIG) == 1
    polled = client.get(f"/api/v1/workers/{worker_id}/assignments?wait=1", headers=token).get_json()
    assert [(j["id"], j["attempt"], j["command"]) for j in polled["jobs"]] == [
        (job["id"], 1, ["echo", "hi"])
    ]
    assert (
        client.get(f"/api/v1/workers/{worker_id}/assignments?wait=0.1", headers=token).status_code
        == 204
    )
    base = f"/api/v1/jobs/{job['id']}/attempts/1"
    assert client.post(f"{base}/start", headers=token).get_json()["state"] == "RUNNING"
    chunks = [
        {"seq": 1, "stream": "stdout", "at": 1700000000.5, "data": "hi\n"},
        {"seq": 2, "stream": "stderr", "at": 1700000000.6, "data": "oops\n"},
    ]
    assert client.post(f"{base}/output", json={"chunks": chunks}, headers=token).get_json() == {
        "cancel": False
    }
    assert (
        error_of(client.post(f"/api/v1/jobs/{job['id']}/attempts/2/start", headers=token), 409)[
            "code"
        ]
        == "stale_attempt"
    )
    # A result that says neither how the job exited nor why it ended is refused, not
    # taken as "failed, exit code unknown".
    assert error_of(client.post(f"{base}/result", json={}, headers=token), 422)["code"] == "invalid"
    result = {"exit_code": 0, "metrics": {"duration_s": 0.2}}
    assert (
        client.post(f"{base}/result", json=result, headers=token).get_json()["state"] == "COMPLETED"
    )
    assert (
        client.post(f"{base}/result", json=result, headers=token).status_code == 200
    )  # repeat is harmless
    output = client.get(f"/api/v1/jobs/{job['id']}/output", headers=ADMIN).get_json()
    assert [(c["stream"], c["data"]) for c in output["chunks"]] == [
        ("stdout", "hi\n"),
        ("stderr", "oops\n"),
    ]
    assert output["complete"] is True and output["next_offset"] == 2
    events = client.get(f"/api/v1/jobs/{job['id']}/events", headers=ADMIN).get_json()["events"]
    assert [(e["from"], e["to"]) for e in events] == [
        (None, "QUEUED"),
        ("QUEUED", "ASSIGNED"),
        ("ASSIGNED", "RUNNING"),
        ("RUNNING", "COMPLETED"),
    ]
    workers = client.get("/api/v1/workers", headers=ADMIN).get_json()["workers"]
    assert workers[0]["reserved"]["jobs"] == 0 and workers[0]["status"] == "alive"
    stats = client.get("/api/v1/stats", headers=ADMIN).get_json()
    assert stats["counts"]["COMPLETED"] == 1 and stats["capacity"]["cpu"] == 2.0


def test_the_dispatch_requests_build_no_schema(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Schemas are built once at startup: webargs given a schema class builds (and
    deep-copies) a new one for every request, which cost the dispatch path a third of its
    CPU."""
    worker_id, token = register(client)

    def one_job() -> None:
        job = submit(client)
        assert schedule_once(store, CONFIG) == 1
        poll = client.get(f"/api/v1/workers/{worker_id}/assignments?wait=1", headers=token)
        assert poll.status_code == 200
        base = f"/api/v1/jobs/{job['id']}/attempts/1"
        assert client.post(f"{base}/start", headers=token).status_code == 200
        result = client.post(f"{base}/result", json={"exit_code": 0}, headers=token)
        assert result.status_code == 200

    one_job()  # nested schemas are built on their first use
    built = []
    init = Schema.__init__

    def counting_init(self: Schema, *args: Any, **kwargs: Any) -> None:
        built.append(type(self).__name__)
        init(self, *args, **kwargs)

    monkeypatch.setattr(Schema, "__init__", counting_init)
    one_job()
    assert built == []


def test_a_job_nobody_can_hold_says_why(client: FlaskClient, store: Store) -> None:
    register(client, cpu=2, memory_mb=1024)
    job = submit(client, resources={"cpu": 4, "memory_mb": 64})
    schedule_once(store, CONFIG)
    fetched = client.get(f"/api/v1/jobs/{job['id']}", headers=ADMIN).get_json()
    assert fetched["state"] == "QUEUED"
    assert fetched["pending_reason"] == (
        "no live worker can ever hold it: largest worker has 2 CPU, 1024 MB; job needs 4 CPU, 64 MB"
    )


def test_redis_down_is_503_json_and_readyz_says_so() -> None:
    dead = Store(connect("redis://127.0.0.1:1/0"))
    client = create_app(CONFIG, dead).test_client()
    assert error_of(client.get("/api/v1/jobs", headers=ADMIN), 503)["code"] == "unavailable"
    assert error_of(client.post("/api/v1/jobs", json={"command": ["x"]}, headers=ADMIN), 503)
    assert client.get("/readyz").status_code == 503
    assert client.get("/healthz").status_code == 200


def test_openapi_document_and_metrics_are_served(client: FlaskClient) -> None:
    spec = client.get("/api/v1/openapi.json").get_json()
    assert "/api/v1/jobs" in spec["paths"] and "/api/v1/workers/register" in spec["paths"]
    submit(client)
    metrics = client.get("/metrics", headers=ADMIN).get_data(as_text=True)
    assert 'jobyard_jobs{state="QUEUED"} 1' in metrics


def test_retry_queues_a_cancelled_job_again_and_refuses_others(client: FlaskClient) -> None:
    job = submit(client)
    error = error_of(client.post(f"/api/v1/jobs/{job['id']}/retry", headers=ADMIN), 409)
    assert error["details"] == {"state": "QUEUED"}
    client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    retried = client.post(f"/api/v1/jobs/{job['id']}/retry", headers=ADMIN).get_json()
    assert (retried["state"], retried["reason"]) == ("QUEUED", None)
    assert error_of(client.post("/api/v1/jobs/nope/retry", headers=ADMIN), 404)


def test_a_worker_drains_then_deregisters_and_its_token_dies(
    client: FlaskClient, store: Store
) -> None:
    worker_id, token = register(client)
    other_id, _ = register(client)
    assert error_of(client.post(f"/api/v1/workers/{other_id}/drain", headers=token), 403)
    drained = client.post(f"/api/v1/workers/{worker_id}/drain", headers=token).get_json()
    assert drained["status"] == "draining"
    submit(client)
    schedule_once(store, CONFIG)
    assert (
        client.get(f"/api/v1/workers/{worker_id}/assignments?wait=0", headers=token).status_code
        == 204
    )
    assert client.delete(f"/api/v1/workers/{worker_id}", headers=token).status_code == 204
    assert error_of(
        client.post(f"/api/v1/workers/{worker_id}/heartbeat", json={}, headers=token), 401
    )
    assert client.delete(f"/api/v1/workers/{other_id}", headers=ADMIN).status_code == 409


def test_a_worker_says_at_registration_whether_it_allows_networks(client: FlaskClient) -> None:
    for allows in (True, False, None):
        body: dict[str, Any] = {"hostname": "h", "capacity": {"cpu": 1, "memory_mb": 64}}
        if allows is not None:
            body["allows_network"] = allows
        assert client.post("/api/v1/workers/register", json=body, headers=JOIN).status_code == 201
    workers = client.get("/api/v1/workers", headers=ADMIN).get_json()["workers"]
    # Left out, the agent allows none (as agents before the field did).
    assert sorted(w["allows_network"] for w in workers) == [False, False, True]


def test_only_images_matching_the_allowed_patterns_are_accepted(store: Store) -> None:
    config = Config.from_env(
        {}, admin_token="admin-token", allowed_images=("jobyard/*", "registry.local/team/*:v*")
    )
    client = create_app(config, store).test_client()
    for image in ("jobyard/busybox:latest", "registry.local/team/app:v3"):
        assert submit(client, image=image)["image"] == image
    response = client.post(
        "/api/v1/jobs", json={"command": ["true"], "image": "busybox:latest"}, headers=ADMIN
    )
    error = error_of(response, 422)
    assert error["details"]["json"]["image"] == [
        "must match one of jobyard/*, registry.local/team/*:v*"
    ]
