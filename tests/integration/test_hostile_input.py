"""Hostile input, as found by probing the API from outside (issue 11), through Flask's test
client on a real redis-server: every case answers the error shape with its status (never a
500, never HTML), and the well-formed neighbour of each case is still accepted."""

import json
from dataclasses import dataclass
from dataclasses import field as default
from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from api.guards import LONE_SURROGATE, MAX_JSON_DEPTH, nested_deeper_than
from shared.config import Config, ConfigError
from shared.schemas.errors import ErrorSchema
from shared.store import Store
from tests.store_support import commit

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
JSON = {"Content-Type": "application/json"}


@dataclass
class Targets:
    """What the requests are aimed at: a job with a worker running its first attempt."""

    job: str
    worker: str
    worker_auth: dict[str, str]


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


@pytest.fixture
def targets(client: FlaskClient, store: Store) -> Targets:
    job = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=ADMIN).get_json()
    body = {"hostname": "host-a", "capacity": {"cpu": 2, "memory_mb": 1024}}
    worker = client.post("/api/v1/workers/register", json=body, headers=JOIN).get_json()
    assert commit(store, [(job["id"], worker["worker_id"])]) == [1]
    auth = {"Authorization": f"Bearer {worker['token']}"}
    started = client.post(f"/api/v1/jobs/{job['id']}/attempts/1/start", headers=auth)
    assert started.status_code == 200
    return Targets(job["id"], worker["worker_id"], auth)


@dataclass(frozen=True)
class Case:
    """One request: `path` and `body` may name {job} and {worker}; `raw` is sent as the body
    text (JSON Python cannot write: lone surrogates), else `body` as JSON. `field` is where
    details must name the trouble (a path below "json", "query" or "headers")."""

    method: str
    path: str
    status: int
    field: tuple[str, ...] = ()
    body: Any = None
    raw: str | None = None
    headers: dict[str, str] = default(default_factory=dict)
    worker: bool = False  # sent with the worker's token, not the admin's


def submission(**spec: Any) -> Any:
    return {"command": ["true"], **spec}


def nested(depth: int) -> str:
    """A submission whose labels are `depth` - 1 arrays deep: `depth` levels in all."""
    return '{"command": ["true"], "labels": ' + "[" * (depth - 1) + "]" * (depth - 1) + "}"


def lone(text: str) -> str:
    """A submission as JSON text in which `text` holds \\ud800 (half a surrogate pair)."""
    return text.replace("LONE", "\\ud800")


JOBS, OUTPUT = "/api/v1/jobs", "/api/v1/jobs/{job}/output"
ATTEMPT = "/api/v1/jobs/{job}/attempts/1"
IMAGES_REFUSED = [
    "../../etc", "alpine; rm -rf /", "busybox\nfoo", "busybox\n", "Alpine", "busybox:",
    "busybox:-x", "a//b", "-a", "busybox@sha256:abc", "a:" + "t" * 129, "a" * 256,
]  # fmt: skip
IMAGES_ACCEPTED = [
    "busybox", "jobyard/busybox:latest", "ghcr.io/a-b/c__d:v1.2-rc", "Registry.Example/x",
    "localhost:5000/team/tool:1.0@sha256:" + "a" * 64, "[::1]:5000/x",
]  # fmt: skip

CASES: dict[str, Case] = {
    # 1. Nesting: refused from the bytes before a parser recurses into it.
    "nested 1000 deep": Case("POST", JOBS, 400, raw=nested(1000)),
    "nested 1000 deep, never closed": Case("POST", JOBS, 400, raw="[" * 1000),
    "nested one past the limit": Case("POST", JOBS, 400, raw=nested(MAX_JSON_DEPTH + 1)),
    "nested at the limit reaches the schema": Case(
        "POST", JOBS, 422, ("labels",), raw=nested(MAX_JSON_DEPTH)
    ),
    "brackets in a string are text": Case("POST", JOBS, 201, body=submission(name="[" * 100)),
    "nested heartbeat metrics": Case(
        "POST", "/api/v1/workers/{worker}/heartbeat", 400, worker=True,
        raw='{"metrics": {"a": ' + "[" * 40 + "]" * 40 + "}}",
    ),
    # 2. Numbers that become Redis stream ids.
    "offset 2**64": Case("GET", OUTPUT + f"?offset={2**64}", 422, ("offset",)),
    "offset 10**18": Case("GET", OUTPUT + f"?offset={10**18}", 422, ("offset",)),
    "offset below 0": Case("GET", OUTPUT + "?offset=-1", 422, ("offset",)),
    "offset 10**18 - 1": Case("GET", OUTPUT + f"?offset={10**18 - 1}", 200),
    "Last-Event-ID 2**64": Case(
        "GET", OUTPUT + "/stream", 422, ("Last-Event-ID",), headers={"Last-Event-ID": str(2**64)}
    ),
    "last_event_id 2**64": Case("GET", OUTPUT + f"/stream?last_event_id={2**64}", 422),
    "feed Last-Event-ID 2**64": Case(
        "GET", "/api/v1/events/stream", 422, ("Last-Event-ID",),
        headers={"Last-Event-ID": f"{2**64}-0"},
    ),
    # A `$` anchor lets a trailing newline through; the stream id would keep it.
    "last_event_id with a newline": Case("GET", OUTPUT + "/stream?last_event_id=1%0A", 422),
    "feed last_event_id with a newline": Case(
        "GET", "/api/v1/events/stream?last_event_id=1-0%0A", 422
    ),
    "chunk seq 2**64": Case(
        "POST", ATTEMPT + "/output", 422, ("chunks", "0", "seq"), worker=True,
        body={"chunks": [{"seq": 2**64, "stream": "stdout", "at": 1.0, "data": "x"}]},
    ),
    "running attempt 2**64": Case(
        "POST", "/api/v1/workers/{worker}/heartbeat", 422, ("running", "0", "attempt"),
        worker=True, body={"running": [{"id": "{job}", "attempt": 2**64}]},
    ),
    "list cursor 10**400 is no 500": Case("GET", JOBS + f"?cursor={10**400}", 200),
    "list cursor 2**53 - 1": Case("GET", JOBS + f"?cursor={2**53 - 1}", 200),
    # 3. Whole numbers: no fraction silently cut off, no booleans, no strings.
    "gpus 1.5": Case("POST", JOBS, 422, ("resources", "gpus"), submission(resources={"gpus": 1.5})),
    "memory_mb 64.5": Case(
        "POST", JOBS, 422, ("resources", "memory_mb"), submission(resources={"memory_mb": 64.5})
    ),
    "priority 1.5": Case("POST", JOBS, 422, ("priority",), submission(priority=1.5)),
    "priority true": Case("POST", JOBS, 422, ("priority",), submission(priority=True)),
    "priority as text": Case("POST", JOBS, 422, ("priority",), submission(priority="5")),
    "priority infinite": Case(
        "POST", JOBS, 422, ("priority",), raw='{"command": ["true"], "priority": 1e999}'
    ),
    "max_retries 0.5": Case("POST", JOBS, 422, ("max_retries",), submission(max_retries=0.5)),
    "priority 2.0 is 2": Case("POST", JOBS, 201, body=submission(priority=2.0)),
    "capacity memory_mb 1.5": Case(
        "POST", "/api/v1/workers/register", 422, ("capacity", "memory_mb"), headers=JOIN,
        body={"hostname": "h", "capacity": {"cpu": 1, "memory_mb": 1.5}},
    ),
    "max_parallel_jobs 2.5": Case(
        "POST", "/api/v1/workers/register", 422, ("max_parallel_jobs",), headers=JOIN,
        body={"hostname": "h", "capacity": {"cpu": 1, "memory_mb": 1}, "max_parallel_jobs": 2.5},
    ),
    "exit_code 0.5": Case(
        "POST", ATTEMPT + "/result", 422, ("exit_code",), worker=True, body={"exit_code": 0.5}
    ),
    "exit_code 2**64": Case(
        "POST", ATTEMPT + "/result", 422, ("exit_code",), worker=True, body={"exit_code": 2**64}
    ),
    # 4. Image names: Docker's reference grammar.
    **{
        f"image {image!r}": Case("POST", JOBS, 422, ("image",), submission(image=image))
        for image in IMAGES_REFUSED
    },
    **{
        f"image {image!r} accepted": Case("POST", JOBS, 201, body=submission(image=image))
        for image in IMAGES_ACCEPTED
    },
    # 5. NUL and lone surrogates: 422 naming the field.
    "NUL in command": Case("POST", JOBS, 422, ("command", "1"), {"command": ["sh", "a\0b"]}),
    "NUL in env value": Case("POST", JOBS, 422, ("env", "A", "value"), submission(env={"A": "\0"})),
    "NUL in env key": Case("POST", JOBS, 422, ("env",), submission(env={"A\0": "v"})),
    "env key ending in a newline": Case("POST", JOBS, 422, ("env",), submission(env={"A\n": "v"})),
    "NUL in label key": Case("POST", JOBS, 422, ("labels",), submission(labels={"a\0": "b"})),
    "NUL in label value": Case(
        "POST", JOBS, 422, ("labels", "a", "value"), submission(labels={"a": "b\0"})
    ),
    "NUL in constraint": Case(
        "POST", JOBS, 422, ("constraints", "a", "value"), submission(constraints={"a": "\0"})
    ),
    "NUL in name": Case("POST", JOBS, 422, ("name",), submission(name="a\0")),
    "NUL in worker label": Case(
        "POST", "/api/v1/workers/register", 422, ("labels", "k", "value"), headers=JOIN,
        body={"hostname": "h", "capacity": {"cpu": 1, "memory_mb": 1}, "labels": {"k": "\0"}},
    ),
    "lone surrogate in command": Case(
        "POST", JOBS, 422, ("command", "0"), raw=lone('{"command": ["LONE"]}')
    ),
    "lone surrogate in env value": Case(
        "POST", JOBS, 422, ("env", "A", "value"),
        raw=lone('{"command": ["true"], "env": {"A": "xLONE"}}'),
    ),
    "lone surrogate in env key": Case(
        "POST", JOBS, 422, ("env",), raw=lone('{"command": ["true"], "env": {"LONE": "v"}}')
    ),
    "lone surrogate in label key": Case(
        "POST", JOBS, 422, ("labels",), raw=lone('{"command": ["true"], "labels": {"LONE": "v"}}')
    ),
    "lone surrogate in constraint value": Case(
        "POST", JOBS, 422, ("constraints", "k", "value"),
        raw=lone('{"command": ["true"], "constraints": {"k": "LONE"}}'),
    ),
    "lone surrogate elsewhere: the body-wide 400": Case(
        "POST", "/api/v1/workers/{worker}/heartbeat", 400, worker=True,
        raw=lone('{"metrics": {"a": "LONE"}}'),
    ),
    "a surrogate pair is a character": Case(
        "POST", JOBS, 201, raw='{"command": ["echo", "\\ud83d\\ude00"]}'
    ),
    # 6. Methods.
    "PUT on jobs": Case("PUT", JOBS, 405),
    "PUT on jobs, a body not JSON": Case(
        "PUT", JOBS, 405, raw="x", headers={"Content-Type": "text/plain"}
    ),
    "unknown path, a body not JSON": Case(
        "POST", "/api/v1/nothing", 404, raw="x", headers={"Content-Type": "text/plain"}
    ),
    # 7. Bodies that are not JSON.
    "text/plain body": Case(
        "POST", JOBS, 415, raw='{"command": ["true"]}', headers={"Content-Type": "text/plain"}
    ),
    "form body": Case(
        "POST", JOBS, 415, raw="command=true",
        headers={"Content-Type": "application/x-www-form-urlencoded"},
    ),
    "untyped body": Case(
        "POST", JOBS, 415, raw='{"command": ["true"]}', headers={"Content-Type": ""}
    ),
    "text/plain heartbeat": Case(
        "POST", "/api/v1/workers/{worker}/heartbeat", 415, worker=True, raw="{}",
        headers={"Content-Type": "text/plain"},
    ),
    "no body at all still lacks the command": Case("POST", JOBS, 422, ("command",)),
}  # fmt: skip


def aimed(text: str, targets: Targets) -> str:
    return text.replace("{job}", targets.job).replace("{worker}", targets.worker)


def send(client: FlaskClient, case: Case, targets: Targets) -> Any:
    headers = {**(targets.worker_auth if case.worker else ADMIN), **case.headers}
    kwargs: dict[str, Any] = {}
    if case.raw is not None:
        kwargs["data"] = aimed(case.raw, targets).encode()
        headers = {**JSON, **headers}
    elif case.body is not None:
        kwargs["data"] = aimed(json.dumps(case.body), targets)
        headers = {**JSON, **headers}
    headers = {name: value for name, value in headers.items() if value}
    return client.open(aimed(case.path, targets), method=case.method, headers=headers, **kwargs)


def details_name(details: Any, path: tuple[str, ...]) -> bool:
    """Do the error's details (keyed by location: json, query, headers) hold `path`?"""
    return any(_holds(where, path) for where in (details or {}).values())


def _holds(tree: Any, path: tuple[str, ...]) -> bool:
    for step in path:
        if not isinstance(tree, dict) or step not in tree:
            return False
        tree = tree[step]
    return True


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_hostile_input_gets_the_error_shape_and_its_status(
    client: FlaskClient, targets: Targets, case: Case
) -> None:
    response = send(client, case, targets)
    text = response.get_data(as_text=True)
    assert response.status_code == case.status, text
    assert response.is_json, text
    if case.status < 400:
        return
    assert ErrorSchema().validate(response.get_json()) == {}, text
    error = response.get_json()["error"]
    if case.field:
        assert details_name(error["details"], case.field), text


def test_a_405_says_which_methods_are_allowed(client: FlaskClient) -> None:
    response = client.put("/api/v1/jobs", headers=ADMIN)
    assert response.status_code == 405
    assert set(response.headers["Allow"].split(", ")) >= {"GET", "POST"}
    cancel = client.get("/api/v1/jobs/some-id/cancel", headers=ADMIN)
    assert cancel.status_code == 405 and "POST" in cancel.headers["Allow"]


def test_fractions_are_never_stored_truncated(client: FlaskClient, store: Store) -> None:
    before = store.jobs.counts()
    for spec in ({"gpus": 1.5}, {"memory_mb": 64.5}):
        response = client.post("/api/v1/jobs", json=submission(resources=spec), headers=ADMIN)
        assert response.status_code == 422
    assert store.jobs.counts() == before
    two = client.post("/api/v1/jobs", json=submission(priority=2.0), headers=ADMIN).get_json()
    assert two["priority"] == 2 and isinstance(two["priority"], int)


@pytest.mark.parametrize("path", ["cancel", "retry"])
def test_endpoints_without_a_body_need_no_content_type(client: FlaskClient, path: str) -> None:
    job = client.post("/api/v1/jobs", json=submission(), headers=ADMIN).get_json()["id"]
    if path == "retry":
        assert client.post(f"/api/v1/jobs/{job}/cancel", headers=ADMIN).status_code == 200
    response = client.post(f"/api/v1/jobs/{job}/{path}", headers=ADMIN)
    assert response.status_code == 200, response.get_json()
    assert response.request.headers.get("Content-Type") is None


def test_the_default_image_obeys_the_same_grammar() -> None:
    for image in IMAGES_REFUSED:
        with pytest.raises(ConfigError, match="JOBYARD_DEFAULT_IMAGE"):
            Config.from_env({"JOBYARD_DEFAULT_IMAGE": image})
    for image in IMAGES_ACCEPTED:
        assert Config.from_env({"JOBYARD_DEFAULT_IMAGE": image}).default_image == image


@pytest.mark.parametrize(
    ("body", "deeper"),
    [
        (b"[" * 33 + b"]" * 33, True),
        (b"[" * 32 + b"]" * 32, False),
        (b"[]" * 1000, False),
        (b'{"a": "' + b"{" * 100 + b'"}', False),  # inside a string
        (b'["\\"' + b"[" * 100 + b'"]', False),  # an escaped quote does not end the string
        (b'["\\\\"' + b", [" * 40 + b"]" * 41, True),  # an escaped backslash does
        (b"{" * 20 + b"[" * 20, True),  # never closed
    ],
)
def test_nesting_is_read_from_the_bytes(body: bytes, deeper: bool) -> None:
    assert nested_deeper_than(body, 32) is deeper



def test_a_route_of_another_blueprint_gets_the_body_wide_400(store: Store) -> None:
    """A route not built with api.guards.Blueprint (a plain Flask one, as a later module
    might add) has no parser to refuse a lone surrogate after its fields: the guard does,
    before the view runs."""
    app = create_app(CONFIG, store)
    seen = []

    @app.post("/plain")
    def plain() -> dict[str, Any]:
        seen.append(1)
        return {}

    response = app.test_client().post("/plain", data=lone('{"a": "LONE"}'), headers=JSON)
    assert response.status_code == 400 and seen == []
    assert response.get_json()["error"]["message"] == LONE_SURROGATE
    assert app.test_client().post("/plain", json={"a": "pair \U0001f600"}).status_code == 200
