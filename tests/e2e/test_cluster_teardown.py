"""The e2e clusters' teardown: what an agent left behind (here, killed -9 mid-job) is removed
by its worker ids' label, and nothing else is: another worker's container stays."""

import secrets
from pathlib import Path

import docker
import pytest

from tests.docker.conftest import IMAGE
from tests.e2e.cluster import ClusterSpec, labelled, running_cluster, running_containers
from tests.helpers import wait_until
from worker_agent.executors.docker import LABEL_WORKER


@pytest.mark.e2e  # starts the processes through running_cluster, the fixtures' own helper
def test_teardown_removes_the_containers_of_this_clusters_workers_only(
    redis_url: str, docker_client: docker.DockerClient, tmp_path: Path
) -> None:
    other_worker = f"not-this-cluster-{secrets.token_hex(4)}"
    other = docker_client.containers.create(
        IMAGE, ["true"], labels={LABEL_WORKER: other_worker}, network_mode="none"
    )
    try:
        spec = ClusterSpec(env={"JOBYARD_REDIS_PREFIX": "teardown:"})
        with (
            pytest.warns(UserWarning, match="removed containers left by"),
            running_cluster(spec, redis_url, tmp_path, docker_client) as cluster,
        ):
            job = cluster.client.submit(
                {"command": ["sleep", "120"], "resources": {"cpu": 0.25, "memory_mb": 32}}
            )
            cluster.wait_for_state(job["id"], {"RUNNING"}, timeout_s=30)
            workers = cluster.worker_ids()
            wait_until(lambda: running_containers(docker_client, workers), timeout=30)
            cluster.kill("worker0")  # its container runs on, with nobody to remove it

        assert [labelled(docker_client, worker) for worker in workers] == [[]]
        assert [c["Id"] for c in labelled(docker_client, other_worker)] == [other.id]
    finally:
        other.remove(force=True)
