"""Scorers for a fitting worker: lower is better, ties broken by worker id for stability."""

from collections.abc import Callable

from shared.resources import Resources
from shared.store.scheduling import WorkerView

Scorer = Callable[[Resources, WorkerView], float]


def _left_fraction(request: Resources, worker: WorkerView) -> float:
    """How much of the worker stays free after placing the job, averaged over CPU and memory.
    (Plain integer arithmetic: this runs for every candidate of every job.)"""
    cap, used = worker.capacity, worker.reserved
    cpu_left = cap.cpu_m - used.cpu_m - request.cpu_m
    memory_left = cap.memory_mb - used.memory_mb - request.memory_mb
    return (cpu_left / max(cap.cpu_m, 1) + memory_left / max(cap.memory_mb, 1)) / 2


def binpack(request: Resources, worker: WorkerView) -> float:
    """Best fit: the worker left tightest wins, keeping big holes for big jobs."""
    return _left_fraction(request, worker)


def spread(request: Resources, worker: WorkerView) -> float:
    """Worst fit: the worker left emptiest wins, spreading load across hosts."""
    return -_left_fraction(request, worker)


SCORERS: dict[str, Scorer] = {"binpack": binpack, "spread": spread}
