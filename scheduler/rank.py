"""Scorers for a fitting worker: lower is better, ties broken by worker id for stability.

A scorer sees the shares of the worker's CPU and memory that would stay free once the job
is placed; it runs for every candidate of every job, so it works on plain floats."""

from collections.abc import Callable

Scorer = Callable[[float, float], float]


# How much the tightness of the fit counts next to keeping CPU and memory in step.
TIGHTNESS_WEIGHT = 0.05


def binpack(cpu_left: float, memory_left: float) -> float:
    """Best fit in two dimensions: the worker whose free CPU and memory stay most in step
    (so neither is stranded without the other), then the one left tightest. Plain
    tightest-first strands memory behind full CPUs: in bench/packing.py it stops at about
    90% of the bound, this at about 99%."""
    return abs(cpu_left - memory_left) + TIGHTNESS_WEIGHT * (cpu_left + memory_left) / 2


def spread(cpu_left: float, memory_left: float) -> float:
    """Worst fit: the worker left emptiest wins, spreading load across hosts."""
    return -(cpu_left + memory_left) / 2


SCORERS: dict[str, Scorer] = {"binpack": binpack, "spread": spread}
