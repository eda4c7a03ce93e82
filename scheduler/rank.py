"""Scorers for a fitting worker: lower is better, ties broken by worker id for stability.

A scorer sees what the worker would have left once the job is placed (CPU in millicores,
memory in MiB) and the worker's capacity; it runs for every candidate of every job, so it
works on plain numbers."""

from collections.abc import Callable

from shared.resources import Resources

# (CPU left, memory left, CPU capacity, memory capacity) -> score; capacities are >= 1.
Scorer = Callable[[int, int, int, int], float]

# How much what the job leaves free counts next to what it leaves stranded.
TIGHTNESS_WEIGHT = 0.025


def binpack(cpu_left: int, memory_left: int, cpu: int, memory: int) -> float:
    """Best fit, measured in CPU: the worker the job leaves with the least stranded (one
    resource left without its share of the other, memory counted at the worker's own
    ratio), then the least free. Counting in CPU rather than in shares of each worker makes
    a big hole cost more than a small one, so small jobs fill the workers already in use;
    counting the stranded part keeps CPU and memory in step. bench/packing.py: about 99% of
    the bound, where plain best fit and Nomad's formula stop near 90%."""
    memory_as_cpu = memory_left * cpu / memory
    stranded = abs(cpu_left - memory_as_cpu)
    return stranded + TIGHTNESS_WEIGHT * (cpu_left + memory_as_cpu)


def cpu_best_fit(cpu_left: int, memory_left: int, cpu: int, memory: int) -> float:
    """The classic one-dimensional best fit: the least free CPU left."""
    return cpu_left


def spread(cpu_left: int, memory_left: int, cpu: int, memory: int) -> float:
    """Worst fit: the worker left emptiest, as a share of its size, wins, spreading load
    across hosts."""
    return -(cpu_left / cpu + memory_left / memory) / 2


SCORERS: dict[str, Scorer] = {"binpack": binpack, "spread": spread}


def scorer(policy: str, request: Resources, cpu_only: bool = False) -> Scorer:
    """The policy's scorer for this request. A job that asks only CPU (it named no memory,
    or asks none) is packed by CPU alone: the classic one-dimensional best fit of DESIGN §3.
    Its default memory still has to fit, but does not steer where it goes: the stranding
    the two-dimensional score weighs would otherwise send it to a bigger worker whose memory
    is scarcer per core, which is not what someone who asked only for cores expects."""
    if policy == "binpack" and (cpu_only or request.memory_mb == 0):
        return cpu_best_fit
    return SCORERS[policy]
