"""Rate limits per token (api/limits.py) through Flask's test client on a real redis-server:
the refusal's shape, a count shared by API processes, separate budgets per worker, long
requests counted once, and /metrics for admins only."""

import time
from typing import Any

from flask.testing import FlaskClient

from api.app import create_app
from shared.config import Config
from shared.schemas.errors import ErrorSchema
from shared.store import Store, connect
from tests.helpers import free_port

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
BOB = {"Authorization": "Bearer bob-token"}
LOW = Config.from_env(
    {},
    admin_token="admin-token",
    worker_join_token="join-token",
    rate_limit="3/minute",
    worker_rate_limit="4/minute",
)


def client_of(store: Store, config: Config = LOW) -> FlaskClient:
    return create_app(config, store).test_client()


def refused(response: Any) -> dict[str, Any]:
    assert response.status_code == 429, response.get_data(as_text=True)
    body = response.get_json()
    assert ErrorSchema().validate(body) == {}
    assert body["error"]["code"] == "rate_limited"
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    error: dict[str, Any] = body["error"]
    return error


def register(client: FlaskClient, hostname: str) -> tuple[str, dict[str, str]]:
    body = {"hostname": hostname, "capacity": {"cpu": 1, "memory_mb": 256}}
    response = client.post("/api/v1/workers/register", json=body, headers=JOIN)
    assert response.status_code == 201, response.get_json()
    answer = response.get_json()
    return answer["worker_id"], {"Authorization": f"Bearer {answer['token']}"}


def test_the_fourth_request_is_429_with_retry_after_and_the_error_shape(store: Store) -> None:
    store.tokens.create("bob", "user", "bob-token")
    client = client_of(store)
    for _ in range(3):
        assert client.get("/api/v1/jobs", headers=BOB).status_code == 200
    error = refused(client.get("/api/v1/stats", headers=BOB))  # one budget for all routes
    assert error["details"]["limit"] == "3 per 1 minute"
    # Another token has its own budget, and the raw token is never part of a key.
    assert client.get("/api/v1/jobs", headers=ADMIN).status_code == 200
    counters = store.redis.keys("*")
    assert counters and all(key.startswith("t:") for key in counters)  # the store's prefix
    assert not any("bob-token" in key for key in counters)


def test_the_probes_and_metrics_are_never_limited(store: Store) -> None:
    client = client_of(store)
    for _ in range(5):
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").status_code == 200
        assert client.get("/metrics", headers=ADMIN).status_code == 200
    assert client.get("/api/v1/jobs", headers=ADMIN).status_code == 200


def test_two_api_processes_on_one_redis_share_the_count(store: Store, redis_url: str) -> None:
    store.tokens.create("bob", "user", "bob-token")
    # Two apps, each with its own connections, as two API processes have.
    first, second = client_of(store), client_of(Store(connect(redis_url), "t:"))
    assert first.get("/api/v1/jobs", headers=BOB).status_code == 200
    assert second.get("/api/v1/jobs", headers=BOB).status_code == 200
    assert first.get("/api/v1/jobs", headers=BOB).status_code == 200
    refused(second.get("/api/v1/jobs", headers=BOB))


def test_wrong_tokens_share_the_remote_addresss_budget(store: Store) -> None:
    client = client_of(store)
    for n in range(3):
        wrong = {"Authorization": f"Bearer invented-{n}"}
        assert client.get("/api/v1/jobs", headers=wrong).status_code == 401
    refused(client.get("/api/v1/jobs"))


def test_each_worker_has_its_own_budget_apart_from_the_users(store: Store) -> None:
    store.tokens.create("bob", "user", "bob-token")
    client = client_of(store)
    first, first_token = register(client, "host-a")
    second, second_token = register(client, "host-b")
    beat = {"metrics": {}, "running": []}
    for _ in range(4):  # the worker limit, above the user limit of 3
        response = client.post(f"/api/v1/workers/{first}/heartbeat", json=beat, headers=first_token)
        assert response.status_code == 200, response.get_json()
    runaway = client.post(f"/api/v1/workers/{first}/heartbeat", json=beat, headers=first_token)
    assert refused(runaway)["details"]["limit"] == "4 per 1 minute"
    # The other worker, and a user, are untouched by the runaway one.
    response = client.post(f"/api/v1/workers/{second}/heartbeat", json=beat, headers=second_token)
    assert response.status_code == 200
    assert client.get("/api/v1/jobs", headers=BOB).status_code == 200


def test_a_long_poll_counts_once_however_long_it_waits(store: Store) -> None:
    client = client_of(store)
    worker_id, token = register(client, "host-a")
    url = f"/api/v1/workers/{worker_id}/assignments?wait=1.5"
    started = time.monotonic()
    assert client.get(url, headers=token).status_code == 204
    assert time.monotonic() - started >= 1.4  # it waited, and was answered, not refused
    for _ in range(3):  # the rest of the worker's 4: a long wait cost one request
        assert client.get(url.replace("1.5", "0"), headers=token).status_code == 204
    refused(client.get(url, headers=token))


def test_a_stream_counts_once_and_streams_to_its_end(store: Store) -> None:
    client = client_of(store)
    job = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=ADMIN).get_json()
    client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN)
    response = client.get(f"/api/v1/jobs/{job['id']}/output/stream", headers=ADMIN)
    assert response.status_code == 200
    text = response.get_data(as_text=True)  # streamed to its end: the job is over
    assert "CANCELLED" in text
    refused(client.get("/api/v1/jobs", headers=ADMIN))  # submit, cancel, stream: 3


def test_a_redis_down_does_not_turn_requests_into_500s() -> None:
    # The limiter fails open; the view's own store call answers 503.
    client = client_of(Store(connect(f"redis://127.0.0.1:{free_port()}/0"), "t:"))
    assert client.get("/healthz").status_code == 200
    response = client.get("/api/v1/jobs", headers=ADMIN)
    assert response.status_code == 503
    assert response.get_json()["error"]["code"] == "unavailable"


def test_metrics_need_an_admin_token(store: Store) -> None:
    store.tokens.create("bob", "user", "bob-token")
    client = client_of(store)
    _, worker = register(client, "host-a")
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"Authorization": "Bearer wrong"}).status_code == 401
    assert client.get("/metrics", headers=BOB).status_code == 403
    assert client.get("/metrics", headers=worker).status_code == 403
    assert client.get("/metrics", headers=JOIN).status_code == 403
    response = client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert "jobyard_jobs" in response.get_data(as_text=True)


def test_public_metrics_need_no_token(store: Store) -> None:
    public = Config.from_env({}, admin_token="admin-token", public_metrics=True)
    response = client_of(store, public).get("/metrics")
    assert response.status_code == 200
    assert "jobyard_workers" in response.get_data(as_text=True)
