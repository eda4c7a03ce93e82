"""Crashes of real processes (kill -9): an agent mid-job, the api and the scheduler, and
redis-server itself (AOF, appendfsync always). Nothing acknowledged is lost: every job
completes, every output line is stored exactly once and in order, no process gives up."""

import signal
import threading
from collections.abc import Iterator
from pathlib import Path

import docker
import pytest
import requests

from shared.client import ApiError
from tests.e2e.cluster import (
    ADMIN_TOKEN,
    TERMINAL,
    Cluster,
    ClusterSpec,
    DurableRedis,
    MakeCluster,
    labelled,
    running_containers,
)
from tests.helpers import wait_until

SMALL = {"cpu": 0.25, "memory_mb": 32}
ONE_CPU = {"JOBYARD_WORKER_CPU": "1", "JOBYARD_WORKER_MEMORY_MB": "1024"}


@pytest.fixture
def durable_redis(redis_server_binary: str, tmp_path: Path) -> Iterator[DurableRedis]:
    """A redis-server of the test's own (redis_server_binary: the test needs the binary)."""
    redis = DurableRedis(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        redis.stop()


def full_output(cluster: Cluster, job_id: str) -> list[dict]:
    chunks: list[dict] = []
    while page := cluster.client.output(job_id, chunks[-1]["offset"] if chunks else 0)["chunks"]:
        chunks.extend(page)
    return chunks


def submit(cluster: Cluster, command: list[str]) -> str:
    job_id: str = cluster.client.submit({"command": command, "resources": SMALL})["id"]
    return job_id


def test_an_agent_killed_mid_job_loses_it_to_the_other_agent(
    redis_url: str, make_cluster: MakeCluster, docker_client: docker.DockerClient
) -> None:
    env = {"JOBYARD_REDIS_PREFIX": "crash-agent:", "JOBYARD_WORKER_TIMEOUT_S": "5", **ONE_CPU}
    cluster = make_cluster(redis_url, ClusterSpec(env=env, agents=({}, {})))
    job_id = submit(cluster, ["sh", "-c", "echo start; sleep 5; echo done"])
    first = cluster.wait_for_state(job_id, {"RUNNING"}, timeout_s=30)["worker_id"]
    victim = cluster.worker_process(first)

    def containers_of_first() -> list:
        return labelled(docker_client, first)

    # RUNNING comes just before the container does: kill the agent once it runs.
    wait_until(containers_of_first, timeout=30)
    cluster.kill(victim)

    assert containers_of_first(), "the first attempt's container died with its agent"
    job = cluster.wait_for_state(job_id, TERMINAL, timeout_s=40)
    assert (job["state"], job["attempt"]) == ("COMPLETED", 2)
    assert job["worker_id"] != first
    events = cluster.client.events(job_id)["events"]
    assert [(e["to"], e["reason"]) for e in events if e["to"] == "QUEUED"][1:] == [
        ("QUEUED", "lost")
    ]
    # The first attempt may have sent its "start" before it died, never its "done".
    text = "".join(c["data"] for c in full_output(cluster, job_id))
    assert text in ("start\ndone\n", "start\nstart\ndone\n"), text

    # Restarted from its state directory, the dead agent removes what its earlier
    # worker id left behind and joins as a new worker; the job stays as it ended.
    cluster.restart(victim)
    wait_until(lambda: not containers_of_first(), timeout=30, message=cluster.logs)
    wait_until(
        lambda: sum(w["status"] == "alive" for w in cluster.client.workers()["workers"]) == 2,
        timeout=30,
    )
    assert cluster.client.job(job_id)["version"] == job["version"]
    cluster.check_alive()


def test_a_frozen_agent_that_wakes_after_its_job_moved_on_is_refused(
    redis_url: str, make_cluster: MakeCluster, docker_client: docker.DockerClient
) -> None:
    env = {"JOBYARD_REDIS_PREFIX": "crash-frozen:", "JOBYARD_WORKER_TIMEOUT_S": "5", **ONE_CPU}
    cluster = make_cluster(redis_url, ClusterSpec(env=env, agents=({}, {})))
    job_id = submit(cluster, ["sh", "-c", "sleep 2; echo done"])
    first = cluster.wait_for_state(job_id, {"RUNNING"}, timeout_s=30)["worker_id"]
    victim = cluster.worker_process(first)
    process = cluster.processes[victim]
    wait_until(lambda: labelled(docker_client, first), timeout=30)

    process.send_signal(signal.SIGSTOP)  # a partition, as the control plane sees it
    job = cluster.wait_for_state(job_id, TERMINAL, timeout_s=40)
    process.send_signal(signal.SIGCONT)

    assert (job["state"], job["attempt"]) == ("COMPLETED", 2)
    log = cluster.workdir / f"{victim}.log"
    # Its container ended meanwhile: what it reports about attempt 1 is refused as stale
    # (409), and its heartbeat learns the worker was declared lost (410): it rejoins.
    wait_until(lambda: "status=409" in log.read_text(), timeout=20, message=cluster.logs)
    wait_until(lambda: "event=worker_lost" in log.read_text(), timeout=20)
    final = cluster.client.job(job_id)
    assert (final["state"], final["attempt"], final["version"]) == (
        "COMPLETED",
        2,
        job["version"],
    )
    cluster.check_alive()


def test_jobs_queued_and_running_survive_kill_9_of_the_api_and_the_scheduler(
    redis_url: str, make_cluster: MakeCluster, docker_client: docker.DockerClient
) -> None:
    env = {"JOBYARD_REDIS_PREFIX": "crash-cp:", "JOBYARD_WORKER_CPU": "0.5"}
    cluster = make_cluster(redis_url, ClusterSpec(env={**ONE_CPU, **env}))
    ids = [submit(cluster, ["sh", "-c", f"sleep 1; echo job {n}"]) for n in range(6)]
    cluster.wait_for_state(ids[0], {"RUNNING"}, timeout_s=30)
    assert cluster.client.stats()["counts"]["QUEUED"] >= 3

    cluster.kill("api")
    cluster.kill("scheduler")
    worker_log = cluster.workdir / "worker0.log"
    # Jobs write and end while nobody listens: the agent keeps it all and retries.
    wait_until(lambda: "event=output_retrying" in worker_log.read_text(), timeout=20)
    # The outage outlasts the jobs that were running: their containers end and go.
    wait_until(lambda: not running_containers(docker_client, cluster.worker_ids()), timeout=30)
    cluster.check_alive()
    cluster.restart("api")
    cluster.restart("scheduler")
    cluster.wait_ready()

    finished = [cluster.wait_for_state(job_id, TERMINAL, timeout_s=60) for job_id in ids]
    assert [(job["state"], job["attempt"]) for job in finished] == [("COMPLETED", 1)] * 6
    for n, job_id in enumerate(ids):
        assert "".join(c["data"] for c in full_output(cluster, job_id)) == f"job {n}\n"
    assert not list((cluster.workdir / "agent0" / "results").glob("*.json"))
    cluster.check_alive()


class Submitter:
    """Submits a small job every 100 ms in a thread; remembers each one that got a 201."""

    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self.acknowledged: list[str] = []
        self.refused: list[int] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.1):
            try:
                self.acknowledged.append(submit(self.cluster, ["true"]))
            except ApiError as exc:
                self.refused.append(exc.status)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(15)


def assert_unavailable(cluster: Cluster, job_id: str) -> None:
    """While Redis is down, the API answers 503 with the JSON error shape."""
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    base = cluster.api_url
    answers = [
        requests.get(f"{base}/readyz", timeout=10),
        requests.get(f"{base}/api/v1/jobs", headers=auth, timeout=10),
        requests.get(f"{base}/api/v1/jobs/{job_id}", headers=auth, timeout=10),
        requests.get(f"{base}/api/v1/stats", headers=auth, timeout=10),
        requests.post(f"{base}/api/v1/jobs", json={"command": ["true"]}, headers=auth, timeout=10),
        requests.post(f"{base}/api/v1/jobs/{job_id}/cancel", headers=auth, timeout=10),
    ]
    for answer in answers:
        assert answer.status_code == 503, (answer.request.url, answer.text)
        assert answer.headers["Content-Type"].startswith("application/json")
        assert set(answer.json()["error"]) == {"code", "message", "details"}
    assert requests.get(f"{base}/healthz", timeout=10).status_code == 200


def test_every_acknowledged_job_completes_across_a_kill_9_of_redis(
    durable_redis: DurableRedis, make_cluster: MakeCluster, docker_client: docker.DockerClient
) -> None:
    cluster = make_cluster(durable_redis.url, ClusterSpec(env=ONE_CPU))
    submitter: Submitter | None = None
    try:
        sleepers = [submit(cluster, ["sh", "-c", "sleep 2; echo slept"]) for _ in range(6)]
        submitter = Submitter(cluster)
        cluster.wait_for_state(sleepers[0], {"RUNNING"}, timeout_s=30)
        wait_until(lambda: len(submitter.acknowledged) >= 3, timeout=30)

        durable_redis.kill()
        assert_unavailable(cluster, sleepers[0])
        # An outage that outlasts the jobs that were running: their containers end and go.
        workers = cluster.worker_ids()
        wait_until(lambda: not running_containers(docker_client, workers), timeout=30)
        assert_unavailable(cluster, sleepers[0])
        cluster.check_alive()
        durable_redis.start()
        cluster.wait_ready()
        before = len(submitter.acknowledged)
        wait_until(lambda: len(submitter.acknowledged) >= before + 3, timeout=30)
        submitter.stop()

        assert 503 in submitter.refused, "no submission fell into the outage"
        for job_id in sleepers + submitter.acknowledged:
            job = cluster.wait_for_state(job_id, TERMINAL, timeout_s=90)
            assert job["state"] == "COMPLETED", job
        for job_id in sleepers:
            assert "".join(c["data"] for c in full_output(cluster, job_id)) == "slept\n"
        cluster.check_alive()
    finally:
        if submitter is not None:
            submitter.stop()


def test_output_written_while_redis_is_down_is_stored_once_and_in_order(
    durable_redis: DurableRedis, make_cluster: MakeCluster
) -> None:
    cluster = make_cluster(durable_redis.url, ClusterSpec(env=ONE_CPU))
    # 32 KiB lines every 100 ms: the outage below lasts until they are more than the agent's
    # 1 MiB of memory buffer, so the rest goes through its disk spool.
    script = (
        "pad=$(head -c 32768 /dev/zero | tr '\\0' x); i=0; "
        'while [ $i -lt 120 ]; do echo "line $i $pad"; i=$((i+1)); sleep 0.1; done'
    )
    job_id = cluster.client.submit(
        {"command": ["sh", "-c", script], "resources": {"cpu": 0.5, "memory_mb": 64}}
    )["id"]
    wait_until(lambda: len(full_output(cluster, job_id)) >= 5, timeout=30)

    durable_redis.kill()
    log = cluster.workdir / "worker0.log"
    wait_until(lambda: "event=output_spooled" in log.read_text(), timeout=30, message=cluster.logs)
    cluster.check_alive()
    durable_redis.start()

    job = cluster.wait_for_state(job_id, TERMINAL, timeout_s=60)
    assert (job["state"], job["attempt"], job["output_truncated"]) == ("COMPLETED", 1, False)
    text = "".join(c["data"] for c in full_output(cluster, job_id) if c["stream"] == "stdout")
    pad = "x" * 32768
    assert text.splitlines() == [f"line {i} {pad}" for i in range(120)]
    assert not list((cluster.workdir / "agent0" / "spool").iterdir())
    cluster.check_alive()
