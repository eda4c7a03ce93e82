"""The one place the placement chain is assembled: `place(jobs, workers, policy)`.

Pure: it reads a snapshot and returns decisions; the loop commits them to Redis, where a
script re-checks each one.
"""

from dataclasses import dataclass, field

from scheduler.backfill import Reservation
from scheduler.feasible import could_ever_fit, matches
from scheduler.index import CapacityIndex
from scheduler.rank import SCORERS
from shared.resources import Resources
from shared.store.scheduling import QueuedJob, WorkerView

# How many request shapes known to fit nowhere are remembered within one pass.
MAX_REMEMBERED_MISSES = 64


@dataclass
class Placement:
    assignments: list[tuple[str, str]] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)
    # The pending jobs, in queue order, that some live worker could hold once it frees up.
    waiting_for_capacity: list[QueuedJob] = field(default_factory=list)


def place(
    jobs: list[QueuedJob],
    workers: list[WorkerView],
    policy: str = "binpack",
    reservation: Reservation | None = None,
    now: float = 0.0,
) -> Placement:
    """Place jobs in the order given (priority, then arrival). A job that fits nowhere now
    does not block the smaller ones behind it; it gets a reason instead. A reserved worker
    only takes jobs that will have ended before its reserved job can start."""
    score = SCORERS[policy]
    index = CapacityIndex(workers)
    reasons = PendingReasons(workers)
    misses: list[Resources] = []  # capacity only shrinks within a pass, so misses stay misses
    result = Placement()
    for job in jobs:
        if not job.constraints and any(_covers(job.request, miss) for miss in misses):
            _wait(result, reasons, job)
            continue
        excluded = None
        if reservation is not None and not reservation.admits(job, now):
            excluded = reservation.worker_id
        best = index.best(job.request, job.constraints, score, policy != "spread", excluded)
        if best is None:
            _wait(result, reasons, job)
            # A miss counts only when every worker was considered.
            if not job.constraints and excluded is None and len(misses) < MAX_REMEMBERED_MISSES:
                misses.append(job.request)
            continue
        index.take(best, job.request)
        result.assignments.append((job.id, best.id))
    return result


def _wait(result: Placement, reasons: "PendingReasons", job: QueuedJob) -> None:
    reason, could_fit = reasons.of(job)
    result.pending[job.id] = reason
    if could_fit:
        result.waiting_for_capacity.append(job)


def _covers(request: Resources, smaller: Resources) -> bool:
    """Is `request` at least `smaller` in every resource?"""
    return smaller.fits_in(request)


class PendingReasons:
    """Why jobs wait, in words a user can act on; computed once per request shape."""

    def __init__(self, workers: list[WorkerView]) -> None:
        self.workers = workers
        self._cache: dict[tuple[Resources, tuple[tuple[str, str], ...]], tuple[str, bool]] = {}

    def of(self, job: QueuedJob) -> tuple[str, bool]:
        """(reason, whether a live worker could hold the job once it frees up)"""
        key = (job.request, tuple(sorted(job.constraints.items())))
        if key not in self._cache:
            self._cache[key] = self._explain(job.request, job.constraints)
        return self._cache[key]

    def _explain(self, request: Resources, constraints: dict[str, str]) -> tuple[str, bool]:
        if not self.workers:
            return "no live worker: start one with `jobyard worker`", False
        labelled = [w for w in self.workers if matches(constraints, w)]
        if not labelled:
            wanted = ", ".join(f"{k}={v}" for k, v in sorted(constraints.items()))
            return f"no live worker has the labels {wanted}", False
        if not any(could_ever_fit(request, w) for w in labelled):
            largest = max(labelled, key=lambda w: (w.capacity.cpu_m, w.capacity.memory_mb))
            reason = (
                f"no live worker can ever hold it: largest worker has "
                f"{largest.capacity.describe()}; job needs {request.describe()}"
            )
            return reason, False
        needs = request.describe()
        return f"waiting for capacity: needs {needs}; every worker big enough is busy", True
