"""Checkers that judge one worker for one job: each returns None (the worker may take it)
or, in words a user can act on, why not. CHECKS runs them from the most lasting refusal to
the most passing one, and a job that waits is told the refusal of the worker that got
furthest down them (see nearest_refusal). The capacity index inlines network, labels and
fits-now in its scan, which must stay cheap; tests/unit/test_placement.py holds the two equal."""

import math
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

if TYPE_CHECKING:  # backfill.py imports this module
    from scheduler.backfill import Reservation

Check = Callable[[QueuedJob, WorkerView], str | None]

DAY_S = 86400.0


def could_ever_fit(request: Resources, worker: WorkerView) -> bool:
    """Would the job fit the worker once everything on it has finished?"""
    return request.fits_in(worker.capacity) and worker.slots >= 1


def matches(constraints: dict[str, str], worker: WorkerView) -> bool:
    """Does the worker carry every label the job asks for, with the same value?"""
    return all(worker.labels.get(key) == value for key, value in constraints.items())


def network_ok(network: bool, worker: WorkerView) -> bool:
    """A job that asks for a network goes only to an agent that lets jobs have one."""
    return not network or worker.allows_network


def allows_network(job: QueuedJob, worker: WorkerView) -> str | None:
    if network_ok(job.network, worker):
        return None
    return "needs a worker that allows network (JOBYARD_ALLOW_NETWORK); no live worker does"


def has_labels(job: QueuedJob, worker: WorkerView) -> str | None:
    if matches(job.constraints, worker):
        return None
    wanted = ", ".join(f"{k}={v}" for k, v in sorted(job.constraints.items()))
    return f"no live worker has the labels {wanted}"


def is_big_enough(job: QueuedJob, worker: WorkerView) -> str | None:
    """Said of the largest worker that refuses (see nearest_refusal)."""
    if could_ever_fit(job.request, worker):
        return None
    return (
        f"no live worker can ever hold it: largest worker has "
        f"{worker.capacity.describe()}; job needs {job.request.describe()}"
    )


def has_room(job: QueuedJob, worker: WorkerView) -> str | None:
    """Free CPU, memory and GPUs cover the job, and a job slot is free."""
    if job.request.fits_in(worker.free) and worker.free_slots > 0:
        return None
    return f"waiting for capacity: needs {job.request.describe()}; every worker big enough is busy"


@dataclass(frozen=True)
class NotReserved:
    """Refuses the worker an EASY reservation holds to every job that could delay the
    reserved one (scheduler/backfill.py)."""

    reservation: "Reservation"
    now: float

    def __call__(self, job: QueuedJob, worker: WorkerView) -> str | None:
        held = self.reservation
        if worker.id != held.worker_id or held.admits(job, self.now):
            return None
        reserved = f"worker {held.worker_id} is reserved for job {held.job_id}"
        if math.isinf(held.start_at):
            return (
                f"{reserved} until it starts (the jobs on it have no timeout_s): only a job "
                "with a timeout_s may use it meanwhile"
            )
        return (
            f"{reserved} until about {clock_time(held.start_at, self.now)}: only a job whose "
            "timeout_s ends by then may use it meanwhile"
        )


def clock_time(at: float, now: float) -> str:
    """'14:05:10 UTC', with the date when it is a day or more away."""
    moment = datetime.fromtimestamp(at, UTC)
    return moment.strftime("%Y-%m-%d %H:%M:%S UTC" if at - now >= DAY_S else "%H:%M:%S UTC")


# From the most lasting refusal to the most passing one; a reservation comes last.
CHECKS: tuple[Check, ...] = (allows_network, has_labels, is_big_enough, has_room)


def first_refusal(
    job: QueuedJob, worker: WorkerView, checks: Sequence[Check]
) -> tuple[int, str] | None:
    """(position, reason) of the first check that refuses the worker, or None."""
    for position, check in enumerate(checks):
        reason = check(job, worker)
        if reason is not None:
            return position, reason
    return None


def nearest_refusal(
    job: QueuedJob, workers: Iterable[WorkerView], checks: Sequence[Check]
) -> tuple[int, str] | None:
    """(position, reason) of the refusal of the worker that got furthest down the checks,
    said of the largest such worker; None if some worker passes them all, or if there is
    no worker. The scan ends at a refusal by the last check, as no worker gets further
    (the last check's reason does not depend on the worker)."""
    last = len(checks) - 1
    nearest: tuple[int, tuple[int, int], str] | None = None
    for worker in workers:
        refusal = first_refusal(job, worker, checks)
        if refusal is None:
            return None
        position, reason = refusal
        size = (worker.capacity.cpu_m, worker.capacity.memory_mb)
        if nearest is None or (position, size) > nearest[:2]:
            nearest = (position, size, reason)
        if position == last:
            break
    return None if nearest is None else (nearest[0], nearest[2])
