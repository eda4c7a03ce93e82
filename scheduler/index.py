"""Workers indexed by free capacity, so finding a fit costs a binary search and a short scan
instead of a pass over every worker.

Workers are kept sorted by (free CPU, free memory, id). Best fit starts at the first worker
with enough free CPU and walks up; worst fit walks down from the emptiest. Each walk stops
after a few fitting candidates, and the policy's scorer picks among them. The scan compares
plain integers held in the index: it runs once per worker passed over, so it must be cheap.
"""

from bisect import bisect_left, insort
from dataclasses import replace

from scheduler.feasible import matches
from scheduler.rank import Scorer
from shared.resources import Resources
from shared.store.scheduling import WorkerView

# Enough fitting workers to choose well among (bench/packing.py: 16 give 93% of the bound,
# 48 give 99%), few enough that a placement stays far below a pass over every worker.
CANDIDATES = 48


def _entry(worker: WorkerView) -> tuple[int, int, str]:
    free = worker.free
    return (free.cpu_m, free.memory_mb, worker.id)


class CapacityIndex:
    def __init__(self, workers: list[WorkerView]) -> None:
        self._views = {w.id: w for w in workers if w.free_slots > 0}
        self._gpus = {w.id: w.free.gpus for w in self._views.values()}
        self._caps = {
            w.id: (max(w.capacity.cpu_m, 1), max(w.capacity.memory_mb, 1))
            for w in self._views.values()
        }
        self._order = sorted(_entry(w) for w in self._views.values())

    def __len__(self) -> int:
        return len(self._order)

    def best(
        self,
        request: Resources,
        constraints: dict[str, str],
        score: Scorer,
        tightest_first: bool,
        excluded: str | None = None,
    ) -> WorkerView | None:
        """The best-scoring of the first CANDIDATES workers that fit the request now and
        carry the labels asked, leaving out the `excluded` one (ties: the lower id)."""
        order, gpus, views, caps = self._order, self._gpus, self._views, self._caps
        start = bisect_left(order, (request.cpu_m, -1, ""))
        positions = (
            range(start, len(order)) if tightest_first else range(len(order) - 1, start - 1, -1)
        )
        cpu, memory, wanted_gpus = request.cpu_m, request.memory_mb, request.gpus
        best: tuple[float, str] | None = None
        seen = 0
        for position in positions:
            free_cpu, free_memory, worker_id = order[position]
            if free_memory < memory or gpus[worker_id] < wanted_gpus or worker_id == excluded:
                continue
            if constraints and not matches(constraints, views[worker_id]):
                continue
            cap_cpu, cap_memory = caps[worker_id]
            ranked = (
                score((free_cpu - cpu) / cap_cpu, (free_memory - memory) / cap_memory),
                worker_id,
            )
            if best is None or ranked < best:
                best = ranked
            seen += 1
            if seen == CANDIDATES:
                break
        return views[best[1]] if best else None

    def take(self, worker: WorkerView, request: Resources) -> None:
        """Reserve the request on the worker, moving it to its new place in the order."""
        self._order.pop(bisect_left(self._order, _entry(worker)))
        updated = replace(
            worker, reserved=worker.reserved + request, used_slots=worker.used_slots + 1
        )
        if updated.free_slots > 0:
            self._views[worker.id] = updated
            self._gpus[worker.id] = updated.free.gpus
            insort(self._order, _entry(updated))
        else:
            del self._views[worker.id], self._gpus[worker.id]
