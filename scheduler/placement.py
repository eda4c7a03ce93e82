"""The one place the placement chain is assembled: `place(jobs, workers, policy)`.

Pure: it reads a snapshot and returns decisions; the loop commits them to Redis, where a
script re-checks each one.
"""

from dataclasses import dataclass, field, replace

from scheduler.feasible import could_ever_fit, fits_now
from scheduler.rank import SCORERS
from shared.resources import Resources
from shared.store.scheduling import QueuedJob, WorkerView


@dataclass
class Placement:
    assignments: list[tuple[str, str]] = field(default_factory=list)
    pending: dict[str, str] = field(default_factory=dict)


def place(jobs: list[QueuedJob], workers: list[WorkerView], policy: str = "binpack") -> Placement:
    """Place jobs in the order given (priority, then arrival). A job that fits nowhere now
    does not block the smaller ones behind it; it gets a reason instead."""
    score = SCORERS[policy]
    views = {worker.id: worker for worker in workers}
    result = Placement()
    for job in jobs:
        fitting = [w for w in views.values() if fits_now(job.request, w) is None]
        if not fitting:
            result.pending[job.id] = pending_reason(job.request, workers)
            continue
        best = min(fitting, key=lambda w: (score(job.request, w), w.id))
        views[best.id] = replace(
            best, reserved=best.reserved + job.request, used_slots=best.used_slots + 1
        )
        result.assignments.append((job.id, best.id))
    return result


def pending_reason(request: Resources, workers: list[WorkerView]) -> str:
    """Why the job waits, in words a user can act on."""
    if not workers:
        return "no live worker: start one with `jobyard worker`"
    if not any(could_ever_fit(request, w) for w in workers):
        largest = max(workers, key=lambda w: (w.capacity.cpu_m, w.capacity.memory_mb))
        return (
            f"no live worker can ever hold it: largest worker has "
            f"{largest.capacity.describe()}; job needs {request.describe()}"
        )
    big_enough = sum(1 for w in workers if could_ever_fit(request, w))
    return (
        f"waiting for capacity: needs {request.describe()}; "
        f"{big_enough} worker(s) big enough are busy"
    )
