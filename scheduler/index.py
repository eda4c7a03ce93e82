"""Workers indexed by free capacity, so finding a fit costs a binary search and a short scan
instead of a pass over every worker.

Workers are kept sorted by (free CPU, free memory, id). Best fit starts at the first worker
with enough free CPU and walks up; worst fit walks down from the emptiest. Each walk stops
after a few fitting candidates, and the policy's scorer picks among them.
"""

from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import replace

from scheduler.feasible import fits_now, matches
from shared.resources import Resources
from shared.store.scheduling import WorkerView

CANDIDATES = 8


def _key(worker: WorkerView) -> tuple[int, int, str]:
    free = worker.free
    return (free.cpu_m, free.memory_mb, worker.id)


class CapacityIndex:
    def __init__(self, workers: list[WorkerView]) -> None:
        self._by_id = {w.id: w for w in workers if w.free_slots > 0}
        self._order = sorted(_key(w) for w in self._by_id.values())

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
        leaving out the `excluded` one."""
        found: list[WorkerView] = []
        for worker in self._walk(request, tightest_first):
            if worker.id == excluded:
                continue
            if fits_now(request, worker) is None and matches(constraints, worker):
                found.append(worker)
                if len(found) == CANDIDATES:
                    break
        return found

    def take(self, worker: WorkerView, request: Resources) -> None:
        """Reserve the request on the worker, moving it to its new place in the order."""
        self._order.pop(bisect_left(self._order, _key(worker)))
        updated = replace(
            worker, reserved=worker.reserved + request, used_slots=worker.used_slots + 1
        )
        if updated.free_slots > 0:
            self._by_id[worker.id] = updated
            insort(self._order, _key(updated))
        else:
            del self._by_id[worker.id]

    def _walk(self, request: Resources, tightest_first: bool) -> Iterator[WorkerView]:
        start = bisect_left(self._order, (request.cpu_m, -1, ""))
        positions = (
            range(start, len(self._order))
            if tightest_first
            else range(len(self._order) - 1, start - 1, -1)
        )
        for position in positions:
            yield self._by_id[self._order[position][2]]
