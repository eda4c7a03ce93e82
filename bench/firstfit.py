"""The naive peer: first fit, a plain loop over the workers in the order given, taking the
first one with room. No index, no scoring; it shares nothing with scheduler/."""

from scheduler.placement import Placement
from shared.pool import QueuedJob, WorkerView


def first_fit(jobs: list[QueuedJob], workers: list[WorkerView]) -> Placement:
    """Place jobs in order on the first worker with enough free CPU, memory, GPUs and a slot."""
    ids = [w.id for w in workers]
    cpu = [w.capacity.cpu_m - w.reserved.cpu_m for w in workers]
    mem = [w.capacity.memory_mb - w.reserved.memory_mb for w in workers]
    gpus = [w.capacity.gpus - w.reserved.gpus for w in workers]
    slots = [w.slots - w.used_slots for w in workers]
    result = Placement()
    for job in jobs:
        need = job.request
        for n in range(len(ids)):
            if (
                slots[n] > 0
                and cpu[n] >= need.cpu_m
                and mem[n] >= need.memory_mb
                and gpus[n] >= need.gpus
            ):
                cpu[n] -= need.cpu_m
                mem[n] -= need.memory_mb
                gpus[n] -= need.gpus
                slots[n] -= 1
                result.assignments.append((job.id, ids[n]))
                break
        else:
            result.pending[job.id] = "fits nowhere"
    return result
