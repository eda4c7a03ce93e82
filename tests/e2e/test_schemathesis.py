"""Schemathesis over the OpenAPI document, against real api and scheduler processes on a
real redis-server: no generated request may get a 5xx, an undeclared status, a wrong
content type or a body that breaks the schema documented for its operation and status.

It runs schemathesis' own command (all its phases: boundary values, fuzzing, stateful
sequences) with the requests aimed at a real job assigned to a real worker, once for each
kind of caller: as an admin (the worker's own endpoints with that worker's token, so that
they reach past the 404 and the 403 into the handlers), as a user (the job is the user's
own) and as the worker (every operation with its token: what a worker may not call must
answer a documented 403, never a 5xx).
Bounded: a few examples per operation, a timeout on each request and on the whole run, and
the two event streams left out (they stay open while the job runs, or for ever; the
output stream's tests cover them).
"""

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import pytest
import redis

from shared.client import ApiClient
from shared.retry import retry
from tests.e2e.cluster import ADMIN_TOKEN, JOIN_TOKEN, Cluster
from tests.helpers import wait_until

pytestmark = [pytest.mark.e2e, pytest.mark.redis]

SCHEMATHESIS = str(Path(sys.executable).parent / "schemathesis")
CHECKS = ",".join(
    (
        "not_a_server_error",
        "status_code_conformance",
        "content_type_conformance",
        "response_schema_conformance",
    )
)
MAX_EXAMPLES = 20
REQUEST_TIMEOUT_S = 10
RUN_TIMEOUT_S = 300
PREFIX = "schemathesis:"
ENV = {
    # Its own keys: the many workers it registers must never join another test's pool.
    "JOBYARD_REDIS_PREFIX": PREFIX,
    # Nothing may go stale or be declared lost while schemathesis holds the job and worker.
    "JOBYARD_WORKER_TIMEOUT_S": "3600",
    "JOBYARD_ASSIGN_TIMEOUT_S": "3600",
}


@pytest.fixture(scope="module")
def api(redis_url: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    cluster = Cluster(redis_url, tmp_path_factory.mktemp("schemathesis"), ENV)
    try:
        cluster.start("api", "api")
        cluster.start("scheduler", "scheduler")
        cluster.wait_ready()
        yield cluster
    finally:
        cluster.stop()
        client = redis.Redis.from_url(redis_url)
        for key in client.scan_iter(f"{PREFIX}*"):
            client.delete(key)
        client.close()


def pause(delay_s: float) -> bool:
    time.sleep(delay_s)  # the Retry-After the API asked for: a pace, not a wait for a state
    return False  # never gives up: the run's own timeout bounds it


def register(cluster: Cluster, hostname: str, cpu: float, memory_mb: int) -> dict[str, Any]:
    body = {"hostname": hostname, "capacity": {"cpu": cpu, "memory_mb": memory_mb}}
    answer: dict[str, Any] = cluster.client.register(body)
    return answer


def targets(cluster: Cluster, caller: str) -> dict[str, Any]:
    """A job assigned to a worker that schemathesis speaks for (no agent runs), a spare
    worker for drain and deregistration, a finished job for DELETE, and the token the run
    calls with: the admin's, a new user's (whose jobs these are) or the worker's."""
    # The workers of an earlier run (and those schemathesis registered) take no more jobs,
    # and the jobs it submitted are cancelled: this run's job must go to this run's worker.
    # Paced by the rate limit, like every call here: the earlier run may have spent the
    # admin's budget, and there are hundreds of leftovers.
    for earlier in retry(cluster.client.workers, pause)["workers"]:
        if earlier["status"] == "alive":
            retry(partial(cluster.client.drain, earlier["id"]), pause)
    while queued := retry(partial(cluster.client.jobs, state="QUEUED", limit=100), pause)["jobs"]:
        for leftover in queued:
            retry(partial(cluster.client.cancel, leftover["id"]), pause)
    worker = register(cluster, f"schemathesis-{caller}", cpu=2, memory_mb=1024)
    spare = register(cluster, f"spare-{caller}", cpu=0.001, memory_mb=1)  # fits no job
    token = {"admin": ADMIN_TOKEN, "worker": worker["token"]}.get(caller)
    if token is None:
        created = cluster.client.request("POST", "/api/v1/tokens", json={"name": caller})
        token = created["token"]
    owner = ApiClient(cluster.api_url, ADMIN_TOKEN if caller == "worker" else token)
    job = owner.submit({"command": ["true"]})["id"]
    wait_until(lambda: cluster.client.job(job)["worker_id"] == worker["worker_id"], 20)
    too_big = {"command": ["true"], "resources": {"cpu": 4}}  # stays QUEUED: cancelled at once
    finished = owner.submit(too_big)["id"]
    owner.cancel(finished)
    owner.close()
    return {
        "caller": caller,
        "token": token,
        "worker": worker,
        "spare": spare["worker_id"],
        "job": job,
        "finished": finished,
    }


def config_file(path: Path, aims: dict[str, Any]) -> Path:
    """schemathesis.toml: which ids and token each operation is called with."""
    worker = aims["worker"]
    own_worker: dict[str, Any] = {
        "include-path-regex": r"/attempts/|/heartbeat$|/assignments$",
        "parameters": {"worker_id": worker["worker_id"], "attempt": 1, "wait": 0},
    }
    if aims["caller"] == "admin":  # an admin may not speak for a worker: its token does
        own_worker["headers"] = {"Authorization": f"Bearer {worker['token']}"}
    operations = [
        own_worker,
        {
            "include-path-regex": r"^/api/v1/workers/\{worker_id\}(/drain)?$",
            "parameters": {"worker_id": aims["spare"]},
        },
        {
            "include-path": "/api/v1/jobs/{job_id}",
            "include-method": "DELETE",
            "parameters": {"job_id": aims["finished"]},
        },
    ]
    if aims["caller"] == "admin":
        operations.append(
            {
                "include-path": "/api/v1/workers/register",
                "headers": {"Authorization": f"Bearer {JOIN_TOKEN}"},
            }
        )
    lines = [f"headers = {{ Authorization = {json.dumps('Bearer ' + aims['token'])} }}"]
    lines.append(f"parameters = {{ job_id = {json.dumps(aims['job'])} }}")
    for operation in operations:
        lines.append("[[operations]]")
        lines += [f"{key} = {_toml(value)}" for key, value in operation.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def _toml(value: Any) -> str:
    if isinstance(value, dict):
        return "{ " + ", ".join(f"{k} = {_toml(v)}" for k, v in value.items()) + " }"
    return json.dumps(value)


@pytest.mark.parametrize("caller", ["admin", "user", "worker"])
def test_no_response_breaks_the_documented_contract(
    api: Cluster, tmp_path: Path, caller: str
) -> None:
    config = config_file(tmp_path / "schemathesis.toml", targets(api, caller))
    run = subprocess.run(
        [
            SCHEMATHESIS, "--config-file", str(config), "run",
            f"{api.api_url}/api/v1/openapi.json",
            "--checks", CHECKS,
            "--exclude-path-regex", r"/stream$",
            "--max-examples", str(MAX_EXAMPLES),
            "--request-timeout", str(REQUEST_TIMEOUT_S),
            "--workers", "1",
        ],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=RUN_TIMEOUT_S,
    )  # fmt: skip
    assert run.returncode == 0, run.stdout[-20000:] + run.stderr[-4000:] + api.logs()
