"""DESIGN §3's two best-fit cases as a user meets them: jobs submitted over HTTP, placed
by the real placement loop on a real redis-server."""

from typing import Any

import pytest
from flask.testing import FlaskClient

from api.app import create_app
from scheduler.loop import schedule_once
from shared.config import Config
from shared.store import Store
from tests.store_support import register

CONFIG = Config.from_env({}, admin_token="admin-token", placement="binpack")
ADMIN = {"Authorization": "Bearer admin-token"}


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def submit(client: FlaskClient, resources: dict[str, Any]) -> str:
    body = {"command": ["true"], "resources": resources}
    response = client.post("/api/v1/jobs", json=body, headers=ADMIN)
    assert response.status_code == 201, response.get_json()
    job_id: str = response.get_json()["id"]
    return job_id


def placed_on(client: FlaskClient, store: Store, job_id: str) -> str:
    schedule_once(store, CONFIG)
    job = client.get(f"/api/v1/jobs/{job_id}", headers=ADMIN).get_json()
    assert job["state"] == "ASSIGNED", job
    worker_id: str = job["worker_id"]
    return worker_id


def test_a_small_job_goes_to_the_small_idle_worker(client: FlaskClient, store: Store) -> None:
    register(store, "small", cpu_m=1000, memory_mb=1024)
    register(store, "big", cpu_m=4000, memory_mb=8192)
    job_id = submit(client, {"cpu": 1, "memory_mb": 512})
    assert placed_on(client, store, job_id) == "small"


@pytest.mark.parametrize("memory_mb", [2048, 4096, 16384])
def test_jobs_asking_only_cpu_each_go_where_the_least_cpu_is_left(
    client: FlaskClient, store: Store, memory_mb: int
) -> None:
    for worker_id, cpu_m in (("eight", 8000), ("two", 2000), ("four", 4000)):
        register(store, worker_id, cpu_m=cpu_m, memory_mb=memory_mb)
    expected = [(3, "four"), (1, "four"), (2, "two"), (0.5, "eight")]
    for cpu, worker_id in expected:
        assert placed_on(client, store, submit(client, {"cpu": cpu})) == worker_id
