"""Placement throughput, end to end through the real store and a real redis-server, with
the time of each pass split into snapshot read, placement overlapped with the commits, and
pending reasons, and the CPU time the scheduler and redis-server each spent per placement;
beside it a naive first fit over the same snapshot, and Nomad's published rates.

Jobs and workers are written through the store once and saved as a Redis snapshot (not
timed); each run starts a fresh redis-server from it and times `schedule_once` passes until
one places nothing.
"""

import random
import shutil
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, cast

from bench import workload
from bench.firstfit import first_fit
from bench.report import BenchResult, Row
from bench.servers import SNAPSHOT, redis_server
from bench.stats import median, ratio
from bench.timing import TimedScheduling
from scheduler.loop import schedule_once
from scheduler.placement import Placement, place
from shared.config import Config
from shared.pool import QueuedJob, WorkerView
from shared.store import Store, connect
from shared.store.scheduling import SchedulingStore
from shared.store.tokens import token_hash

PREFIX = "jy:"
OWNER = "bench"
SPEC: dict[str, Any] = {
    "name": None,
    "image": "busybox",
    "command": ["true"],
    "env": {},
    "timeout_s": None,
    "priority": 0,
    "labels": {},
    "network": False,
}
SEED = 20240601
QUEUE_WINDOW = 10_000  # jobs per in-memory pass, as scheduler/loop.py reads per pass
HEADLINE_WORKERS = 1_000
# The snapshot is reused for minutes: seeded workers must stay live, and seeded jobs must
# not count as starving (which would depend on when the run happens); the aged-queue pass
# measures the starving case on purpose.
FRESH = {"JOBYARD_WORKER_TIMEOUT_S": str(7 * 86400), "JOBYARD_STARVATION_S": "1e9"}
AGED = {**FRESH, "JOBYARD_STARVATION_S": "0.001"}
# Nomad's published end-to-end rates (hashicorp.com/c1m, hashicorp.com/c2m).
NOMAD_C1M_PER_S = 3_750.0  # 1,000,000 containers, 5,000 hosts, 5 servers, under 5 minutes
NOMAD_C2M_PER_S = 1_500.0  # 2,000,000 containers, 6,100 hosts, 3 schedulers, 22 min 14 s
TARGET_PER_S = 35_000.0  # on a quiet machine, and TARGET_VS_ALONE of place() alone
TARGET_VS_ALONE = 0.7

Policy = Callable[[list[QueuedJob], list[WorkerView]], Placement]


@dataclass(frozen=True)
class Sizes:
    workers: tuple[int, ...]  # the scaling series; HEADLINE_WORKERS is one of them
    jobs: int
    runs: int  # at HEADLINE_WORKERS; the other counts run once
    budget_s: float  # a sweep stops after the pass that takes it past this


FULL = Sizes(workers=(100, 1_000, 10_000), jobs=100_000, runs=3, budget_s=120.0)
QUICK = Sizes(workers=(100, 1_000, 10_000), jobs=10_000, runs=1, budget_s=30.0)


@dataclass
class Sweep:
    """One run of schedule_once passes until one places nothing (or the budget is spent)."""

    placed: int = 0
    seconds: float = 0.0  # the passes that placed something
    pass_seconds: list[float] = field(default_factory=list)
    capped: bool = False
    idle_pass_s: float = 0.0  # the final pass, which placed nothing
    left_queued: int = 0
    # Wall time of the passes by phase (see PHASES).
    phases: dict[str, float] = field(default_factory=dict)
    # CPU time over the passes: the scheduler process (both threads) and redis-server.
    cpu_s: dict[str, float] = field(default_factory=dict)
    # What redis-server itself spent per command over the run (INFO commandstats).
    redis_server_s: dict[str, float] = field(default_factory=dict)
    place_placed: int = 0  # place() alone, in memory over the same snapshot and passes
    place_s: float = 0.0
    first_fit_placed: int = 0  # the peer, the same way
    first_fit_s: float = 0.0

    @property
    def rate(self) -> float:
        return self.placed / self.seconds if self.seconds else 0.0

    @property
    def place_rate(self) -> float:
        return self.place_placed / self.place_s if self.place_s else 0.0

    def cpu_us_per_placement(self, process: str) -> float:
        return self.cpu_s[process] / self.placed * 1e6 if self.placed else 0.0

    @property
    def first_fit_rate(self) -> float:
        return self.first_fit_placed / self.first_fit_s if self.first_fit_s else 0.0


def run(quick: bool, workdir: Path) -> BenchResult:
    return measure(QUICK if quick else FULL, workdir)


def measure(sizes: Sizes, workdir: Path) -> BenchResult:
    snapshots = seed_all(workdir, sizes)
    sweeps: dict[int, list[Sweep]] = {count: [] for count in sizes.workers}
    for n in range(sizes.runs):
        for count in sizes.workers:
            if n == 0 or count == HEADLINE_WORKERS:
                progress(f"placement: {count:,} workers, run {n + 1}")
                with fresh_store(workdir / f"run-{count}-{n}", snapshots[count]) as url:
                    sweeps[count].append(sweep(url, sizes))
    progress("placement: one pass with every job past JOBYARD_STARVATION_S")
    with fresh_store(workdir / "run-aged", snapshots[HEADLINE_WORKERS]) as url:
        aged_s = one_pass_seconds(url, AGED)
    return summarize(sizes, sweeps, aged_s)


# Seeding (not timed)


def seed_all(workdir: Path, sizes: Sizes) -> dict[int, Path]:
    """One snapshot per worker count, all with the same queued jobs."""
    started = time.perf_counter()
    jobs = seed_jobs(workdir, sizes.jobs)
    snapshots = {count: seed_workers(workdir, jobs, count) for count in sizes.workers}
    progress(f"placement: seeded in {time.perf_counter() - started:.0f} s")
    return snapshots


def seed_jobs(workdir: Path, count: int) -> Path:
    progress(f"placement: submitting {count:,} jobs through the store")
    requests = workload.job_requests(count, random.Random(SEED))
    with redis_server(workdir / "seed-jobs") as server:
        store = Store(connect(server.url), PREFIX)
        for n, request in enumerate(requests):
            store.jobs.submit(f"j{n:06d}", OWNER, SPEC, request, 0)
        return save(store, server.data_dir, workdir / "jobs.rdb")


def seed_workers(workdir: Path, jobs_snapshot: Path, count: int) -> Path:
    progress(f"placement: registering {count:,} workers through the store")
    views = workload.workers(count, random.Random(SEED + count))
    with redis_server(workdir / f"seed-{count}", jobs_snapshot) as server:
        store = Store(connect(server.url), PREFIX)
        for view in views:
            store.workers.register(
                view.id,
                token_hash(f"bench-{view.id}"),
                hostname=view.id,
                capacity=view.capacity,
                slots=view.slots,
                labels={},
                executor="process",
                max_workers=count,  # the bench's own pool, past any deployment's cap
            )
        return save(store, server.data_dir, workdir / f"workers-{count}.rdb")


def save(store: Store, data_dir: Path, target: Path) -> Path:
    store.redis.save()
    shutil.copyfile(data_dir / SNAPSHOT, target)
    return target


@contextmanager
def fresh_store(data_dir: Path, snapshot: Path) -> Iterator[str]:
    """A redis-server started from a snapshot in its own directory, removed afterwards."""
    try:
        with redis_server(data_dir, snapshot) as server:
            yield server.url
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


# Measuring


def sweep(url: str, sizes: Sizes) -> Sweep:
    """Time schedule_once passes until one places nothing, splitting each by phase; then
    run place() alone and the first-fit peer over the same snapshot and passes."""
    store = Store(connect(url), PREFIX)
    jobs = store.scheduling.queued_jobs(sizes.jobs)
    workers = store.scheduling.live_workers(float(FRESH["JOBYARD_WORKER_TIMEOUT_S"]))
    timed = TimedScheduling(store.scheduling)
    store.scheduling = cast(SchedulingStore, timed)
    config = Config.from_env(env=FRESH)
    result = Sweep(phases={phase: 0.0 for phase in PHASES})
    store.redis.config_resetstat()
    cpu_before = (time.process_time(), redis_cpu_seconds(store))
    while True:
        timed.reset()
        started = time.perf_counter()
        assigned = schedule_once(store, config)
        elapsed = time.perf_counter() - started
        if assigned == 0:
            result.idle_pass_s = elapsed
            break
        add_pass(result, assigned, elapsed, timed)
        if result.seconds > sizes.budget_s:
            result.capped = True
            break
    result.cpu_s = {
        "scheduler": time.process_time() - cpu_before[0],
        "redis": redis_cpu_seconds(store) - cpu_before[1],
    }
    result.left_queued = store.jobs.counts()["QUEUED"]
    result.redis_server_s = redis_command_seconds(store)
    result.place_placed, result.place_s = in_memory_sweep(place, jobs, workers)
    result.first_fit_placed, result.first_fit_s = in_memory_sweep(first_fit, jobs, workers)
    return result


# A pass: read the snapshot; place, sending each batch's commit and waiting for the reply
# to the one before (Redis commits while Python places: "wait" is what placing did not
# hide); write pending reasons. "other" is any other store call (the clock, ...).
PHASES = ("read", "place", "send", "wait", "pending", "other")


def add_pass(result: Sweep, assigned: int, elapsed: float, timed: TimedScheduling) -> None:
    result.placed += assigned
    result.seconds += elapsed
    result.pass_seconds.append(elapsed)
    for phase in PHASES:
        result.phases[phase] += timed.seconds[phase]
    # What the store calls did not take is place() and the loop's own Python.
    result.phases["place"] += elapsed - timed.store_seconds()


def redis_cpu_seconds(store: Store) -> float:
    info = store.redis.info("cpu")
    return float(info["used_cpu_user"]) + float(info["used_cpu_sys"])


def one_pass_seconds(url: str, env: dict[str, str]) -> float:
    store = Store(connect(url), PREFIX)
    started = time.perf_counter()
    schedule_once(store, Config.from_env(env=env))
    return time.perf_counter() - started


def redis_command_seconds(store: Store) -> dict[str, float]:
    stats = store.redis.info("commandstats")
    return {
        name.removeprefix("cmdstat_"): stat["usec"] / 1e6
        for name, stat in sorted(stats.items(), key=lambda item: -item[1]["usec"])
        if stat["usec"] >= 1000
    }


def in_memory_sweep(
    policy: Policy, jobs: list[QueuedJob], workers: list[WorkerView]
) -> tuple[int, float]:
    """Passes over the head of the queue until one places nothing, the workers' free
    capacity carried from pass to pass. Returns (placed, seconds inside `policy`)."""
    queue, views = list(jobs), {w.id: w for w in workers}
    requests = {job.id: job.request for job in jobs}
    placed, seconds = 0, 0.0
    while queue:
        window, pool = queue[:QUEUE_WINDOW], list(views.values())
        started = time.perf_counter()
        placement = policy(window, pool)
        seconds += time.perf_counter() - started
        if not placement.assignments:
            break
        for job_id, worker_id in placement.assignments:
            views[worker_id] = workload.reserve(views[worker_id], requests[job_id])
        done = {job_id for job_id, _ in placement.assignments}
        queue = [job for job in queue if job.id not in done]
        placed += len(placement.assignments)
    return placed, seconds


# Reporting


def summarize(sizes: Sizes, sweeps: dict[int, list[Sweep]], aged_s: float) -> BenchResult:
    per_count = {count: figures_for(runs) for count, runs in sweeps.items()}
    headline = per_count[HEADLINE_WORKERS]
    fresh_first_pass = median([s.pass_seconds[0] for s in sweeps[HEADLINE_WORKERS]])
    result = BenchResult(
        name="placement",
        sizes={**asdict(sizes), "queue_window": QUEUE_WINDOW, "seed": SEED},
        figures={
            "by_workers": {str(count): figures for count, figures in per_count.items()},
            "aged_queue_first_pass_s": aged_s,
            "fresh_queue_first_pass_s": fresh_first_pass,
            "nomad_c1m_per_s": NOMAD_C1M_PER_S,
            "nomad_c2m_per_s": NOMAD_C2M_PER_S,
            "target_per_s": TARGET_PER_S,
        },
    )
    result.rows = (
        [end_to_end_row(sizes, count, f) for count, f in per_count.items()]
        + [pure_row(count, f) for count, f in per_count.items()]
        + headline_rows(headline, aged_s, fresh_first_pass)
    )
    return result


def figures_for(sweeps: list[Sweep]) -> dict[str, Any]:
    middle = sorted(sweeps, key=lambda s: s.rate)[len(sweeps) // 2]
    total = sum(middle.phases.values()) or 1.0
    return {
        "runs_count": len(sweeps),
        "end_to_end_per_s": median([s.rate for s in sweeps]),
        "place_alone_per_s": median([s.place_rate for s in sweeps]),
        "cpu_us_per_placement": {
            process: median([s.cpu_us_per_placement(process) for s in sweeps])
            for process in ("scheduler", "redis")
        },
        "first_fit_per_s": median([s.first_fit_rate for s in sweeps]),
        "median_run_split": {phase: s / total for phase, s in middle.phases.items()},
        "median_run": asdict(middle),
        "runs": [asdict(s) for s in sweeps],
    }


def end_to_end_row(sizes: Sizes, count: int, f: dict[str, Any]) -> Row:
    run = f["median_run"]
    placed = f"{run['placed']:,} placed" + (", capped" if run["capped"] else "")
    rate = f["end_to_end_per_s"]
    return Row(
        "placement",
        f"end to end, {count:,} workers, {sizes.jobs:,} jobs ({placed}; {runs(f)})",
        f"{rate:,.0f}/s",
        f"≥ {TARGET_PER_S:,.0f}/s" if count == HEADLINE_WORKERS else "",
        f"Nomad C1M {NOMAD_C1M_PER_S:,.0f}/s",
        f"{ratio(rate, NOMAD_C1M_PER_S):.2f}x",
    )


def pure_row(count: int, f: dict[str, Any]) -> Row:
    pure, peer = f["place_alone_per_s"], f["first_fit_per_s"]
    return Row(
        "placement",
        f"placement alone (place() in memory, same passes), {count:,} workers ({runs(f)})",
        f"{pure:,.0f}/s",
        "",
        f"naive first fit {peer:,.0f}/s",
        f"{ratio(pure, peer):.2f}x",
    )


def headline_rows(f: dict[str, Any], aged_s: float, fresh_s: float) -> list[Row]:
    rate = f["end_to_end_per_s"]
    split = " / ".join(f"{phase} {share:.0%}" for phase, share in f["median_run_split"].items())
    cpu = f["cpu_us_per_placement"]
    alone = f["place_alone_per_s"]
    return [
        Row(
            "placement",
            f"end to end against place() alone, {HEADLINE_WORKERS:,} workers",
            f"{rate:,.0f}/s",
            f"≥ {TARGET_VS_ALONE:g}x",
            f"place() alone {alone:,.0f}/s",
            f"{ratio(rate, alone):.2f}x",
        ),
        Row(
            "placement",
            f"end to end, {HEADLINE_WORKERS:,} workers, vs C2M",
            f"{rate:,.0f}/s",
            "",
            f"Nomad C2M {NOMAD_C2M_PER_S:,.0f}/s",
            f"{ratio(rate, NOMAD_C2M_PER_S):.2f}x",
        ),
        Row("placement", f"time split, {HEADLINE_WORKERS:,} workers", split),
        Row(
            "placement",
            f"CPU per placement, scheduler / redis-server, {HEADLINE_WORKERS:,} workers",
            f"{cpu['scheduler']:.0f} / {cpu['redis']:.0f} µs",
        ),
        Row(
            "placement",
            f"first pass, every job past JOBYARD_STARVATION_S, {HEADLINE_WORKERS:,} workers",
            f"{aged_s:.1f} s",
            "",
            f"fresh queue {fresh_s:.1f} s",
            f"{ratio(aged_s, fresh_s):.1f}x",
        ),
    ]


def runs(f: dict[str, Any]) -> str:
    count = f["runs_count"]
    return f"median of {count}" if count > 1 else "one run"


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
