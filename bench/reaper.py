"""The reaper's cost per pass on a real redis-server, at 100 and 10,000 running jobs: wall
time and the commands Redis ran (those inside scripts included), median of several passes.
The peer is the scan the reaper made before its clocks were sorted sets, run in the same
process on the same data: every ASSIGNED and RUNNING job's hash read on every pass.

The jobs run on one worker with room for all, each with a timeout far away, so a pass finds
nothing to move: the steady state, which a reaper pays once a second.
"""

import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, cast

from bench.report import BenchResult, Row
from bench.servers import redis_server
from bench.stats import median, ratio
from scheduler.reaper import reap_once
from shared.config import Config
from shared.resources import Resources
from shared.states import JobState
from shared.store import Store, connect
from shared.store.reaping import Overdue
from shared.store.scheduling import SchedulingStore

PREFIX = "jy:"
LEASE_TOKEN = "bench"
SPEC: dict[str, Any] = {"image": "busybox", "command": ["true"], "timeout_s": 86400}
# Seeding takes a while at 10,000 jobs: the worker must not fall silent meanwhile.
CONFIG = Config.from_env({}, worker_timeout_s=7 * 86400.0)
SEED_BATCH = 500


@dataclass(frozen=True)
class Sizes:
    running: tuple[int, ...]
    passes: int


FULL = Sizes(running=(100, 10_000), passes=15)
QUICK = Sizes(running=(100, 10_000), passes=3)


@dataclass(frozen=True)
class Cost:
    """One way of reaping at one size: medians over the passes."""

    wall_ms: float
    commands: float


class FullScan:
    """store.scheduling with the reaper's clock queries as they were: the ASSIGNED and
    RUNNING indexes read whole, and every job's hash after them, on every pass."""

    def __init__(self, real: SchedulingStore) -> None:
        self._real = real

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)

    def stale_assignments(self, assign_timeout_s: float) -> list[Overdue]:
        return self._scan(JobState.ASSIGNED, "assigned_at", assign_timeout_s, 0.0)

    def overdue_runs(self, grace_s: float) -> list[Overdue]:
        return self._scan(JobState.RUNNING, "started_at", None, grace_s)

    def _scan(
        self, state: JobState, since_field: str, allowed_s: float | None, grace_s: float
    ) -> list[Overdue]:
        real = self._real
        ids = real.redis.zrange(real.keys.state(state), 0, -1)
        pipe = real.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(real.keys.job(job_id), since_field, "worker_id", "attempt", "timeout_s")
        now = real.clock()
        found = []
        for job_id, (since, worker_id, attempt, timeout) in zip(ids, pipe.execute(), strict=True):
            allowance = (
                allowed_s if allowed_s is not None else (float(timeout) if timeout else None)
            )
            if allowance is None or not since or not worker_id:
                continue
            if float(since) + allowance + grace_s < now:
                found.append((job_id, worker_id, int(attempt)))
        return found


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    costs: dict[int, dict[str, Cost]] = {}
    with redis_server(workdir / "redis") as server:
        client = connect(server.url)
        store = Store(client, PREFIX)
        for count in sizes.running:
            progress(f"reaper: seeding {count:,} running jobs")
            seed(store, count)
            costs[count] = {
                "clocks": measure(store, sizes.passes),
                "full_scan": measure(with_full_scan(store), sizes.passes),
            }
            client.flushdb()
        client.close()
    result = BenchResult(
        name="reaper",
        sizes=asdict(sizes),
        figures={
            str(count): {way: asdict(cost) for way, cost in ways.items()}
            for count, ways in costs.items()
        },
    )
    result.rows = rows(costs, sizes.passes)
    return result


def seed(store: Store, count: int) -> None:
    """`count` jobs RUNNING on one worker with room for all of them."""
    store.workers.register(
        "w1",
        "bench-worker",
        hostname="bench",
        capacity=Resources(count * 10, count * 10, 0),
        slots=count,
        labels={},
        executor="process",
        max_workers=1,
    )
    job_ids = [f"j{n:06d}" for n in range(count)]
    for job_id in job_ids:
        store.jobs.submit(job_id, "bench", SPEC, Resources(1, 1, 0), 0)
    assert store.scheduling.hold_lease(LEASE_TOKEN, 600)
    for start in range(0, count, SEED_BATCH):
        batch = [(job_id, "w1") for job_id in job_ids[start : start + SEED_BATCH]]
        store.scheduling.commit(batch, CONFIG.worker_timeout_s, LEASE_TOKEN)
    for job_id in job_ids:
        store.jobs.start(job_id, "w1", 1)
    assert store.jobs.counts()[JobState.RUNNING.value] == count


def with_full_scan(store: Store) -> Store:
    """The same store, reaping as before: another Store object over the same client."""
    old = Store(store.redis, PREFIX)
    old.scheduling = cast(SchedulingStore, FullScan(old.scheduling))
    return old


def measure(store: Store, passes: int) -> Cost:
    """Median wall time and Redis commands of `passes` reaper passes."""
    walls, commands = [], []
    for _ in range(passes):
        store.redis.config_resetstat()
        began = time.perf_counter()
        reap_once(store, CONFIG)
        walls.append((time.perf_counter() - began) * 1000)
        commands.append(commands_run(store))
    return Cost(median(walls), median(commands))


def commands_run(store: Store) -> int:
    """Commands Redis ran since the last CONFIG RESETSTAT, not counting this INFO."""
    stats = store.redis.info("commandstats")
    return sum(
        int(stat["calls"])
        for name, stat in stats.items()
        if not name.startswith(("cmdstat_info", "cmdstat_config"))
    )


def rows(costs: dict[int, dict[str, Cost]], passes: int) -> list[Row]:
    lines = []
    for count, ways in costs.items():
        new, old = ways["clocks"], ways["full_scan"]
        measure = f"reaper pass at {count:,} running jobs (median of {passes})"
        lines += [
            Row(
                "reaper",
                f"{measure}: wall time",
                f"{new.wall_ms:.2f} ms",
                "",
                f"full scan {old.wall_ms:.2f} ms",
                f"{ratio(new.wall_ms, old.wall_ms):.3g}x",
            ),
            Row(
                "reaper",
                f"{measure}: Redis commands",
                f"{new.commands:.0f}",
                "",
                f"full scan {old.commands:.0f}",
                f"{ratio(new.commands, old.commands):.3g}x",
            ),
        ]
    return lines


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
