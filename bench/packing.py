"""Packing quality: a seeded random heterogeneous workload placed, in arrival order, until
the first job fits nowhere; jobs placed as a fraction of the fractional bound (total
capacity over mean demand, per resource, the minimum over CPU and memory), for binpack,
spread and a trivial first fit. Pure: `place()` over an in-memory snapshot, no Redis.
"""

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from bench import workload
from bench.firstfit import first_fit
from bench.report import BenchResult, Row
from bench.stats import median
from scheduler.placement import Placement, place
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

CHUNK = 256  # jobs handed to a policy at once; the pool's state carries over between chunks
UNLIMITED_SLOTS = 1 << 30  # the bound counts CPU and memory only, so slots never bind here
SEED = 7
TARGET = 0.97

Policy = Callable[[list[QueuedJob], list[WorkerView]], Placement]
POLICIES: dict[str, Policy] = {
    "binpack": lambda jobs, workers: place(jobs, workers, "binpack"),
    "spread": lambda jobs, workers: place(jobs, workers, "spread"),
    "first-fit": first_fit,
}


@dataclass(frozen=True)
class Sizes:
    workers: int
    seeds: int


FULL = Sizes(workers=100, seeds=5)
QUICK = Sizes(workers=50, seeds=2)


@dataclass(frozen=True)
class Stop:
    """Where a policy stopped: jobs placed, the job that fit nowhere, and the share of the
    pool's CPU and memory in use at that moment."""

    placed: int
    missed: str
    cpu_used: float
    memory_used: float


@dataclass(frozen=True)
class Trial:
    seed: int
    bound: float
    bound_cpu: float
    bound_memory: float
    stops: dict[str, Stop]

    def fraction(self, policy: str) -> float:
        return self.stops[policy].placed / self.bound


def run(quick: bool) -> BenchResult:
    sizes = QUICK if quick else FULL
    trials = [trial(SEED + n, sizes.workers) for n in range(sizes.seeds)]
    fractions = {p: median([t.fraction(p) for t in trials]) for p in POLICIES}
    result = BenchResult(
        name="packing",
        sizes={**asdict(sizes), "first_seed": SEED, "chunk": CHUNK},
        figures={"median_fraction_of_bound": fractions, "trials": [asdict(t) for t in trials]},
    )
    result.rows = rows(sizes, trials, fractions)
    return result


def trial(seed: int, worker_count: int) -> Trial:
    rng = random.Random(seed)
    pool = [replace(w, slots=UNLIMITED_SLOTS) for w in workload.workers(worker_count, rng)]
    capacity = sum((w.capacity for w in pool), Resources(0, 0, 0))
    # Twice the CPU bound at the workload's mean demand: enough that every policy stops.
    mean_cpu_m = 1000 * sum(c * w for c, w in workload.JOB_CPU)
    requests = workload.job_requests(int(2 * capacity.cpu_m / mean_cpu_m), rng)
    jobs = [QueuedJob(f"j{n:06d}", r, 0, None) for n, r in enumerate(requests)]
    bound_cpu = capacity.cpu_m / (sum(r.cpu_m for r in requests) / len(requests))
    bound_mem = capacity.memory_mb / (sum(r.memory_mb for r in requests) / len(requests))
    stops = {name: run_until_first_miss(policy, jobs, pool) for name, policy in POLICIES.items()}
    return Trial(seed, min(bound_cpu, bound_mem), bound_cpu, bound_mem, stops)


def run_until_first_miss(policy: Policy, jobs: list[QueuedJob], pool: list[WorkerView]) -> Stop:
    """Feed the policy the jobs in order, in chunks, until the first that fits nowhere."""
    views = {w.id: w for w in pool}
    requests = {job.id: job.request for job in jobs}
    for start in range(0, len(jobs), CHUNK):
        chunk = jobs[start : start + CHUNK]
        placement = policy(chunk, list(views.values()))
        missed = next((n for n, job in enumerate(chunk) if job.id in placement.pending), None)
        before_miss = {job.id for job in chunk[:missed]}
        for job_id, worker_id in placement.assignments:
            if job_id in before_miss:
                views[worker_id] = workload.reserve(views[worker_id], requests[job_id])
        if missed is not None:
            return stop(start + missed, chunk[missed].request, list(views.values()))
    return stop(len(jobs), Resources(0, 0, 0), list(views.values()))


def stop(placed: int, missed: Resources, views: list[WorkerView]) -> Stop:
    capacity = sum((w.capacity for w in views), Resources(0, 0, 0))
    used = sum((w.reserved for w in views), Resources(0, 0, 0))
    return Stop(
        placed,
        missed.describe(),
        used.cpu_m / capacity.cpu_m,
        used.memory_mb / capacity.memory_mb,
    )


def rows(sizes: Sizes, trials: list[Trial], fractions: dict[str, float]) -> list[Row]:
    ff = fractions["first-fit"]
    return [
        Row(
            "packing",
            f"{policy}, {sizes.workers} workers, until the first miss "
            f"(CPU {in_use(trials, policy)} in use then; median of {len(trials)} seeds)",
            f"{share:.1%} of bound",
            f"≥ {TARGET:.0%}" if policy == "binpack" else "",
            f"first fit {ff:.1%}",
            f"{share / ff:.3f}x",
        )
        for policy, share in fractions.items()
        if policy != "first-fit"
    ]


def in_use(trials: list[Trial], policy: str) -> str:
    cpu = median([t.stops[policy].cpu_used for t in trials])
    memory = median([t.stops[policy].memory_used for t in trials])
    return f"{cpu:.0%}, memory {memory:.0%}"
