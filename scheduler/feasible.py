"""Checkers that judge one worker for one job. (The fits-now check is inlined in
scheduler/index.py, whose scan must stay cheap.)"""

from shared.pool import WorkerView
from shared.resources import Resources


def could_ever_fit(request: Resources, worker: WorkerView) -> bool:
    """Would the job fit the worker once everything on it has finished?"""
    return request.fits_in(worker.capacity) and worker.slots >= 1


def matches(constraints: dict[str, str], worker: WorkerView) -> bool:
    """Does the worker carry every label the job asks for, with the same value?"""
    return all(worker.labels.get(key) == value for key, value in constraints.items())
