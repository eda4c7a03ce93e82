"""Checkers that judge one worker for one job: None when it fits, else why not."""

from shared.resources import Resources
from shared.store.scheduling import WorkerView


def fits_now(request: Resources, worker: WorkerView) -> str | None:
    """Does the worker have the free CPU, memory, GPUs and a job slot right now?"""
    if worker.free_slots < 1:
        return "no free job slot"
    free = worker.free
    if request.cpu_m > free.cpu_m:
        return "not enough free CPU"
    if request.memory_mb > free.memory_mb:
        return "not enough free memory"
    if request.gpus > free.gpus:
        return "not enough free GPUs"
    return None


def could_ever_fit(request: Resources, worker: WorkerView) -> bool:
    """Would the job fit the worker once everything on it has finished?"""
    return request.fits_in(worker.capacity) and worker.slots >= 1


def matches(constraints: dict[str, str], worker: WorkerView) -> bool:
    """Does the worker carry every label the job asks for, with the same value?"""
    return all(worker.labels.get(key) == value for key, value in constraints.items())
