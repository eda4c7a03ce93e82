"""What one job's transitions cost Redis: the commands each script runs (INFO commandstats
counts those inside a script, not the EVALSHA), per job, for a submission, a placement, a
start and a result, each made one job at a time and in batches of BATCH (POST /jobs/batch,
one scheduler commit, POST /workers/{id}/updates). No peer: the figure to watch is the
count, which a change to the scripts moves exactly.
"""

from dataclasses import dataclass
from pathlib import Path

from bench.report import BenchResult, Row
from bench.servers import redis_server
from shared.config import Config
from shared.resources import Resources
from shared.store import Store, connect
from shared.store.jobs import Submission, Update

JOBS = 200
BATCH = 100
LEASE_TOKEN = "bench"
SPEC = {"image": "busybox", "command": ["true"], "timeout_s": 600, "queue_timeout_s": 600}
RESOURCES = Resources(100, 64, 0)
CONFIG = Config.from_env({})
RESULT = {"exit_code": 0, "reason": None, "error": None, "metrics": {"duration_s": 0.01}}


@dataclass(frozen=True)
class PerJob:
    submit: float
    assign: float
    start: float
    result: float


def run(quick: bool, workdir: Path) -> BenchResult:
    with redis_server(workdir / "redis") as server:
        client = connect(server.url)
        single = measure(Store(client, "one:"), batch=1)
        batched = measure(Store(client, "many:"), batch=BATCH)
        client.close()
    rows = [
        Row(
            "transitions",
            f"Redis commands per job: {name} (one job a call / {BATCH} a call)",
            f"{getattr(single, name):.1f} / {getattr(batched, name):.1f}",
        )
        for name in ("submit", "assign", "start", "result")
    ]
    return BenchResult(
        "transitions",
        {"jobs": JOBS, "batch": BATCH},
        {"single": single.__dict__, "batched": batched.__dict__},
        rows,
    )


def measure(store: Store, batch: int) -> PerJob:
    store.redis.flushdb()
    store.workers.register(
        "w1", "hash", hostname="w1", capacity=Resources(1_000_000, 10**7, 0), slots=JOBS,
        labels={}, executor="process", allows_network=False, max_workers=CONFIG.max_workers,
    )  # fmt: skip
    ids = [f"job-{n}" for n in range(JOBS)]
    slices = [ids[n : n + batch] for n in range(0, JOBS, batch)]
    costs = []
    reset(store)
    for part in slices:
        store.jobs.submit_many("bench", [Submission(i, SPEC, RESOURCES, 0) for i in part])
    costs.append(commands(store))
    assert store.scheduling.hold_lease(LEASE_TOKEN, 60)
    reset(store)
    for part in slices:
        store.scheduling.commit([(i, "w1") for i in part], CONFIG.worker_timeout_s, LEASE_TOKEN)
    costs.append(commands(store))
    for result in (None, RESULT):  # the starts, then the results
        reset(store)
        for part in slices:
            store.jobs.update_many("w1", [Update(i, 1, result) for i in part])
        costs.append(commands(store))
    return PerJob(*(cost / JOBS for cost in costs))


def reset(store: Store) -> None:
    store.redis.config_resetstat()


def commands(store: Store) -> int:
    """Commands Redis ran since the last reset, less the calls that carried the scripts and
    this INFO itself: those a script made."""
    stats = store.redis.info("commandstats")
    outside = ("cmdstat_info", "cmdstat_config", "cmdstat_evalsha", "cmdstat_eval")
    return sum(int(s["calls"]) for name, s in stats.items() if not name.startswith(outside))
