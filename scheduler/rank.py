"""Scorers for a fitting worker: lower is better, ties broken by worker id for stability."""

from collections.abc import Callable

from shared.resources import Resources
from shared.store.scheduling import WorkerView

Scorer = Callable[[Resources, WorkerView], float]


def _left_fraction(request: Resources, worker: WorkerView) -> float:
    """How much of the worker stays free after placing the job, averaged over CPU and memory."""
    free = worker.free - request
    cap = worker.capacity
    return (free.cpu_m / max(cap.cpu_m, 1) + free.memory_mb / max(cap.memory_mb, 1)) / 2


def binpack(request: Resources, worker: WorkerView) -> float:
    """Best fit: the worker left tightest wins, keeping big holes for big jobs."""
    return _left_fraction(request, worker)


def spread(request: Resources, worker: WorkerView) -> float:
    """Worst fit: the worker left emptiest wins, spreading load across hosts."""
    return -_left_fraction(request, worker)


SCORERS: dict[str, Scorer] = {"binpack": binpack, "spread": spread}
