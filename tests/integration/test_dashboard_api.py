"""What the dashboard stands on, through Flask's test client on a real redis-server: the
login session (a signed cookie that stands for a person's token and dies with it), the
pages' shells and headers, the last hour's history, and the job list's export."""

import csv
import io
import json
import re
from typing import Any

import pytest
from flask.testing import FlaskClient

from api import session_cookie
from api.app import create_app
from api.page_headers import CONTENT_SECURITY_POLICY
from shared.config import Config
from shared.store import Store
from shared.store.history import HISTORY_MINUTES, MINUTE_S
from tests.store_support import ManualClock

ADMIN = {"Authorization": "Bearer admin-token"}
BOB = {"Authorization": "Bearer bob-token"}
CSRF = {session_cookie.CSRF_HEADER: "1"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
PAGES = ("/", "/jobs", "/jobs/some-job", "/workers")


@pytest.fixture
def store(store: Store) -> Store:
    store.tokens.create("bob", "user", "bob-token")
    store.tokens.create("alice", "user", "alice-token")
    return store


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def log_in(client: FlaskClient, token: str, **query: str) -> Any:
    return client.get("/login", query_string={"token": token, **query})


def submit(client: FlaskClient, headers: dict[str, str], **spec: Any) -> dict[str, Any]:
    response = client.post("/api/v1/jobs", json={"command": ["true"], **spec}, headers=headers)
    assert response.status_code == 201, response.get_json()
    job: dict[str, Any] = response.get_json()
    return job


# The session


def test_a_login_link_sets_a_strict_httponly_cookie_that_holds_no_token(
    client: FlaskClient,
) -> None:
    response = log_in(client, "bob-token")
    assert response.status_code == 303
    assert response.headers["Location"] == "/"
    assert response.headers["Cache-Control"] == "no-store"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    cookie = response.headers["Set-Cookie"]
    assert cookie.startswith(f"{session_cookie.COOKIE}=")
    assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
    assert "bob-token" not in cookie
    assert f"Max-Age={CONFIG.session_ttl_s}" in cookie

    # The cookie stands for bob's token: the API answers as bob, the page names him.
    assert client.get("/api/v1/jobs").status_code == 200
    page = client.get("/")
    assert page.status_code == 200
    body = page.get_data(as_text=True)
    assert 'data-user="bob"' in body and 'data-role="user"' in body
    assert "bob-token" not in body


def test_the_login_form_logs_in_and_goes_back_to_the_page_asked_for(
    client: FlaskClient,
) -> None:
    form = client.get("/login?next=/workers")
    assert form.status_code == 200
    assert 'name="next" value="/workers"' in form.get_data(as_text=True)
    response = client.post("/login", data={"token": " alice-token\n", "next": "/workers"})
    assert response.status_code == 303 and response.headers["Location"] == "/workers"
    assert 'data-user="alice"' in client.get("/workers").get_data(as_text=True)


@pytest.mark.parametrize(
    "asked",
    ["//evil.example/", "https://evil.example/", "/\\evil.example", "jobs", "/x\r\nSet-Cookie:"],
)
def test_after_login_it_never_redirects_off_the_site(client: FlaskClient, asked: str) -> None:
    response = log_in(client, "bob-token", next=asked)
    assert response.status_code == 303
    assert response.headers["Location"] == "/"


@pytest.mark.parametrize("token", ["wrong", "join-token", "", "x" * 5000])
def test_a_token_that_is_not_a_persons_gets_the_form_again_and_no_cookie(
    client: FlaskClient, token: str
) -> None:
    response = log_in(client, token)
    assert response.status_code == 401
    assert "Set-Cookie" not in response.headers
    assert response.headers["WWW-Authenticate"] == "Bearer"
    assert 'role="alert"' in response.get_data(as_text=True)


def test_a_workers_token_cannot_log_in(client: FlaskClient) -> None:
    body = {"hostname": "h", "capacity": {"cpu": 1, "memory_mb": 128}}
    worker = client.post(
        "/api/v1/workers/register", json=body, headers={"Authorization": "Bearer join-token"}
    ).get_json()
    assert log_in(client, worker["token"]).status_code == 401


def test_revoking_the_token_ends_its_sessions(client: FlaskClient) -> None:
    assert log_in(client, "bob-token").status_code == 303
    assert client.get("/api/v1/jobs").status_code == 200
    assert client.delete("/api/v1/tokens/bob", headers=ADMIN).status_code == 204
    response = client.get("/api/v1/jobs")
    assert response.status_code == 401
    assert "session has ended" in response.get_json()["error"]["message"]
    page = client.get("/jobs")
    assert page.status_code == 303 and page.headers["Location"] == "/login?next=/jobs"


def test_an_unsafe_request_with_the_cookie_needs_the_csrf_header(client: FlaskClient) -> None:
    log_in(client, "bob-token")
    refused = client.post("/api/v1/jobs", json={"command": ["true"]})
    assert refused.status_code == 403
    assert session_cookie.CSRF_HEADER in refused.get_json()["error"]["message"]
    accepted = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=CSRF)
    assert accepted.status_code == 201
    assert accepted.get_json()["owner"] == "bob"


def test_a_forged_or_expired_cookie_is_no_session(client: FlaskClient, store: Store) -> None:
    log_in(client, "bob-token")
    value = client.get_cookie(session_cookie.COOKIE).value  # type: ignore[union-attr]
    client.set_cookie(session_cookie.COOKIE, value[:-2] + ("AA" if value[-2:] != "AA" else "BB"))
    assert client.get("/api/v1/jobs").status_code == 401
    short = Config.from_env({}, admin_token="admin-token", session_ttl_s=-1)
    expired = create_app(short, store).test_client()
    expired.set_cookie(session_cookie.COOKIE, value)
    assert expired.get("/api/v1/jobs").status_code == 401


def test_a_header_token_wins_over_the_cookie(client: FlaskClient) -> None:
    log_in(client, "bob-token")
    job = submit(client, {"Authorization": "Bearer alice-token"})
    assert job["owner"] == "alice"  # and no CSRF header was needed: no cookie was used


def test_logging_out_drops_the_cookie(client: FlaskClient) -> None:
    log_in(client, "bob-token")
    response = client.get("/logout")
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert client.get_cookie(session_cookie.COOKIE) is None
    assert client.get("/").status_code == 303


# The pages


@pytest.mark.parametrize("path", PAGES)
def test_a_page_without_a_session_redirects_to_the_login(client: FlaskClient, path: str) -> None:
    response = client.get(path, headers=ADMIN)  # a token header is not a browser's session
    assert response.status_code == 303
    assert response.headers["Location"].startswith("/login?next=")


@pytest.mark.parametrize("path", PAGES)
def test_a_page_loads_nothing_from_elsewhere(client: FlaskClient, path: str) -> None:
    log_in(client, "admin-token")
    response = client.get(path)
    assert response.status_code == 200
    assert response.headers["Content-Security-Policy"] == CONTENT_SECURITY_POLICY
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    body = response.get_data(as_text=True)
    assert "http://" not in body and "https://" not in body
    for asset in _assets(body):
        assert client.get(asset).status_code == 200, asset


def test_the_job_page_carries_the_tested_attributes(client: FlaskClient) -> None:
    log_in(client, "admin-token")
    body = client.get("/jobs/j-1").get_data(as_text=True)
    assert 'data-job-id="j-1"' in body and "data-job-output" in body
    for name in ("Cancel", "Retry", "Delete"):
        assert f">{name}</button>" in body


def test_the_vendored_chart_library_ships_with_its_licence(client: FlaskClient) -> None:
    for name in ("uPlot.iife.min.js", "uPlot.min.css", "LICENSE", "README.md"):
        assert client.get(f"/static/vendor/uplot/{name}").status_code == 200, name


def _assets(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="(/static/[^"]+)"', page)


# The history


def cancel_queued(client: FlaskClient, n: int) -> None:
    for _ in range(n):
        job = submit(client, ADMIN)
        assert client.post(f"/api/v1/jobs/{job['id']}/cancel", headers=ADMIN).status_code == 200


def history(client: FlaskClient, headers: dict[str, str] = ADMIN) -> list[dict[str, Any]]:
    response = client.get("/api/v1/stats/history", headers=headers)
    assert response.status_code == 200, response.get_json()
    minutes: list[dict[str, Any]] = response.get_json()["minutes"]
    return minutes


def test_the_history_counts_finished_jobs_a_minute_at_a_time(
    client: FlaskClient, clock: ManualClock
) -> None:
    [start] = history(client)  # this minute so far
    assert start["finished"] == {"CANCELLED": 0, "COMPLETED": 0, "FAILED": 0}
    cancel_queued(client, 3)
    submit(client, ADMIN)  # one left in the queue
    [now] = history(client)
    assert now["finished"] == {"CANCELLED": 3, "COMPLETED": 0, "FAILED": 0}
    assert now["queue_depth"] == 1

    clock.advance(MINUTE_S)
    history(client)  # the new minute's sample (the scheduler takes it, once a minute)
    cancel_queued(client, 2)
    points = history(client)
    assert [p["finished"]["CANCELLED"] for p in points] == [3, 2]
    assert points[0]["at"] < points[1]["at"]
    assert history(client, BOB) == points  # the pool's figures: counts, no job


def test_the_history_keeps_an_hour(client: FlaskClient, store: Store, clock: ManualClock) -> None:
    for _ in range(HISTORY_MINUTES + 30):
        history(client)
        clock.advance(MINUTE_S)
    assert len(history(client)) == HISTORY_MINUTES
    assert store.redis.xlen(store.keys.history) == HISTORY_MINUTES


# The export


def export(client: FlaskClient, headers: dict[str, str], **query: str) -> Any:
    response = client.get("/api/v1/jobs/export", headers=headers, query_string=query)
    assert response.status_code == 200, response.get_data(as_text=True)
    return response


def test_the_export_is_the_filtered_list_as_csv_with_formulas_defused(
    client: FlaskClient,
) -> None:
    submit(client, BOB, name='=HYPERLINK("http://evil.example")', command=["-rm", "x y"])
    submit(client, BOB, name="plain", labels={"team": "a"})
    submit(client, {"Authorization": "Bearer alice-token"}, name="alices")

    response = export(client, BOB)
    assert response.mimetype == "text/csv"
    assert response.headers["Content-Disposition"] == 'attachment; filename="jobs-bob.csv"'
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [row["name"] for row in rows] == ["plain", '\'=HYPERLINK("http://evil.example")']
    assert rows[1]["command"] == "'-rm 'x y'"
    assert rows[0]["labels"] == "team=a" and {row["owner"] for row in rows} == {"bob"}

    everyone = list(csv.DictReader(io.StringIO(export(client, ADMIN).get_data(as_text=True))))
    assert {row["owner"] for row in everyone} == {"alice", "bob"}


def test_the_export_as_json_is_every_matching_job(client: FlaskClient) -> None:
    for n in range(7):
        submit(client, BOB, name=f"job-{n}")
    log_in(client, "bob-token")  # the dashboard's download link: the cookie is enough
    response = client.get("/api/v1/jobs/export?format=json&state=QUEUED")
    assert response.status_code == 200 and response.mimetype == "application/json"
    jobs = json.loads(response.get_data(as_text=True))
    assert [job["name"] for job in jobs] == [f"job-{n}" for n in reversed(range(7))]
    listed = client.get("/api/v1/jobs?state=QUEUED&limit=500").get_json()["jobs"]
    assert jobs == listed


def test_an_export_pages_through_a_list_longer_than_a_page(
    client: FlaskClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    from api import export as export_module

    monkeypatch.setattr(export_module, "EXPORT_PAGE", 2)
    for n in range(5):
        submit(client, BOB, name=f"job-{n}")
    jobs = json.loads(export(client, BOB, format="json").get_data(as_text=True))
    assert len(jobs) == 5


def test_an_export_refuses_an_unknown_format(client: FlaskClient) -> None:
    response = client.get("/api/v1/jobs/export?format=xml", headers=BOB)
    assert response.status_code == 422
