"""Who may call what: one row per route and method of the app's URL map, checked through
Flask's test client on a real redis-server. A route missing from the table fails
test_every_route_has_a_row, so a new endpoint cannot ship without saying who may call it.

Each row: (method, rule) -> the roles allowed. ANYONE means no token is needed (and a token
of any role changes nothing). Otherwise the test asserts 401 without a token and with a
wrong one, 403 for every role not listed, and neither 401 nor 403 for every role listed.
"""

from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from scheduler.loop import schedule_once
from shared.config import Config
from shared.store import Store

ANYONE = frozenset({"anonymous"})
ADMIN, USER, WORKER, JOIN = "admin", "user", "worker", "join"
ROLES = (ADMIN, USER, WORKER, JOIN)
PEOPLE = frozenset({ADMIN, USER})

TABLE: dict[tuple[str, str], frozenset[str]] = {
    ("GET", "/healthz"): ANYONE,
    ("GET", "/readyz"): ANYONE,
    ("GET", "/api/v1/openapi.json"): ANYONE,
    ("GET", "/docs"): ANYONE,
    ("GET", "/static/<path:filename>"): ANYONE,
    # The login flow, and the dashboard's pages: without a session a page redirects to
    # /login (303), and what it shows comes from the API calls below, each with its roles.
    ("GET", "/login"): ANYONE,
    ("POST", "/login"): ANYONE,
    ("GET", "/logout"): ANYONE,
    ("GET", "/"): ANYONE,
    ("GET", "/jobs"): ANYONE,
    ("GET", "/jobs/<string:job_id>"): ANYONE,
    ("GET", "/workers"): ANYONE,
    ("GET", "/metrics"): frozenset({ADMIN}),
    ("GET", "/api/v1/jobs"): PEOPLE,
    ("POST", "/api/v1/jobs"): PEOPLE,
    ("POST", "/api/v1/jobs/batch"): PEOPLE,
    ("GET", "/api/v1/jobs/export"): PEOPLE,
    ("GET", "/api/v1/jobs/<string:job_id>"): PEOPLE,
    ("DELETE", "/api/v1/jobs/<string:job_id>"): PEOPLE,
    ("GET", "/api/v1/jobs/<string:job_id>/events"): PEOPLE,
    ("POST", "/api/v1/jobs/<string:job_id>/cancel"): PEOPLE,
    ("POST", "/api/v1/jobs/<string:job_id>/retry"): PEOPLE,
    ("GET", "/api/v1/jobs/<string:job_id>/output"): PEOPLE,
    ("GET", "/api/v1/jobs/<string:job_id>/output/stream"): PEOPLE,
    ("GET", "/api/v1/events/stream"): PEOPLE,
    ("GET", "/api/v1/stats"): PEOPLE,
    ("GET", "/api/v1/stats/history"): PEOPLE,
    ("GET", "/api/v1/workers"): PEOPLE,
    ("POST", "/api/v1/workers/register"): frozenset({JOIN, ADMIN}),
    ("POST", "/api/v1/workers/<string:worker_id>/heartbeat"): frozenset({WORKER}),
    ("POST", "/api/v1/workers/<string:worker_id>/updates"): frozenset({WORKER}),
    ("GET", "/api/v1/workers/<string:worker_id>/assignments"): frozenset({WORKER}),
    ("POST", "/api/v1/workers/<string:worker_id>/drain"): frozenset({ADMIN, WORKER}),
    ("DELETE", "/api/v1/workers/<string:worker_id>"): frozenset({ADMIN, WORKER}),
    ("POST", "/api/v1/jobs/<string:job_id>/attempts/<int:attempt>/start"): frozenset({WORKER}),
    ("POST", "/api/v1/jobs/<string:job_id>/attempts/<int:attempt>/output"): frozenset({WORKER}),
    ("POST", "/api/v1/jobs/<string:job_id>/attempts/<int:attempt>/result"): frozenset({WORKER}),
    ("GET", "/api/v1/tokens"): frozenset({ADMIN}),
    ("POST", "/api/v1/tokens"): frozenset({ADMIN}),
    ("DELETE", "/api/v1/tokens/<string:name>"): frozenset({ADMIN}),
}

# Query strings a route needs to answer at once (a long-poll's wait).
QUERIES = {"/api/v1/workers/<string:worker_id>/assignments": "?wait=0"}
# Bodies a route needs: the login form's token is its credential, whatever the header says.
FORMS = {"/login": {"token": "bob-token"}}

CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")


def _rules(client: FlaskClient) -> set[tuple[str, str]]:
    url_map = client.application.url_map
    ignored = {"HEAD", "OPTIONS"}  # answered by Flask for every route
    return {(m, r.rule) for r in url_map.iter_rules() for m in (r.methods or set()) - ignored}


class Setup:
    """A fresh app on a flushed Redis with a token of every role, a worker, and a job of
    the user's assigned to the worker."""

    def __init__(self, store: Store) -> None:
        store.redis.flushdb()
        store.tokens.create("bob", "user", "bob-token")
        self.client = create_app(CONFIG, store).test_client()
        self.headers = {ADMIN: _bearer("admin-token"), USER: _bearer("bob-token")}
        self.headers[JOIN] = _bearer("join-token")
        body = {"hostname": "host-a", "capacity": {"cpu": 1, "memory_mb": 256}}
        answer = self.post_json("/api/v1/workers/register", body, JOIN)
        self.worker_id = answer["worker_id"]
        self.headers[WORKER] = _bearer(answer["token"])
        self.job_id = self.post_json("/api/v1/jobs", {"command": ["true"]}, USER)["id"]
        # Assigned to the worker, so that its attempt is the worker's own to report on.
        assert schedule_once(store, CONFIG) == 1

    def post_json(self, path: str, body: dict[str, Any], role: str) -> dict[str, Any]:
        response = self.client.post(path, json=body, headers=self.headers[role])
        assert response.status_code == 201, response.get_json()
        answer: dict[str, Any] = response.get_json()
        return answer

    def path(self, rule: str) -> str:
        path = rule.replace("<string:job_id>", self.job_id).replace("<int:attempt>", "1")
        path = path.replace("<string:worker_id>", self.worker_id)
        path = path.replace("<string:name>", "nobody").replace("<path:filename>", "none.css")
        return path + QUERIES.get(rule, "")

    def status(self, method: str, rule: str, headers: dict[str, str]) -> int:
        form = FORMS.get(rule) if method == "POST" else None
        response = self.client.open(self.path(rule), method=method, headers=headers, data=form)
        response.close()  # a stream is not read to its end: its status is what counts
        return response.status_code


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_every_route_has_a_row(store: Store) -> None:
    routes = _rules(Setup(store).client)
    assert routes - TABLE.keys() == set(), "routes without a row in TABLE"
    assert TABLE.keys() - routes == set(), "rows of TABLE for routes that do not exist"


@pytest.mark.parametrize(("method", "rule"), sorted(TABLE))
def test_only_the_listed_roles_may_call(store: Store, method: str, rule: str) -> None:
    allowed = TABLE[(method, rule)]
    setup = Setup(store)
    if allowed == ANYONE:
        for headers in [{}, _bearer("wrong"), *setup.headers.values()]:
            assert setup.status(method, rule, headers) not in (401, 403), headers
        return
    assert setup.status(method, rule, {}) == 401
    assert setup.status(method, rule, _bearer("wrong-token")) == 401
    for role in ROLES:
        if role not in allowed:
            assert setup.status(method, rule, setup.headers[role]) == 403, role
    for role in sorted(allowed):
        fresh = Setup(store)  # each on its own: a drain or a deletion changes the next
        assert fresh.status(method, rule, fresh.headers[role]) not in (401, 403), role
