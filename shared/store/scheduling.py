"""What the scheduler reads and writes: a snapshot of queued jobs and live workers, and the
atomic commit of a batch of placements."""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import redis

from shared.resources import Resources
from shared.store.keys import Keys
from shared.store.scripts import Scripts


@dataclass(frozen=True)
class QueuedJob:
    id: str
    request: Resources
    priority: int
    pending_reason: str | None


@dataclass(frozen=True)
class WorkerView:
    id: str
    capacity: Resources
    reserved: Resources
    slots: int
    used_slots: int

    @property
    def free(self) -> Resources:
        return self.capacity - self.reserved

    @property
    def free_slots(self) -> int:
        return self.slots - self.used_slots


class SchedulingStore:
    def __init__(
        self, client: redis.Redis, keys: Keys, scripts: Scripts, clock: Callable[[], float]
    ) -> None:
        self.redis = client
        self.keys = keys
        self.scripts = scripts
        self.clock = clock

    def wait_for_work(self, timeout_s: float) -> None:
        """Block until something may have changed what can be placed, or the timeout."""
        self.redis.blpop([self.keys.wake], timeout=timeout_s)

    def queued_jobs(self, limit: int) -> list[QueuedJob]:
        """The head of the queue: highest priority first, then oldest."""
        ids = self.redis.zrange(self.keys.queue, 0, limit - 1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(
                self.keys.job(job_id), "cpu_m", "memory_mb", "gpus", "priority", "pending_reason"
            )
        jobs = []
        for job_id, (cpu_m, memory_mb, gpus, priority, reason) in zip(
            ids, pipe.execute(), strict=True
        ):
            if cpu_m is None:  # deleted between the two reads
                continue
            request = Resources(int(cpu_m), int(memory_mb), int(gpus))
            jobs.append(QueuedJob(job_id, request, int(priority), reason))
        return jobs

    def live_workers(self, worker_timeout_s: float) -> list[WorkerView]:
        """Workers that are alive (not draining or lost) and heard from recently."""
        ids = self.redis.zrangebyscore(self.keys.workers, self.clock() - worker_timeout_s, "+inf")
        pipe = self.redis.pipeline(transaction=False)
        fields = (
            "status",
            "cpu_m",
            "memory_mb",
            "gpus",
            "slots",
            "res_cpu_m",
            "res_memory_mb",
            "res_gpus",
            "res_slots",
        )
        for worker_id in ids:
            pipe.hmget(self.keys.worker(worker_id), *fields)
        workers = []
        for worker_id, values in zip(ids, pipe.execute(), strict=True):
            if values[0] != "alive":
                continue
            cpu, mem, gpus, slots, r_cpu, r_mem, r_gpus, r_slots = (int(v) for v in values[1:])
            workers.append(
                WorkerView(
                    worker_id,
                    Resources(cpu, mem, gpus),
                    Resources(r_cpu, r_mem, r_gpus),
                    slots,
                    r_slots,
                )
            )
        return workers

    def commit(
        self, placements: Sequence[tuple[str, str]], worker_timeout_s: float
    ) -> list[int | str]:
        """Assign each (job id, worker id) that still holds, atomically. Returns 1 per
        placement made, else the reason it was skipped (capacity taken, job gone...)."""
        if not placements:
            return []
        keys = self.keys.common()
        now = self.clock()
        args: list[str | float] = [now, now - worker_timeout_s]
        for job_id, worker_id in placements:
            keys += [
                self.keys.job(job_id),
                self.keys.job_events(job_id),
                self.keys.worker(worker_id),
                self.keys.worker_jobs(worker_id),
                self.keys.worker_inbox(worker_id),
            ]
            args += [job_id, worker_id]
        return list(self.scripts.run("assign", keys, args))

    def set_pending_reasons(self, reasons: dict[str, str]) -> None:
        if reasons:
            self.scripts.run("pending", [self.keys.job(j) for j in reasons], list(reasons.values()))
