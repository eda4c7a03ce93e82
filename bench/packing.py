"""Packing quality: a seeded random heterogeneous workload placed, in arrival order, until
the first job fits nowhere; jobs placed as a fraction of the fractional bound (total
capacity over mean demand, per resource, the minimum over CPU and memory), for binpack and
spread beside three peers: a trivial first fit, plain best fit and Nomad's binpack formula.
Fragmentation: the largest job that still fits on some worker when each run stops. Pure:
`place()` over an in-memory snapshot, no Redis.
"""

import random
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace

from bench import workload
from bench.firstfit import first_fit
from bench.peers import best_fit, nomad_binpack
from bench.report import BenchResult, Row
from bench.stats import median
from scheduler.placement import Placement, place
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

CHUNK = 256  # jobs handed to a policy at once; the pool's state carries over between chunks
UNLIMITED_SLOTS = 1 << 30  # the bound counts CPU and memory only, so slots never bind here
SEED = 7
TARGET = 0.97
# Every policy places this share of the bound before its first miss, so the holes they
# leave can be compared at the same fill too.
COMMON_FILL = 0.85

Policy = Callable[[list[QueuedJob], list[WorkerView]], Placement]
POLICIES: dict[str, Policy] = {
    "binpack": lambda jobs, workers: place(jobs, workers, "binpack"),
    "spread": lambda jobs, workers: place(jobs, workers, "spread"),
    "first-fit": first_fit,
    "best-fit": best_fit,
    "nomad": nomad_binpack,
}
PEER = "first-fit"
NAMES = {
    "binpack": "binpack",
    "spread": "spread",
    "first-fit": "first fit",
    "best-fit": "plain best fit (least CPU left, then least memory)",
    "nomad": "Nomad's ScoreFitBinPack (20 - 10^free CPU - 10^free memory)",
}
# The smallest job in the other resource, for the largest CPU and memory still placeable.
SMALLEST_CPU_M = round(1000 * min(cores for cores, _ in workload.JOB_CPU))


@dataclass(frozen=True)
class Sizes:
    workers: int
    seeds: int


FULL = Sizes(workers=100, seeds=5)
QUICK = Sizes(workers=50, seeds=2)


@dataclass(frozen=True)
class Stop:
    """Where a policy stopped: jobs placed, the job that fit nowhere, the share of the
    pool's CPU and memory in use at that moment, and the largest job still placeable then
    and at COMMON_FILL: the most CPU (with the smallest memory a job asks) and the most
    memory (with the smallest CPU) free on one worker."""

    placed: int
    missed: str
    cpu_used: float
    memory_used: float
    largest_cpu_m: int
    largest_memory_mb: int
    common_fill_largest_cpu_m: int
    common_fill_largest_memory_mb: int


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
    print(f"\nPacking, {sizes.workers} workers, medians of {len(trials)} seeds:\n")
    print(side_by_side(trials, fractions))
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
    bound = min(bound_cpu, bound_mem)
    common = int(COMMON_FILL * bound)
    stops = {
        name: run_until_first_miss(policy, jobs, pool, common) for name, policy in POLICIES.items()
    }
    return Trial(seed, bound, bound_cpu, bound_mem, stops)


def run_until_first_miss(
    policy: Policy, jobs: list[QueuedJob], pool: list[WorkerView], common: int
) -> Stop:
    """Feed the policy the jobs in order, in chunks, until the first that fits nowhere;
    note the largest job still placeable once `common` jobs are placed."""
    views = {w.id: w for w in pool}
    requests = {job.id: job.request for job in jobs}
    at_common = (0, 0)
    for start in range(0, len(jobs), CHUNK):
        chunk = jobs[start : start + CHUNK]
        placement = policy(chunk, list(views.values()))
        missed = next((n for n, job in enumerate(chunk) if job.id in placement.pending), None)
        before_miss = {job.id: start + n for n, job in enumerate(chunk[:missed])}
        for job_id, worker_id in placement.assignments:
            if job_id in before_miss:
                if before_miss[job_id] == common:
                    at_common = largest_placeable(list(views.values()))
                views[worker_id] = workload.reserve(views[worker_id], requests[job_id])
        if missed is not None:
            return stop(start + missed, chunk[missed].request, list(views.values()), at_common)
    return stop(len(jobs), Resources(0, 0, 0), list(views.values()), at_common)


def stop(
    placed: int, missed: Resources, views: list[WorkerView], at_common: tuple[int, int]
) -> Stop:
    capacity = sum((w.capacity for w in views), Resources(0, 0, 0))
    used = sum((w.reserved for w in views), Resources(0, 0, 0))
    return Stop(
        placed,
        missed.describe(),
        used.cpu_m / capacity.cpu_m,
        used.memory_mb / capacity.memory_mb,
        *largest_placeable(views),
        *at_common,
    )


def largest_placeable(views: list[WorkerView]) -> tuple[int, int]:
    """(the most CPU, the most memory) a job could ask and still fit on some worker."""
    free = [w.free for w in views if w.free_slots > 0]
    return (
        max((f.cpu_m for f in free if f.memory_mb >= workload.MIN_JOB_MEMORY_MB), default=0),
        max((f.memory_mb for f in free if f.cpu_m >= SMALLEST_CPU_M), default=0),
    )


def rows(sizes: Sizes, trials: list[Trial], fractions: dict[str, float]) -> list[Row]:
    peer = fractions[PEER]
    return [
        Row(
            "packing",
            f"{NAMES[policy]}, {sizes.workers} workers, until the first miss "
            f"({in_use(trials, policy)} in use then; largest job still fitting "
            f"{largest(trials, policy)}; median of {len(trials)} seeds)",
            f"{share:.1%} of bound",
            f"≥ {TARGET:.0%}" if policy == "binpack" else "",
            f"first fit {peer:.1%}",
            f"{share / peer:.3f}x",
        )
        for policy, share in fractions.items()
        if policy != PEER
    ]


def side_by_side(trials: list[Trial], fractions: dict[str, float]) -> str:
    """Every policy on one line each: what it placed, what was in use, what still fit."""
    lines = [
        "| Policy | Placed (of bound) | CPU in use | Memory in use | Largest job still fitting"
        f" | The same at {COMMON_FILL:.0%} of bound |",
        "|---|---|---|---|---|---|",
    ]
    for policy, share in sorted(fractions.items(), key=lambda item: -item[1]):
        stops = [t.stops[policy] for t in trials]
        lines.append(
            f"| {NAMES[policy]} | {share:.1%} | {median([s.cpu_used for s in stops]):.1%} "
            f"| {median([s.memory_used for s in stops]):.1%} "
            f"| {largest(trials, policy)} | {largest(trials, policy, at_common_fill=True)} |"
        )
    return "\n".join(lines)


def in_use(trials: list[Trial], policy: str) -> str:
    cpu = median([t.stops[policy].cpu_used for t in trials])
    memory = median([t.stops[policy].memory_used for t in trials])
    return f"CPU {cpu:.0%}, memory {memory:.0%}"


def largest(trials: list[Trial], policy: str, at_common_fill: bool = False) -> str:
    stops = [t.stops[policy] for t in trials]
    if at_common_fill:
        cpu_m = [s.common_fill_largest_cpu_m for s in stops]
        memory_mb = [s.common_fill_largest_memory_mb for s in stops]
    else:
        cpu_m, memory_mb = [s.largest_cpu_m for s in stops], [s.largest_memory_mb for s in stops]
    return f"{median(cpu_m) / 1000:g} CPU or {median(memory_mb) / workload.GIB:.1f} GiB"
