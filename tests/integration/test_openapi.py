"""The OpenAPI document tells the truth: each error status a handler really answers with,
triggered on a real app over a real redis-server, is declared for its operation and its body
validates against the schema the document gives there; /stats and /workers validate with
figures no single job may ask for; the resource defaults are DEFAULT_JOB_RESOURCES."""

import json
from collections.abc import Callable
from typing import Any

import pytest
import schemathesis
from flask import Flask
from flask.testing import FlaskClient
from schemathesis.core.failures import FailureGroup
from schemathesis.schemas import BaseSchema
from werkzeug.test import TestResponse

from api.app import create_app
from shared.config import Config
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.store import Store
from tests.helpers import free_port
from tests.store_support import commit

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
CONFIG = Config.from_env(
    {}, admin_token="admin-token", worker_join_token="join-token", max_request_bytes=4096
)
ERROR_REF = "#/components/schemas/Error"


@pytest.fixture
def app(store: Store) -> Flask:
    return create_app(CONFIG, store)


@pytest.fixture
def client(app: Flask) -> FlaskClient:
    return app.test_client()


@pytest.fixture
def document(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/api/v1/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.get_json()
    return body


@pytest.fixture
def api_schema(document: dict[str, Any]) -> BaseSchema:
    return schemathesis.openapi.from_dict(document)


def conforms(
    document: dict[str, Any], schema: BaseSchema, path: str, method: str, response: TestResponse
) -> None:
    """The status is declared for the operation (not only covered by `default`) and the
    response validates against the schema the document gives it there."""
    declared = document["paths"][path][method.lower()]["responses"]
    assert str(response.status_code) in declared, (method, path, response.status_code)
    schema[path][method].validate_response(response)


def submit(client: FlaskClient, **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"command": ["true"], **spec}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


def register(client: FlaskClient, cpu: float = 2, memory_mb: int = 1024) -> dict[str, Any]:
    body = {"hostname": "host-a", "capacity": {"cpu": cpu, "memory_mb": memory_mb}}
    response = client.post("/api/v1/workers/register", json=body, headers=JOIN)
    assert response.status_code == 201, response.get_json()
    answer: dict[str, Any] = response.get_json()
    return answer


def _bad_json(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    response = client.post("/api/v1/jobs", data="{", content_type="application/json", headers=ADMIN)
    return "/api/v1/jobs", "POST", response


def _no_token(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    return "/api/v1/jobs", "GET", client.get("/api/v1/jobs")


def _wrong_role(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    return "/api/v1/stats", "GET", client.get("/api/v1/stats", headers=JOIN)


def _unknown_job(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    return "/api/v1/jobs/{job_id}", "GET", client.get("/api/v1/jobs/nope", headers=ADMIN)


def _cancel_twice(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    path = f"/api/v1/jobs/{submit(client)['id']}/cancel"
    assert client.post(path, headers=ADMIN).status_code == 200
    return "/api/v1/jobs/{job_id}/cancel", "POST", client.post(path, headers=ADMIN)


def _too_large(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = {"command": ["echo", "x" * CONFIG.max_request_bytes]}
    return "/api/v1/jobs", "POST", client.post("/api/v1/jobs", json=body, headers=ADMIN)


def _worker_lost(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    answer = register(client)
    store.workers.mark_lost(answer["worker_id"], CONFIG.max_requeues)
    response = client.post(
        f"/api/v1/workers/{answer['worker_id']}/heartbeat",
        json={},
        headers={"Authorization": f"Bearer {answer['token']}"},
    )
    return "/api/v1/workers/{worker_id}/heartbeat", "POST", response


def _invalid_values(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = {"command": [], "resources": {"cpu": -1}}
    return "/api/v1/jobs", "POST", client.post("/api/v1/jobs", json=body, headers=ADMIN)


def _over_the_job_limit(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = {"command": ["true"], "resources": {"cpu": CONFIG.max_job_cpu + 1}}
    return "/api/v1/jobs", "POST", client.post("/api/v1/jobs", json=body, headers=ADMIN)


def _offset_past_stream_ids(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    # Found by schemathesis: Redis refused the stream id, and the API answered 500.
    url = f"/api/v1/jobs/{submit(client)['id']}/output?offset={10**30}"
    return "/api/v1/jobs/{job_id}/output", "GET", client.get(url, headers=ADMIN)


def _lone_surrogate(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    # Found by schemathesis: Redis's Lua JSON refused the string, and the API answered 500.
    # In a text field the field says so (422); anywhere else the whole body is refused.
    answer = register(client)
    response = client.post(
        f"/api/v1/workers/{answer['worker_id']}/heartbeat",
        data='{"metrics": {"note": "half a pair: \\ud83d"}}',
        content_type="application/json",
        headers={"Authorization": f"Bearer {answer['token']}"},
    )
    return "/api/v1/workers/{worker_id}/heartbeat", "POST", response


def _lone_surrogate_in_command(
    client: FlaskClient, store: Store
) -> tuple[str, str, TestResponse]:
    body = '{"command": ["echo", "half a pair: \\ud83d"]}'
    response = client.post(
        "/api/v1/jobs", data=body, content_type="application/json", headers=ADMIN
    )
    return "/api/v1/jobs", "POST", response


def _nested_too_deep(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = '{"command": ' + "[" * 1000 + "]" * 1000 + "}"
    response = client.post(
        "/api/v1/jobs", data=body, content_type="application/json", headers=ADMIN
    )
    return "/api/v1/jobs", "POST", response


def _not_json(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    response = client.post(
        "/api/v1/jobs", data='{"command": ["true"]}', content_type="text/plain", headers=ADMIN
    )
    return "/api/v1/jobs", "POST", response


def _chunk_after_year_9999(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    # Found by schemathesis: stored, it made every read of the job's output a 500.
    job_id = submit(client)["id"]
    answer = register(client)
    assert commit(store, [(job_id, answer["worker_id"])]) == [1]
    chunk = {"seq": 1, "stream": "stdout", "at": 1e300, "data": "x"}
    response = client.post(
        f"/api/v1/jobs/{job_id}/attempts/1/output",
        json={"chunks": [chunk]},
        headers={"Authorization": f"Bearer {answer['token']}"},
    )
    return "/api/v1/jobs/{job_id}/attempts/{attempt}/output", "POST", response


def _name_in_use(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = {"name": "bob", "role": "user"}
    assert client.post("/api/v1/tokens", json=body, headers=ADMIN).status_code == 201
    return "/api/v1/tokens", "POST", client.post("/api/v1/tokens", json=body, headers=ADMIN)


def _reserved_name(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    body = {"name": "admin", "role": "user"}
    return "/api/v1/tokens", "POST", client.post("/api/v1/tokens", json=body, headers=ADMIN)


def _unknown_token(client: FlaskClient, store: Store) -> tuple[str, str, TestResponse]:
    response = client.delete("/api/v1/tokens/nobody", headers=ADMIN)
    return "/api/v1/tokens/{name}", "DELETE", response


TRIGGERS: dict[str, tuple[int, Callable[[FlaskClient, Store], tuple[str, str, TestResponse]]]] = {
    "malformed JSON": (400, _bad_json),
    "no token": (401, _no_token),
    "wrong role": (403, _wrong_role),
    "unknown job": (404, _unknown_job),
    "cancel of a cancelled job": (409, _cancel_twice),
    "body over JOBYARD_MAX_REQUEST_BYTES": (413, _too_large),
    "heartbeat of a lost worker": (410, _worker_lost),
    "invalid values": (422, _invalid_values),
    "over JOBYARD_MAX_JOB_CPU": (422, _over_the_job_limit),
    "output offset past any stream id": (422, _offset_past_stream_ids),
    "a lone UTF-16 surrogate in a metrics string": (400, _lone_surrogate),
    "a lone UTF-16 surrogate in a command": (422, _lone_surrogate_in_command),
    "JSON nested 1,000 deep": (400, _nested_too_deep),
    "a body that is not JSON": (415, _not_json),
    "an output chunk read after the year 9999": (422, _chunk_after_year_9999),
    "a token name in use": (409, _name_in_use),
    "a token name of a configured identity": (422, _reserved_name),
    "revoking an unknown token": (404, _unknown_token),
}


@pytest.mark.parametrize("case", list(TRIGGERS))
def test_each_error_a_handler_sends_is_what_the_document_says(
    client: FlaskClient,
    store: Store,
    document: dict[str, Any],
    api_schema: BaseSchema,
    case: str,
) -> None:
    status, trigger = TRIGGERS[case]
    path, method, response = trigger(client, store)
    assert response.status_code == status, response.get_data(as_text=True)
    assert set(response.get_json()["error"]) == {"code", "message", "details"}
    conforms(document, api_schema, path, method, response)


def test_redis_down_is_a_503_the_document_declares(
    document: dict[str, Any], api_schema: BaseSchema
) -> None:
    # Nothing listens on a fresh free port: every Redis call fails to connect.
    down = f"redis://127.0.0.1:{free_port()}/0"
    config = Config.from_env({}, admin_token="admin-token", redis_url=down)
    client = create_app(config).test_client()
    for path, url in (("/api/v1/jobs", "/api/v1/jobs"), ("/api/v1/stats", "/api/v1/stats")):
        response = client.get(url, headers=ADMIN)
        assert response.status_code == 503, response.get_data(as_text=True)
        assert response.get_json()["error"]["code"] == "unavailable"
        conforms(document, api_schema, path, "GET", response)


def test_flask_smorest_default_error_shape_would_not_validate(
    client: FlaskClient, document: dict[str, Any], api_schema: BaseSchema
) -> None:
    """The check above can fail: the shape the document used to give is refused."""
    response = client.get("/api/v1/jobs/nope", headers=ADMIN)
    response.set_data(json.dumps({"code": 404, "status": "Not Found", "message": "no job"}))
    with pytest.raises(FailureGroup):
        conforms(document, api_schema, "/api/v1/jobs/{job_id}", "GET", response)


def test_every_error_response_in_the_document_is_ours(document: dict[str, Any]) -> None:
    responses = document["components"]["responses"]
    seen = 0
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            if method == "parameters":  # the path's own parameters, not an operation
                continue
            for status, response in operation["responses"].items():
                if status.startswith(("1", "2", "3")):
                    continue
                if "$ref" in response:
                    response = responses[response["$ref"].rsplit("/", 1)[1]]
                schema = response["content"]["application/json"]["schema"]
                assert schema == {"$ref": ERROR_REF}, (method, path, status)
                seen += 1
            # Every operation is behind a token and reads Redis.
            assert {"401", "403", "503"} <= operation["responses"].keys(), (method, path)
    assert seen > 0
    body = document["components"]["schemas"]["ErrorBody"]
    assert set(body["properties"]) == set(body["required"]) == {"code", "message", "details"}


def test_stats_and_workers_validate_with_figures_no_job_may_ask_for(
    client: FlaskClient, document: dict[str, Any], api_schema: BaseSchema
) -> None:
    # Above the per-job maximum of the job request's schema, and nothing reserved yet.
    register(client, cpu=4096, memory_mb=64 * 1024 * 1024)
    stats = client.get("/api/v1/stats", headers=ADMIN)
    assert stats.status_code == 200
    assert stats.get_json()["capacity"]["cpu"] == 4096
    assert stats.get_json()["reserved"] == {"cpu": 0, "memory_mb": 0, "gpus": 0}
    conforms(document, api_schema, "/api/v1/stats", "GET", stats)
    workers = client.get("/api/v1/workers", headers=ADMIN)
    assert workers.get_json()["workers"][0]["reserved"]["jobs"] == 0
    conforms(document, api_schema, "/api/v1/workers", "GET", workers)
    job_limits = document["components"]["schemas"]["Resources"]["properties"]["cpu"]
    assert job_limits["maximum"] < 4096 and job_limits["minimum"] > 0


def test_resource_defaults_are_the_one_source(
    client: FlaskClient, document: dict[str, Any]
) -> None:
    default = DEFAULT_JOB_RESOURCES.to_wire()
    documented = document["components"]["schemas"]["Resources"]["properties"]
    assert {name: documented[name]["default"] for name in default} == default
    assert submit(client)["resources"] == default
    asked = submit(client, resources={"cpu": 2})["resources"]
    assert asked == {**default, "cpu": 2}
