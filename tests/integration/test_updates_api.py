"""POST /api/v1/workers/{id}/updates on a real redis-server: many starts and results in one
call, each fenced on its own and answered as its per-job call would be; and the
assignments long-poll answering every job newly assigned."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from shared.batches import MAX_BATCH
from shared.config import Config
from shared.schemas.errors import ErrorSchema
from shared.store import Store
from tests.store_support import check_store_invariants, commit

ADMIN = {"Authorization": "Bearer admin-token"}
JOIN = {"Authorization": "Bearer join-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")
DONE = {"exit_code": 0}


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def register(client: FlaskClient, slots: int = 8) -> tuple[str, dict[str, str]]:
    """A worker with room for `slots` of the small jobs below."""
    answer = client.post(
        "/api/v1/workers/register",
        json={"hostname": "h", "capacity": {"cpu": slots, "memory_mb": 16 * slots},
              "max_parallel_jobs": slots},
        headers=JOIN,
    ).get_json()  # fmt: skip
    return answer["worker_id"], {"Authorization": f"Bearer {answer['token']}"}


def assigned_jobs(client: FlaskClient, store: Store, worker_id: str, n: int) -> list[str]:
    body = {"jobs": [{"command": ["true"], "resources": {"cpu": 0.1, "memory_mb": 16}}] * n}
    ids = [
        job["id"]
        for job in client.post("/api/v1/jobs/batch", json=body, headers=ADMIN).json["jobs"]
    ]
    assert commit(store, [(job_id, worker_id) for job_id in ids]) == [1] * n
    return ids


def updates(
    client: FlaskClient, worker_id: str, token: dict[str, str], items: list[dict[str, Any]]
) -> list[dict[str, Any]]:
    response = client.post(
        f"/api/v1/workers/{worker_id}/updates", json={"updates": items}, headers=token
    )
    assert response.status_code == 200, response.get_json()
    answers: list[dict[str, Any]] = response.get_json()["updates"]
    return answers


def test_starts_and_results_in_one_call(client: FlaskClient, store: Store) -> None:
    worker_id, token = register(client)
    a, b, c = assigned_jobs(client, store, worker_id, 3)
    started = updates(
        client, worker_id, token, [{"id": j, "attempt": 1, "start": True} for j in (a, b, c)]
    )
    assert [(u["id"], u["status"], u["state"]) for u in started] == [
        (a, 200, "RUNNING"),
        (b, 200, "RUNNING"),
        (c, 200, "RUNNING"),
    ]
    ended = updates(client, worker_id, token, [
        {"id": a, "attempt": 1, "result": DONE},
        {"id": b, "attempt": 1, "result": {"exit_code": 3}},
        {"id": c, "attempt": 1, "result": {"reason": "oom", "exit_code": 137}},
    ])  # fmt: skip
    assert [(u["status"], u["state"]) for u in ended] == [
        (200, "COMPLETED"),
        (200, "FAILED"),
        (200, "FAILED"),
    ]
    assert [store.jobs.get(j)["reason"] for j in (a, b, c)] == [None, "exit_code", "oom"]
    # Every reservation went back in the same call.
    assert store.workers.get(worker_id)["reserved"] == {
        "cpu": 0,
        "memory_mb": 0,
        "gpus": 0,
        "jobs": 0,
    }
    check_store_invariants(store)
    # A repeat of the whole call (its answer was lost) changes nothing and answers the same.
    again = updates(client, worker_id, token, [{"id": a, "attempt": 1, "result": DONE}])
    assert (again[0]["status"], again[0]["state"], again[0]["version"]) == (
        200,
        "COMPLETED",
        ended[0]["version"],
    )


def test_each_item_is_fenced_on_its_own(client: FlaskClient, store: Store) -> None:
    worker_id, token = register(client)
    other_id, _ = register(client)
    (mine,) = assigned_jobs(client, store, worker_id, 1)
    (theirs,) = assigned_jobs(client, store, other_id, 1)
    answers = updates(client, worker_id, token, [
        {"id": "no-such-job", "attempt": 1, "start": True},
        {"id": mine, "attempt": 2, "start": True},  # an attempt that is not current
        {"id": theirs, "attempt": 1, "start": True},  # another worker's job
        {"id": mine, "attempt": 1, "start": True},
    ])  # fmt: skip
    assert [(u["status"], u["code"]) for u in answers] == [
        (404, "not_found"), (409, "stale_attempt"), (403, "forbidden"), (200, None),
    ]  # fmt: skip
    assert answers[2]["state"] is None and "not this worker's" in answers[2]["error"]
    assert store.jobs.get(mine)["state"] == "RUNNING"
    assert store.jobs.get(theirs)["state"] == "ASSIGNED"
    # The per-job endpoints answer the same statuses.
    per_job = [
        client.post(f"/api/v1/jobs/{job}/attempts/{n}/start", headers=token).status_code
        for job, n in (("no-such-job", 1), (mine, 2), (theirs, 1))
    ]
    assert per_job == [404, 409, 403]


def test_an_answer_tells_of_a_cancel_asked_for(client: FlaskClient, store: Store) -> None:
    worker_id, token = register(client)
    (job,) = assigned_jobs(client, store, worker_id, 1)
    assert client.post(f"/api/v1/jobs/{job}/cancel", headers=ADMIN).status_code == 200
    [started] = updates(client, worker_id, token, [{"id": job, "attempt": 1, "start": True}])
    assert started["cancel"] is True
    [ended] = updates(
        client, worker_id, token, [{"id": job, "attempt": 1, "result": {"reason": "cancelled"}}]
    )
    assert ended["state"] == "CANCELLED"


@pytest.mark.parametrize(
    "items",
    [
        [],
        [{"id": "j", "attempt": 1}],  # neither start nor result
        [{"id": "j", "attempt": 1, "start": True, "result": DONE}],  # both
        [{"id": "j", "attempt": 1, "result": {}}],  # a result that says nothing
        [{"id": "j", "attempt": 0, "start": True}],
        [{"id": "j", "attempt": 1, "start": True}] * (MAX_BATCH + 1),
    ],
)
def test_a_bad_batch_is_422(client: FlaskClient, store: Store, items: list[dict[str, Any]]) -> None:
    worker_id, token = register(client)
    response = client.post(
        f"/api/v1/workers/{worker_id}/updates", json={"updates": items}, headers=token
    )
    assert response.status_code == 422, response.get_json()
    assert ErrorSchema().validate(response.get_json()) == {}


def test_a_worker_speaks_only_for_itself(client: FlaskClient) -> None:
    _, token = register(client)
    other_id, _ = register(client)
    response = client.post(
        f"/api/v1/workers/{other_id}/updates",
        json={"updates": [{"id": "j", "attempt": 1, "start": True}]},
        headers=token,
    )
    assert response.status_code == 403


def test_the_long_poll_answers_every_newly_assigned_job(
    client: FlaskClient, store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Up to MAX_BATCH a call (made 100 here, so that the test stays small): the rest come
    with the next ones, in the order they were assigned."""
    monkeypatch.setattr("shared.store.workers.MAX_BATCH", 100)
    worker_id, token = register(client, slots=300)
    ids = assigned_jobs(client, store, worker_id, 300)
    polled = []
    for _ in range(3):
        response = client.get(f"/api/v1/workers/{worker_id}/assignments?wait=0", headers=token)
        polled.append([job["id"] for job in response.get_json()["jobs"]])
    assert polled == [ids[:100], ids[100:200], ids[200:]]
    assert (
        client.get(f"/api/v1/workers/{worker_id}/assignments?wait=0", headers=token).status_code
        == 204
    )
