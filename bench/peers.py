"""Scored peers for the packing benchmark: plain best fit and Nomad's binpack formula, each a
plain loop over every worker that scores each one with room and takes the best. No index,
no candidate limit; they share nothing with scheduler/."""

from collections.abc import Callable

from scheduler.placement import Placement
from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources

# (free CPU, free memory after the job, the worker's capacity) -> score; lower is better.
PeerScore = Callable[[int, int, Resources], tuple[float, ...]]


def best_fit_score(cpu_left: int, memory_left: int, capacity: Resources) -> tuple[float, ...]:
    """The classic best fit: the least free CPU left, then the least free memory."""
    return (cpu_left, memory_left)


def nomad_score(cpu_left: int, memory_left: int, capacity: Resources) -> tuple[float, ...]:
    """Nomad's ScoreFitBinPack (nomad/structs/funcs.go), negated so that lower is better:
    score = 20 - (10^free CPU share + 10^free memory share), 18 at a perfect fit."""
    free_cpu, free_memory = cpu_left / capacity.cpu_m, memory_left / capacity.memory_mb
    return (-(20 - (10**free_cpu + 10**free_memory)),)


def scored_fit(score: PeerScore) -> Callable[[list[QueuedJob], list[WorkerView]], Placement]:
    """Place jobs in order, each on the best-scoring worker with room (ties: the first)."""

    def place(jobs: list[QueuedJob], workers: list[WorkerView]) -> Placement:
        free = {w.id: (w.capacity - w.reserved, w.slots - w.used_slots) for w in workers}
        capacity = {w.id: w.capacity for w in workers}
        result = Placement()
        for job in jobs:
            need = job.request
            fitting = [
                (
                    score(room.cpu_m - need.cpu_m, room.memory_mb - need.memory_mb, capacity[wid]),
                    wid,
                )
                for wid, (room, slots) in free.items()
                if slots > 0 and need.fits_in(room)
            ]
            if not fitting:
                result.pending[job.id] = "fits nowhere"
                continue
            _, chosen = min(fitting)
            room, slots = free[chosen]
            free[chosen] = (room - need, slots - 1)
            result.assignments.append((job.id, chosen))
        return result

    return place


best_fit = scored_fit(best_fit_score)
nomad_binpack = scored_fit(nomad_score)
