"""run_soak(): a durable redis-server, the api, a scheduler and agents as real processes,
the submitter and the chaos together, then the checks."""

import time
from contextlib import closing
from pathlib import Path

import docker

from shared.states import TERMINAL_STATES
from shared.store import Store, connect
from tests.e2e.cluster import ADMIN_TOKEN, Cluster, DurableRedis, remove_leftover_containers
from tests.e2e.soak.chaos import Chaos
from tests.e2e.soak.checks import Figures, measure
from tests.e2e.soak.plan import SoakPlan
from tests.e2e.soak.submitter import Submitter

IMAGE = "jobyard/busybox:latest"
PREFIX = "soak:"
POLL_S = 0.5


def run_soak(plan: SoakPlan, workdir: Path) -> Figures:
    """Run the soak in `workdir` (data, state dirs and every process's log); the figures
    list each invariant that did not hold in `violations`."""
    redis_server = DurableRedis(workdir / "redis")
    redis_server.start()
    cluster = Cluster(
        redis_server.url,
        workdir,
        {
            "JOBYARD_EXECUTOR": "docker",
            "JOBYARD_DEFAULT_IMAGE": IMAGE,
            "JOBYARD_REDIS_PREFIX": PREFIX,
            "JOBYARD_HEARTBEAT_S": str(plan.heartbeat_s),
            "JOBYARD_WORKER_TIMEOUT_S": str(plan.worker_timeout_s),
            "JOBYARD_MAX_REQUEUES": str(plan.max_requeues),
            "JOBYARD_API_PROCESSES": "2",  # the default, as deployed (tests use 1)
        },
    )
    started = time.monotonic()
    try:
        cluster.start_all(
            workers=plan.agents,
            JOBYARD_WORKER_CPU="2",
            JOBYARD_WORKER_MEMORY_MB="1024",
            JOBYARD_MAX_PARALLEL_JOBS=str(plan.slots),
        )
        store = Store(connect(redis_server.url), PREFIX)
        submitter = Submitter(cluster.api_url, ADMIN_TOKEN, plan.jobs, plan.submit_rate)
        chaos = Chaos(cluster, redis_server, store, plan)
        submitter.start()
        try:
            chaos.run(keep_going=lambda: not submitter.done())
        finally:
            submitter.stop()
        figures = Figures(jobs=len(submitter.ids), refused_submissions=submitter.refused)
        wait_terminal(store, len(submitter.ids), plan.stall_s)
        measure(store, submitter.ids, chaos.kills, plan, figures)
        figures.duration_s = round(time.monotonic() - started, 1)
        return figures
    finally:
        cluster.stop()
        redis_server.stop()
        # measure() has counted what was left; the next run must not find it.
        with closing(docker.from_env()) as client:
            remove_leftover_containers(client, cluster.worker_ids())


def wait_terminal(store: Store, jobs: int, stall_s: float) -> None:
    """Until `jobs` jobs are terminal, or none has ended for stall_s (the checks then say
    which are stuck): how long the rest takes depends on the machine, not on a clock."""
    ended, last_progress = -1, time.monotonic()
    while time.monotonic() - last_progress < stall_s:
        counts = store.jobs.counts()
        now_ended = sum(counts[state.value] for state in TERMINAL_STATES)
        if now_ended >= jobs:
            return
        if now_ended != ended:
            ended, last_progress = now_ended, time.monotonic()
        time.sleep(POLL_S)  # a wait on the counts above, ended by them or by a stall
