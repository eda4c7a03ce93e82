"""The chaos soak at a size CI affords: real redis-server (AOF, appendfsync always), api,
scheduler and three agents running Docker jobs, with agents killed -9 and restarted, and
the api, the scheduler and Redis killed -9 once each. `make soak` runs it at full size."""

import secrets
from pathlib import Path

import docker
import pytest

from shared.store import Store, connect
from tests.docker.conftest import IMAGE
from tests.e2e.soak import SoakPlan, checks, run_soak
from tests.e2e.soak.__main__ import table
from tests.e2e.soak.chaos import Kill
from tests.e2e.soak.checks import Figures
from tests.store_support import assign, register, submit
from worker_agent.executors.docker import LABEL_WORKER


@pytest.mark.e2e  # its processes are the soak's own, not the cluster fixture's
@pytest.mark.usefixtures("redis_server_binary")
def test_every_job_ends_once_and_nothing_is_left_behind(docker_image: str, tmp_path: Path) -> None:
    plan = SoakPlan(jobs=120, agents=3, submit_rate=4.0)
    figures = run_soak(plan, tmp_path)
    print(table(figures))
    assert figures.violations == []
    assert figures.jobs == plan.jobs
    assert sum(figures.ends.values()) == plan.jobs
    assert figures.kills["api"] == figures.kills["scheduler"] == figures.kills["redis"] == 1
    assert figures.kills["agent"] >= 1
    assert figures.requeues.get("lost", 0) >= 1
    timed = figures.kill_to_requeue_s
    assert timed["timed_kills"] >= 1 and timed["max"] <= plan.worker_timeout_s + 2
    assert figures.containers_left == figures.containers_left_running == 0


def test_the_checks_see_a_stuck_job_its_reservation_and_a_leftover_container(
    redis_url: str, docker_client: docker.DockerClient, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The soak's checks are not blind: a job stuck RUNNING on a worker, the worker's
    reservation and a container labelled with its id are each reported."""
    monkeypatch.setattr(checks, "CONTAINERS_TIMEOUT_S", 0.0)
    client = connect(redis_url)
    client.flushdb()
    store = Store(client, "soak-checks:")
    worker_id = f"soak-checks-{secrets.token_hex(4)}"
    register(store, worker_id)
    submit(store, "j1")
    assign(store, "j1", worker_id)
    store.jobs.start("j1", worker_id, 1)
    container = docker_client.containers.create(
        IMAGE, ["true"], labels={LABEL_WORKER: worker_id}, network_mode="none"
    )
    try:
        figures = Figures()
        kill = Kill("agent", "worker0", 0.0, 1.0, worker_id, 1)
        checks.measure(store, {0: "j1"}, [kill], SoakPlan(), figures)
    finally:
        container.remove(force=True)
    found = "\n".join(figures.violations)
    assert "1 jobs not terminal: j1 (RUNNING)" in found
    assert "1 jobs without exactly one terminal transition: j1" in found
    assert f"worker {worker_id} still reserves" in found
    assert "no agent kill was followed by a requeue" in found
    assert "1 containers left, 0 running" in found
    assert figures.containers_left == 1
