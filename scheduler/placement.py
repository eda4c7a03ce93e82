"""The one place the placement chain is assembled: `place(jobs, workers, policy)`.

Pure: it reads a snapshot and returns decisions; the loop commits them to Redis, where a
script re-checks each one.
"""

from dataclasses import dataclass, field

from scheduler.backfill import Reservation
from scheduler.feasible import CHECKS, NotReserved, first_refusal, is_big_enough, nearest_refusal
from scheduler.index import CapacityIndex
from scheduler.rank import scorer
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

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
    """Place jobs in the order given (priority, then arrival): see Placer."""
    placer = Placer(workers, policy, reservation, now)
    for job in jobs:
        placer.place(job)
    return placer.result


class Placer:
    """Places jobs one at a time, in the order given (priority, then arrival), over the
    workers' free capacity as it shrinks. A job that fits nowhere now does not block the
    smaller ones behind it; it gets a reason instead. A reserved worker only takes jobs that
    will have ended before its reserved job can start. The loop commits its decisions while
    it places the next ones, and corrects the view with give_back() and drop() when Redis
    refuses one."""

    def __init__(
        self,
        workers: list[WorkerView],
        policy: str = "binpack",
        reservation: Reservation | None = None,
        now: float = 0.0,
    ) -> None:
        self.result = Placement()
        self._policy = policy
        self._tightest_first = policy != "spread"
        self._reservation = reservation
        self._now = now
        self._index = CapacityIndex(workers)
        self._reasons = PendingReasons(self._index, reservation, now)
        # Request shapes that fitted nowhere: while capacity only shrinks, they still don't.
        self._misses: list[Resources] = []

    def place(self, job: QueuedJob) -> str | None:
        """The id of the worker the job goes to (its capacity is now taken), or None."""
        misses = self._misses
        reservation, excluded = self._reservation, None
        if reservation is not None and not reservation.admits(job, self._now):
            excluded = reservation.worker_id
        # A miss is remembered only for jobs any worker may take (no labels, no network).
        unrestricted = not job.constraints and not job.network
        if misses and unrestricted and any(_covers(job.request, m) for m in misses):
            self._wait(job, excluded is None)
            return None
        best = self._index.best(
            job.request,
            job.constraints,
            scorer(self._policy, job.request, job.cpu_only),
            self._tightest_first,
            excluded,
            job.network,
        )
        if best is None:
            self._wait(job, excluded is None)
            # A miss counts only when every worker was considered.
            if unrestricted and excluded is None and len(misses) < MAX_REMEMBERED_MISSES:
                misses.append(job.request)
            return None
        self._index.take(best, job.request)
        self.result.assignments.append((job.id, best))
        return best

    def give_back(self, request: Resources, worker_id: str) -> None:
        """A placement Redis refused because its job had left the queue: free its capacity."""
        self._index.give_back(worker_id, request)
        self._misses.clear()  # capacity grew: a shape that missed may fit now

    def drop(self, worker_id: str) -> None:
        """A worker Redis refused placements on (gone, silent, or fuller than we saw)."""
        self._index.drop(worker_id)

    def _wait(self, job: QueuedJob, admitted: bool) -> None:
        reason, could_fit = self._reasons.of(job, admitted)
        self.result.pending[job.id] = reason
        if could_fit:
            self.result.waiting_for_capacity.append(job)


def _covers(request: Resources, smaller: Resources) -> bool:
    """Is `request` at least `smaller` in every resource?"""
    return smaller.fits_in(request)


NO_WORKER = "no live worker: start one with `jobyard worker`"
# (request, constraints, network, whether the reservation admits the job to its worker)
ReasonKey = tuple[Resources, tuple[tuple[str, str], ...], bool, bool]


class PendingReasons:
    """Why jobs wait, in words a user can act on: the refusal of the worker that got
    furthest down the checks (scheduler/feasible.py), the reservation's last. Judged when the
    first job of a request shape waits, once per shape in a pass."""

    def __init__(self, index: CapacityIndex, reservation: Reservation | None, now: float):
        self._index = index
        self._reservation = None if reservation is None else NotReserved(reservation, now)
        self._cache: dict[ReasonKey, tuple[str, bool]] = {}

    def of(self, job: QueuedJob, admitted: bool) -> tuple[str, bool]:
        """(reason, whether a live worker could hold the job once it frees up), for a job the
        reservation `admitted` to its worker or not."""
        key = (job.request, tuple(sorted(job.constraints.items())), job.network, admitted)
        if key not in self._cache:
            self._cache[key] = self._explain(job, admitted)
        return self._cache[key]

    def _explain(self, job: QueuedJob, admitted: bool) -> tuple[str, bool]:
        held = self._reservation
        if held is not None and not admitted:
            # The reservation refuses one worker only, so that one is judged by it alone.
            reserved = self._index.view(held.reservation.worker_id)
            refusal = None if reserved is None else first_refusal(job, reserved, (*CHECKS, held))
            if refusal is not None and refusal[0] == len(CHECKS):
                return refusal[1], True
        refusal = nearest_refusal(job, self._index.views(), CHECKS)
        if refusal is None:  # no worker: one that passed every check would have taken the job
            return NO_WORKER, False
        position, reason = refusal
        return reason, position > CHECKS.index(is_big_enough)
