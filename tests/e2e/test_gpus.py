"""A GPU job through real processes on a Docker daemon that cannot hand out GPUs (as on a
machine without them): placed on the worker that offers GPUs, given its devices by the
agent, refused by the daemon, so it ends FAILED with reason `error` and the daemon's
message, never COMPLETED without its devices; the reservation is given back."""

import docker
import pytest

from tests.e2e.cluster import TERMINAL, Cluster, ClusterSpec

CLUSTER = ClusterSpec(
    # The session's Redis is shared: other modules' workers must not be seen here.
    env={"JOBYARD_REDIS_PREFIX": "gpus:"},
    agents=(
        {"JOBYARD_WORKER_CPU": "2", "JOBYARD_WORKER_MEMORY_MB": "2048", "JOBYARD_WORKER_GPUS": "2"},
    ),
)


def test_gpus_the_daemon_cannot_give_fail_the_job_with_its_message(
    cluster: Cluster, docker_client: docker.DockerClient
) -> None:
    if "nvidia" in (docker_client.info().get("Runtimes") or {}):
        pytest.skip("this daemon can hand out GPUs; the failure path needs one that cannot")
    (worker,) = cluster.client.workers()["workers"]
    assert worker["capacity"]["gpus"] == 2

    job = cluster.client.submit(
        {
            "command": ["echo", "ran without its GPUs"],
            "resources": {"cpu": 0.5, "memory_mb": 64, "gpus": 2},
            "max_retries": 0,
        }
    )
    ended = cluster.wait_for_state(job["id"], TERMINAL)

    assert (ended["state"], ended["reason"], ended["exit_code"]) == ("FAILED", "error", None)
    assert "could not select device driver" in ended["error"]
    assert cluster.client.output(job["id"])["chunks"] == []
    (worker,) = cluster.client.workers()["workers"]
    assert worker["reserved"] == {"cpu": 0.0, "memory_mb": 0, "gpus": 0, "jobs": 0}
