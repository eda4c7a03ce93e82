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
from shared.resources import Resources
from shared.store.scheduling import WorkerView

CANDIDATES = 8


def _entry(worker: WorkerView) -> tuple[int, int, str]:
    free = worker.free
    return (free.cpu_m, free.memory_mb, worker.id)


class CapacityIndex:
    def __init__(self, workers: list[WorkerView]) -> None:
        self._views = {w.id: w for w in workers if w.free_slots > 0}
        self._gpus = {w.id: w.free.gpus for w in self._views.values()}
        self._order = sorted(_entry(w) for w in self._views.values())

    def __len__(self) -> int:
        return len(self._order)

    def candidates(
        self,
        request: Resources,
        constraints: dict[str, str],
        tightest_first: bool,
        excluded: str | None = None,
    ) -> list[WorkerView]:
        """Up to CANDIDATES workers that fit the request now and carry the labels asked,
        leaving out the `excluded` one. Every indexed worker has a free job slot."""
        order, gpus, views = self._order, self._gpus, self._views
        start = bisect_left(order, (request.cpu_m, -1, ""))
        positions = (
            range(start, len(order)) if tightest_first else range(len(order) - 1, start - 1, -1)
        )
        memory, wanted_gpus = request.memory_mb, request.gpus
        found: list[WorkerView] = []
        for position in positions:
            _, free_memory, worker_id = order[position]
            if free_memory < memory or gpus[worker_id] < wanted_gpus or worker_id == excluded:
                continue
            worker = views[worker_id]
            if constraints and not matches(constraints, worker):
                continue
            found.append(worker)
            if len(found) == CANDIDATES:
                break
        return found

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
