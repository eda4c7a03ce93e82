"""The seeded mixed workload shared by the placement and packing benchmarks: a pool of
worker shapes and a stream of job requests of mixed sizes.

Workers average about 50 cores and 4.2 GiB per core; jobs average 0.41 cores and 3.5 GiB
per core, so 100,000 jobs fill 1,000 workers to about 81% of CPU and 68% of memory.
"""

import random
from dataclasses import dataclass, replace

from shared.pool import WorkerView
from shared.resources import Resources

GIB = 1024


@dataclass(frozen=True)
class Shape:
    cores: int
    memory_gib: int
    slots: int
    weight: float


WORKER_SHAPES = (
    Shape(32, 64, 128, 0.30),  # compute: 2 GiB per core
    Shape(48, 192, 192, 0.30),  # general: 4 GiB per core
    Shape(16, 256, 64, 0.15),  # memory: 16 GiB per core
    Shape(96, 384, 384, 0.25),  # large: 4 GiB per core
)
# (cores, weight) and (GiB per core, weight): drawn independently, so job shapes vary.
JOB_CPU = ((0.1, 0.35), (0.25, 0.30), (0.5, 0.20), (1.0, 0.10), (2.0, 0.05))
JOB_GIB_PER_CORE = ((0.5, 0.10), (1.0, 0.15), (2.0, 0.25), (4.0, 0.30), (8.0, 0.20))
MIN_JOB_MEMORY_MB = 64


def worker_id(n: int) -> str:
    return f"w{n:05d}"


def workers(count: int, rng: random.Random) -> list[WorkerView]:
    """`count` empty workers of mixed shapes, ids w00000, w00001, ..."""
    shapes = rng.choices(WORKER_SHAPES, weights=[s.weight for s in WORKER_SHAPES], k=count)
    return [
        WorkerView(
            worker_id(n),
            Resources(shape.cores * 1000, shape.memory_gib * GIB, 0),
            Resources(0, 0, 0),
            shape.slots,
            0,
        )
        for n, shape in enumerate(shapes)
    ]


def job_requests(count: int, rng: random.Random) -> list[Resources]:
    cores = _draw(JOB_CPU, count, rng)
    ratios = _draw(JOB_GIB_PER_CORE, count, rng)
    return [
        Resources(round(c * 1000), max(MIN_JOB_MEMORY_MB, round(c * r * GIB)), 0)
        for c, r in zip(cores, ratios, strict=True)
    ]


def _draw(table: tuple[tuple[float, float], ...], count: int, rng: random.Random) -> list[float]:
    values = [value for value, _ in table]
    return rng.choices(values, weights=[weight for _, weight in table], k=count)


def reserve(worker: WorkerView, request: Resources) -> WorkerView:
    """The worker after a job with this request was placed on it."""
    return replace(worker, reserved=worker.reserved + request, used_slots=worker.used_slots + 1)
