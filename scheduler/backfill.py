"""Reservations for starving jobs (EASY backfill, as Slurm does it).

A job that has waited longer than JOBYARD_STARVATION_S and still fits nowhere reserves the
worker that will fit it soonest, judged by when the jobs on each worker end at the latest.
Until it starts, only jobs that will have ended by then may use that worker, so small jobs
keep flowing around it but can never push it back.
"""

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from scheduler.feasible import could_ever_fit, matches
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

Ends = Mapping[str, Sequence[tuple[float, Resources]]]


@dataclass(frozen=True)
class Reservation:
    job_id: str
    worker_id: str
    start_at: float  # when the job fits there at the latest; infinity when unknown

    def admits(self, job: QueuedJob, now: float) -> bool:
        """May this job use the reserved worker without delaying the reserved job?"""
        if job.id == self.job_id:
            return True
        return job.timeout_s is not None and now + job.timeout_s <= self.start_at


def starving(waiting: Sequence[QueuedJob], now: float, starvation_s: float) -> QueuedJob | None:
    """The first job waiting for capacity (in queue order) that has waited too long."""
    return next((job for job in waiting if job.queued_at <= now - starvation_s), None)


def reserve(job: QueuedJob, workers: Sequence[WorkerView], ends: Ends, now: float) -> Reservation:
    """Reserve the worker where the job can start soonest (ties: the lower id)."""
    options = [
        (start_time(job.request, w, ends.get(w.id, ()), now), w.id)
        for w in workers
        if matches(job.constraints, w) and could_ever_fit(job.request, w)
    ]
    start_at, worker_id = min(options)
    return Reservation(job.id, worker_id, start_at)


def start_time(
    request: Resources, worker: WorkerView, ends: Sequence[tuple[float, Resources]], now: float
) -> float:
    """When the request fits on the worker if its jobs end as late as they may."""
    free, slots = worker.free, worker.free_slots
    if request.fits_in(free) and slots > 0:
        return now
    for end, released in sorted(ends, key=lambda item: item[0]):
        free, slots = free + released, slots + 1
        if request.fits_in(free) and slots > 0:
            return max(end, now)
    return math.inf
