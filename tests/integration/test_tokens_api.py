"""People's access tokens through the HTTP API (Flask's test client) on a real redis-server:
only an admin creates, lists and revokes them; a name is held by one token and becomes the
owner of its jobs; a revoked token is refused at once here and within TOKEN_CACHE_S by
another API process."""

from typing import Any

import pytest
from flask import Flask
from flask.testing import FlaskClient

from api.app import create_app
from api.extensions import Services
from api.token_cache import LAST_USED_EVERY_S, TOKEN_CACHE_S, TokenCache
from shared.config import Config
from shared.schemas.errors import ErrorSchema
from shared.store import Store
from shared.store.tokens import token_hash
from tests.store_support import ManualClock

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def error_of(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert ErrorSchema().validate(body) == {}
    error: dict[str, Any] = body["error"]
    return error


def create(client: FlaskClient, name: str, role: str = "user") -> str:
    response = client.post("/api/v1/tokens", json={"name": name, "role": role}, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    body = response.get_json()
    assert (body["name"], body["role"]) == (name, role)
    token: str = body["token"]
    return token


def listed(client: FlaskClient) -> list[dict[str, Any]]:
    response = client.get("/api/v1/tokens", headers=ADMIN)
    assert response.status_code == 200
    tokens: list[dict[str, Any]] = response.get_json()["tokens"]
    return tokens


def worker_token(client: FlaskClient) -> dict[str, str]:
    body = {"hostname": "host", "capacity": {"cpu": 2, "memory_mb": 1024}}
    answer = client.post("/api/v1/workers/register", json=body, headers=JOIN).get_json()
    return bearer(answer["token"])


def test_a_created_user_token_submits_jobs_owned_by_its_name(client: FlaskClient) -> None:
    token = create(client, "bob")
    assert len(token) >= 43  # token_urlsafe(32): 256 random bits
    job = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=bearer(token))
    assert job.status_code == 201, job.get_json()
    assert job.get_json()["owner"] == "bob"
    admins = client.post("/api/v1/jobs", json={"command": ["true"]}, headers=ADMIN).get_json()
    mine = client.get("/api/v1/jobs", headers=bearer(token)).get_json()["jobs"]
    assert [j["id"] for j in mine] == [job.get_json()["id"]]
    error_of(client.get(f"/api/v1/jobs/{admins['id']}", headers=bearer(token)), 404)


def test_a_created_admin_token_acts_as_an_admin(client: FlaskClient) -> None:
    token = create(client, "carol", "admin")
    assert client.get("/api/v1/tokens", headers=bearer(token)).status_code == 200
    assert create(client, "dave") != token


def test_the_list_shows_people_never_a_token_nor_its_hash(client: FlaskClient) -> None:
    bob, carol = create(client, "bob"), create(client, "carol", "admin")
    worker_token(client)
    assert client.get("/api/v1/jobs", headers=bearer(bob)).status_code == 200
    response = client.get("/api/v1/tokens", headers=ADMIN)
    text = response.get_data(as_text=True)
    for token in (bob, carol):
        assert token not in text and token_hash(token) not in text
    tokens = response.get_json()["tokens"]
    assert [(t["name"], t["role"]) for t in tokens] == [("bob", "user"), ("carol", "admin")]
    assert all(set(t) == {"name", "role", "created_at", "last_used_at"} for t in tokens)
    assert tokens[0]["last_used_at"] is not None and tokens[1]["last_used_at"] is None
    assert tokens[0]["created_at"].endswith("+00:00")


def test_a_tokens_use_is_written_at_most_once_per_period(store: Store, clock: ManualClock) -> None:
    """The app's cache and the store share one manual clock: a refresh within
    LAST_USED_EVERY_S of the last recorded use writes nothing."""
    app = create_app(CONFIG, store)
    cache = TokenCache(store.tokens.lookup_hash, record_use=store.tokens.used, clock=clock)
    app.extensions["jobyard"] = Services(CONFIG, store, cache)
    client = app.test_client()
    token = bearer(create(client, "bob"))
    first = clock.t
    assert client.get("/api/v1/jobs", headers=token).status_code == 200

    def last_used() -> float:
        return float(store.redis.hget(store.keys.token_last_used, "bob"))

    assert last_used() == first
    clock.advance(LAST_USED_EVERY_S / 2)
    assert client.get("/api/v1/jobs", headers=token).status_code == 200
    assert last_used() == first
    clock.advance(LAST_USED_EVERY_S / 2)
    assert client.get("/api/v1/jobs", headers=token).status_code == 200
    assert last_used() == first + LAST_USED_EVERY_S


@pytest.mark.parametrize("who", ["user", "worker", "join"])
def test_only_an_admin_may_create_list_or_revoke(client: FlaskClient, who: str) -> None:
    create(client, "bob")
    headers = {
        "user": lambda: bearer(create(client, "eve")),
        "worker": lambda: worker_token(client),
        "join": lambda: JOIN,
    }[who]()
    body = {"name": "mallory", "role": "admin"}
    error_of(client.post("/api/v1/tokens", json=body, headers=headers), 403)
    error_of(client.get("/api/v1/tokens", headers=headers), 403)
    error_of(client.delete("/api/v1/tokens/bob", headers=headers), 403)
    assert "mallory" not in [t["name"] for t in listed(client)]
    assert "bob" in [t["name"] for t in listed(client)]
    error_of(client.get("/api/v1/tokens"), 401)


def test_a_name_in_use_is_a_409_and_the_first_token_lives(client: FlaskClient) -> None:
    token = create(client, "bob")
    response = client.post("/api/v1/tokens", json={"name": "bob", "role": "admin"}, headers=ADMIN)
    assert error_of(response, 409)["code"] == "name_taken"
    assert [(t["name"], t["role"]) for t in listed(client)] == [("bob", "user")]
    assert client.get("/api/v1/jobs", headers=bearer(token)).status_code == 200


@pytest.mark.parametrize(
    "name",
    ["admin", "join", "Admin", "JOIN", "", "-bob", ".bob", "bob smith", "bob:1", "worker:w1",
     "bob/1", "böb", "b" * 65, "bob\n"],
)  # fmt: skip
def test_a_bad_or_reserved_name_is_a_422(client: FlaskClient, name: str) -> None:
    response = client.post("/api/v1/tokens", json={"name": name}, headers=ADMIN)
    assert "name" in error_of(response, 422)["details"]["json"]
    assert listed(client) == []


def test_a_bad_role_or_a_field_not_in_the_contract_is_a_422(client: FlaskClient) -> None:
    for body in ({"name": "bob", "role": "worker"}, {"name": "bob", "expires_at": 1}):
        error_of(client.post("/api/v1/tokens", json=body, headers=ADMIN), 422)
    assert listed(client) == []


def test_names_at_the_edges_of_the_charset_are_taken(client: FlaskClient) -> None:
    for name in ("b", "B" * 64, "0.bob_smith-2", "administrator"):
        create(client, name)
    assert create(client, "u") != create(client, "v")


def test_revoking_refuses_the_token_at_once_and_frees_the_name(client: FlaskClient) -> None:
    token = bearer(create(client, "bob"))
    assert client.get("/api/v1/jobs", headers=token).status_code == 200  # now cached
    assert client.delete("/api/v1/tokens/bob", headers=ADMIN).status_code == 204
    error_of(client.get("/api/v1/jobs", headers=token), 401)
    assert listed(client) == []
    error_of(client.delete("/api/v1/tokens/bob", headers=ADMIN), 404)
    error_of(client.delete("/api/v1/tokens/admin", headers=ADMIN), 404)
    again = bearer(create(client, "bob"))
    assert client.get("/api/v1/jobs", headers=again).status_code == 200
    error_of(client.get("/api/v1/jobs", headers=token), 401)


def second_app(store: Store, clock: ManualClock) -> Flask:
    """Another API process on the same Redis, its token cache on a manual clock."""
    app = create_app(CONFIG, store)
    cache = TokenCache(store.tokens.lookup_hash, record_use=store.tokens.used, clock=clock)
    app.extensions["jobyard"] = Services(CONFIG, store, cache)
    return app


def test_a_revoked_token_dies_in_another_api_process_within_the_cache_period(
    client: FlaskClient, store: Store
) -> None:
    clock = ManualClock()
    other = second_app(store, clock).test_client()
    token = bearer(create(client, "bob"))
    assert other.get("/api/v1/jobs", headers=token).status_code == 200
    assert client.delete("/api/v1/tokens/bob", headers=ADMIN).status_code == 204
    clock.advance(TOKEN_CACHE_S * 0.9)
    assert other.get("/api/v1/jobs", headers=token).status_code == 200  # the stated bound
    clock.advance(TOKEN_CACHE_S * 0.1)
    error_of(other.get("/api/v1/jobs", headers=token), 401)
