"""The images and the compose file as an operator uses them: `make images` builds
jobyard/api and jobyard/worker from local parts (a Debian base made with debootstrap, wheels
built on the host), `docker-compose up` runs redis, api, scheduler and a worker on a free
port, a job runs to COMPLETED through it, `--scale worker=2` adds an agent and jobs run on
both, and `docker-compose down -v` leaves no container and no volume behind."""

import os
import secrets
import subprocess
from pathlib import Path
from typing import Any

import docker

from shared.client import ApiClient, ApiError
from tests.e2e.cluster import remove_leftover_containers
from tests.helpers import free_port, require_binary, wait_until

ROOT = Path(__file__).resolve().parents[2]
BUILD_TIMEOUT_S = 900  # a first build makes the base image (debootstrap): minutes
# Jobs too big for two to share a worker's 2 CPUs, so two at once need both workers.
BIG = {"cpu": 1.5, "memory_mb": 64}


class Compose:
    def __init__(self, binary: str, port: int) -> None:
        self.binary = binary
        self.project = f"jobyard-test-{secrets.token_hex(4)}"
        self.admin = secrets.token_urlsafe(16)
        self.env = {
            **os.environ,
            "COMPOSE_PROJECT_NAME": self.project,
            "JOBYARD_ADMIN_TOKEN": self.admin,
            "JOBYARD_WORKER_JOIN_TOKEN": secrets.token_urlsafe(16),
            "JOBYARD_PORT": str(port),
        }

    def __call__(self, *args: str) -> str:
        done = subprocess.run(
            [self.binary, "--file", str(ROOT / "docker-compose.yml"), *args],
            env=self.env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=300,
        )
        assert done.returncode == 0, f"docker-compose {' '.join(args)}:\n{done.stderr}"
        return done.stdout

    def logs(self) -> str:
        return self("logs", "--no-color", "--tail", "40")


def alive_workers(client: ApiClient) -> list[dict[str, Any]]:
    try:
        workers: list[dict[str, Any]] = client.workers()["workers"]
    except ApiError:
        return []  # the api is still starting
    return [w for w in workers if w["status"] == "alive"]


def healthy(client: docker.DockerClient, project: str) -> bool:
    """Whether every api and worker container of the project says it is healthy."""
    found = []
    for service in ("api", "worker"):
        labels = [f"com.docker.compose.project={project}", f"com.docker.compose.service={service}"]
        found += client.containers.list(filters={"label": labels})
    statuses = [c.attrs["State"].get("Health", {}).get("Status") for c in found]
    return len(statuses) == 3 and all(status == "healthy" for status in statuses)


def run_to_the_end(client: ApiClient, body: dict[str, Any]) -> dict[str, Any]:
    job_id = client.submit(body)["id"]

    def finished() -> dict[str, Any] | None:
        job: dict[str, Any] = client.job(job_id)
        return job if job["state"] in ("COMPLETED", "FAILED", "CANCELLED") else None

    return wait_until(finished, 120, 0.2)


def test_the_composed_stack_runs_jobs_scales_and_leaves_nothing(
    docker_client: docker.DockerClient, docker_image: str
) -> None:
    binary = require_binary("docker-compose", "docker-compose")
    require_binary("debootstrap", "debootstrap")
    built = subprocess.run(
        ["make", "--no-print-directory", "images"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=BUILD_TIMEOUT_S,
    )
    assert built.returncode == 0, built.stdout + built.stderr
    port = free_port()
    compose = Compose(binary, port)
    client = ApiClient(f"http://127.0.0.1:{port}", compose.admin)
    worker_ids: set[str] = set()
    try:
        compose("up", "-d")
        wait_until(lambda: len(alive_workers(client)) == 1, 120, 0.5, compose.logs)
        job = run_to_the_end(client, {"command": ["sh", "-c", "echo composed"], "resources": BIG})
        assert job["state"] == "COMPLETED", (job, compose.logs())
        assert client.output(job["id"])["chunks"][0]["data"] == "composed\n"

        compose("up", "-d", "--scale", "worker=2")
        wait_until(lambda: len(alive_workers(client)) == 2, 120, 0.5, compose.logs)
        worker_ids = {w["id"] for w in alive_workers(client)}
        ids = [client.submit({"command": ["sleep", "2"], "resources": BIG})["id"] for _ in range(2)]
        wait_until(
            lambda: all(client.job(i)["state"] == "COMPLETED" for i in ids), 120, 0.5, compose.logs
        )
        assert {client.job(i)["worker_id"] for i in ids} == worker_ids  # one on each
        # The images' HEALTHCHECKs: the api answers /readyz, each agent has registered.
        wait_until(lambda: healthy(docker_client, compose.project), 90, 1, compose.logs)
    finally:
        client.close()
        compose("down", "--volumes", "--remove-orphans", "--timeout", "30")
        left_jobs = remove_leftover_containers(docker_client, worker_ids)
    label = f"com.docker.compose.project={compose.project}"
    assert docker_client.containers.list(all=True, filters={"label": label}) == []
    assert docker_client.volumes.list(filters={"label": label}) == []
    assert left_jobs == []
