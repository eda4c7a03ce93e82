"""Workers indexed by free capacity, so finding a fit costs a binary search and a short scan
instead of a pass over every worker.

Workers are kept sorted by (free CPU, free memory, id). Best fit starts at the first worker
with enough free CPU and walks up; worst fit walks down from the emptiest. Each walk stops
after a few fitting candidates, and the policy's scorer picks among them (the first fitting
worker has the least free CPU, so one-dimensional best fit is exact whatever the bound).
The scan runs once per worker passed over, so each entry is a flat tuple of plain integers
that holds all the scan needs, and the index tracks free capacity itself; it builds a
WorkerView only when a waiting job's reason needs one.
"""

from bisect import bisect_left, insort
from collections.abc import Iterator
from dataclasses import replace
from itertools import islice
from math import inf

from scheduler.feasible import matches, network_ok
from scheduler.rank import Scorer
from shared.pool import WorkerView
from shared.resources import Resources

# Enough fitting workers to choose well among (bench/packing.py, binpack: 16 give 95% of the
# bound, 48 give 98.7%, every worker 98.8%), few enough that a placement stays far below a
# pass over every worker.
CANDIDATES = 48

# (free CPU, free memory, id, free GPUs, free slots, CPU capacity, memory capacity): sorted
# by the first three; the capacities are at least 1, as the scorers divide by them.
Entry = tuple[int, int, str, int, int, int, int]


def _entry(worker: WorkerView) -> Entry:
    free = worker.free
    return (
        free.cpu_m,
        free.memory_mb,
        worker.id,
        free.gpus,
        worker.free_slots,
        max(worker.capacity.cpu_m, 1),
        max(worker.capacity.memory_mb, 1),
    )


class CapacityIndex:
    def __init__(self, workers: list[WorkerView]) -> None:
        self._views = {w.id: w for w in workers}
        self._entries = {w.id: _entry(w) for w in workers}  # full ones too, for give_back()
        self._order = sorted(e for e in self._entries.values() if e[4] > 0)
        self._current = dict(self._views)  # views as they are now, rebuilt once moved

    def __len__(self) -> int:
        return len(self._order)

    def best(
        self,
        request: Resources,
        constraints: dict[str, str],
        score: Scorer,
        tightest_first: bool,
        excluded: str | None = None,
        network: bool = False,
    ) -> str | None:
        """The id of the best-scoring of the first CANDIDATES workers that fit the request
        now, carry the labels asked and allow a network if it is asked, leaving out the
        `excluded` one (ties: the lower id)."""
        order = self._order
        start = bisect_left(order, (request.cpu_m, -1, ""))
        walk = (
            islice(order, start, None)
            if tightest_first
            else islice(reversed(order), len(order) - start)
        )
        cpu, memory, wanted_gpus = request.cpu_m, request.memory_mb, request.gpus
        best_score, best_id = inf, ""
        seen = 0
        for free_cpu, free_memory, worker_id, free_gpus, _, cap_cpu, cap_memory in walk:
            if free_memory < memory or free_gpus < wanted_gpus or worker_id == excluded:
                continue
            if constraints and not matches(constraints, self._views[worker_id]):
                continue
            if network and not network_ok(network, self._views[worker_id]):
                continue
            scored = score(free_cpu - cpu, free_memory - memory, cap_cpu, cap_memory)
            if scored < best_score or (scored == best_score and worker_id < best_id):
                best_score, best_id = scored, worker_id
            seen += 1
            if seen == CANDIDATES:
                break
        return best_id if seen else None

    def views(self) -> Iterator[WorkerView]:
        """Every worker not dropped, with its free capacity as it is now."""
        for worker_id in self._entries:
            yield self._view(worker_id)

    def view(self, worker_id: str) -> WorkerView | None:
        """The worker with its free capacity as it is now; None once dropped."""
        return self._view(worker_id) if worker_id in self._entries else None

    def _view(self, worker_id: str) -> WorkerView:
        view = self._current.get(worker_id)
        if view is None:
            free_cpu, free_memory, _, free_gpus, free_slots, _, _ = self._entries[worker_id]
            snapshot = self._views[worker_id]
            free = Resources(free_cpu, free_memory, free_gpus)
            view = replace(
                snapshot,
                reserved=snapshot.capacity - free,
                used_slots=snapshot.slots - free_slots,
            )
            self._current[worker_id] = view
        return view

    def take(self, worker_id: str, request: Resources) -> None:
        """Reserve the request on the worker, moving it to its new place in the order."""
        self._move(worker_id, request.cpu_m, request.memory_mb, request.gpus, 1)

    def give_back(self, worker_id: str, request: Resources) -> None:
        """Undo a take() whose commit Redis refused (the job had left the queue)."""
        self._move(worker_id, -request.cpu_m, -request.memory_mb, -request.gpus, -1)

    def drop(self, worker_id: str) -> None:
        """Place nothing more on this worker (Redis no longer sees it as we do)."""
        entry = self._entries.pop(worker_id, None)
        if entry is not None and entry[4] > 0:
            self._order.pop(bisect_left(self._order, entry))

    def _move(self, worker_id: str, cpu: int, memory: int, gpus: int, slots: int) -> None:
        entry = self._entries.get(worker_id)
        if entry is None:
            return  # dropped
        free_cpu, free_memory, _, free_gpus, free_slots, cap_cpu, cap_memory = entry
        if free_slots > 0:
            self._order.pop(bisect_left(self._order, entry))
        updated = (
            free_cpu - cpu,
            free_memory - memory,
            worker_id,
            free_gpus - gpus,
            free_slots - slots,
            cap_cpu,
            cap_memory,
        )
        self._entries[worker_id] = updated
        self._current.pop(worker_id, None)
        if free_slots - slots > 0:
            insort(self._order, updated)
