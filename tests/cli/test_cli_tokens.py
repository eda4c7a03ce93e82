"""`jobyard tokens create/list/revoke`: what they send and print against the scripted fake
API, and the whole round against the real API (over HTTP, on a real redis-server)."""

import threading
from collections.abc import Callable, Iterator

import pytest
from click.testing import Result
from werkzeug.serving import make_server

from api.app import create_app
from shared.config import Config
from shared.store import Store, connect
from tests.cli.fakeapi import FakeApi

TOKEN = "Fqzo_Z5rZQoEs2jmS-tmCpJBHt70TGi9nvWVSooYFfA"


@pytest.fixture
def run(fake_api: FakeApi, jobyard: Callable[..., Result]) -> Callable[..., Result]:
    """`jobyard ARGS...` pointed at the fake API."""
    env = {"JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "t0k"}
    return lambda *args: jobyard(*args, env=env)


def test_create_prints_the_token_alone_and_says_it_is_shown_once(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer(
        "POST", "/api/v1/tokens", {"name": "bob", "role": "admin", "token": TOKEN}, status=201
    )
    result = run("tokens", "create", "bob", "--role", "admin")
    assert result.exit_code == 0, result.output
    assert result.stdout == TOKEN + "\n"
    assert "shown only this once" in result.stderr
    (sent,) = fake_api.sent("POST", "/api/v1/tokens")
    assert sent.body == {"name": "bob", "role": "admin"}
    assert sent.headers["Authorization"] == "Bearer t0k"


def test_create_asks_for_a_user_unless_told(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer("POST", "/api/v1/tokens", {"name": "bob", "role": "user", "token": TOKEN})
    assert run("tokens", "create", "bob").exit_code == 0
    assert fake_api.sent("POST", "/api/v1/tokens")[0].body == {"name": "bob", "role": "user"}
    assert run("tokens", "create", "bob", "--role", "worker").exit_code == 2


def test_list_is_a_table(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    tokens = [
        {"name": "bob", "role": "user", "created_at": "2026-11-23T10:00:00+00:00",
         "last_used_at": "2026-11-23T10:05:00+00:00"},
        {"name": "carol", "role": "admin", "created_at": "2026-11-23T10:00:00+00:00",
         "last_used_at": None},
    ]  # fmt: skip
    fake_api.answer("GET", "/api/v1/tokens", {"tokens": tokens})
    result = run("tokens", "list")
    assert result.exit_code == 0, result.output
    header, bob, carol = result.stdout.splitlines()
    assert header.split() == ["NAME", "ROLE", "CREATED", "LAST", "USED"]
    assert bob.split()[:2] == ["bob", "user"] and bob.endswith(" ago")
    assert carol.split()[:2] == ["carol", "admin"] and carol.endswith("never")
    assert '"carol"' in run("tokens", "list", "--json").stdout


def test_revoke_and_its_error(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer("DELETE", "/api/v1/tokens/bob", None, status=204)
    result = run("tokens", "revoke", "bob")
    assert (result.exit_code, result.stdout) == (0, "bob: revoked\n")
    error = {"error": {"code": "not_found", "message": "no token named eve"}}
    fake_api.answer("DELETE", "/api/v1/tokens/eve", (404, error))
    result = run("tokens", "revoke", "eve")
    assert (result.exit_code, result.stderr) == (1, "error: no token named eve\n")


@pytest.fixture
def real_api(redis_url: str) -> Iterator[str]:
    """The real API app, served over HTTP on a free port, on the session's redis-server."""
    client = connect(redis_url)
    client.flushdb()
    config = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
    server = make_server("127.0.0.1", 0, create_app(config, Store(client)), threaded=True)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_port}"
    finally:
        server.shutdown()
        thread.join()
        client.close()


def test_the_round_against_the_real_api(real_api: str, jobyard: Callable[..., Result]) -> None:
    def as_(token: str, *args: str) -> Result:
        return jobyard(*args, env={"JOBYARD_API_URL": real_api, "JOBYARD_TOKEN": token})

    created = as_("admin-token", "tokens", "create", "bob")
    assert created.exit_code == 0, created.output
    bob = created.stdout.strip()
    assert as_(bob, "submit", "--", "true").exit_code == 0
    assert as_(bob, "jobs").exit_code == 0
    refused = as_(bob, "tokens", "list")
    assert (refused.exit_code, refused.stderr) == (1, "error: a user token cannot do this\n")
    taken = as_("admin-token", "tokens", "create", "bob")
    assert taken.exit_code == 1 and "a token named bob exists" in taken.stderr
    reserved = as_("admin-token", "tokens", "create", "admin")
    assert reserved.exit_code == 1
    assert reserved.stderr.endswith("values: admin is the name of a configured token\n")
    listed = as_("admin-token", "tokens", "list")
    assert listed.stdout.splitlines()[1].split()[:2] == ["bob", "user"]
    assert bob not in listed.stdout
    assert as_("admin-token", "tokens", "revoke", "bob").stdout == "bob: revoked\n"
    gone = as_(bob, "jobs")
    assert gone.exit_code == 1 and "unknown or revoked token" in gone.stderr
    assert as_("admin-token", "tokens", "revoke", "bob").stderr == "error: no token named bob\n"


def test_create_against_no_api_says_what_to_do(jobyard: Callable[..., Result]) -> None:
    from tests.helpers import free_port

    url = f"http://127.0.0.1:{free_port()}"
    result = jobyard("tokens", "create", "bob", env={"JOBYARD_API_URL": url})
    assert result.exit_code == 1
    assert "cannot reach the jobyard API" in result.stderr
