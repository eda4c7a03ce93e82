"""The scheduler's snapshot of a pass: the head of the queue, the live workers and when
their jobs end, read in few round trips; and the wait for something to place."""

import json
from collections.abc import Iterator, Sequence
from typing import Any

from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources
from shared.store.scripts import StorePart

# What the scheduler reads of each queued job and each worker.
JOB_FIELDS = (
    "cpu_m", "memory_mb", "gpus", "priority", "pending_reason", "constraints", "queued_at",
    "timeout_s", "cpu_only", "network",
)  # fmt: skip
WORKER_FIELDS = (
    "status", "cpu_m", "memory_mb", "gpus", "slots", "res_cpu_m", "res_memory_mb", "res_gpus",
    "res_slots", "labels", "allows_network",
)  # fmt: skip
# Hashes per snapshot.lua call: about 10 ms of Redis time, which other clients wait out.
SNAPSHOT_CHUNK = 1000


class SnapshotReads(StorePart):
    def wait_for_work(self, timeout_s: float) -> None:
        """Block until something may have changed what can be placed, or the timeout."""
        self.redis.blpop([self.keys.wake], timeout=timeout_s)

    def queued_jobs(self, limit: int) -> list[QueuedJob]:
        """The head of the queue: highest priority first, then oldest."""
        ids = self.redis.zrange(self.keys.queue, 0, limit - 1)
        rows = self._read_hashes([self.keys.job(job_id) for job_id in ids], JOB_FIELDS)
        requests: dict[tuple[str, str, str], Resources] = {}  # few shapes, many jobs
        jobs = []
        for job_id, row in zip(ids, rows, strict=True):
            (cpu_m, mem, gpus, priority, reason, constraints, queued_at, timeout, cpu_only,
             network) = row  # fmt: skip
            if cpu_m is None:  # deleted between the two reads
                continue
            request = requests.get((cpu_m, mem, gpus))
            if request is None:
                request = requests[cpu_m, mem, gpus] = Resources(int(cpu_m), int(mem), int(gpus))
            wanted = json.loads(constraints) if constraints and constraints != "{}" else {}
            timeout_s = float(timeout) if timeout else None
            jobs.append(
                QueuedJob(
                    job_id,
                    request,
                    int(priority),
                    reason,
                    wanted,
                    float(queued_at),
                    timeout_s,
                    cpu_only == "1",
                    network == "1",
                )
            )
        return jobs

    def expected_ends(self, worker_ids: Sequence[str]) -> dict[str, list[tuple[float, Resources]]]:
        """For each worker, when each of its jobs ends at the latest (start plus timeout;
        infinity without a timeout) and what it then gives back."""
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in worker_ids:
            pipe.smembers(self.keys.worker_jobs(worker_id))
        held = dict(zip(worker_ids, pipe.execute(), strict=True))
        pipe = self.redis.pipeline(transaction=False)
        pairs = [(w, job_id) for w, job_ids in held.items() for job_id in sorted(job_ids)]
        for _, job_id in pairs:
            pipe.hmget(
                self.keys.job(job_id),
                "cpu_m", "memory_mb", "gpus", "started_at", "assigned_at", "timeout_s",
            )  # fmt: skip
        ends: dict[str, list[tuple[float, Resources]]] = {w: [] for w in worker_ids}
        for (worker_id, _), values in zip(pairs, pipe.execute(), strict=True):
            if values[0] is None:
                continue
            cpu_m, mem, gpus, started, assigned, timeout = values
            began = float(started or assigned or self.clock())
            end = began + float(timeout) if timeout else float("inf")
            ends[worker_id].append((end, Resources(int(cpu_m), int(mem), int(gpus))))
        return ends

    def live_workers(self, worker_timeout_s: float) -> list[WorkerView]:
        """Workers that are alive (not draining or lost) and heard from recently."""
        ids = self.redis.zrangebyscore(self.keys.workers, self.clock() - worker_timeout_s, "+inf")
        rows = self._read_hashes([self.keys.worker(worker_id) for worker_id in ids], WORKER_FIELDS)
        workers = []
        for worker_id, values in zip(ids, rows, strict=True):
            if values[0] != "alive":
                continue
            cpu, mem, gpus, slots, r_cpu, r_mem, r_gpus, r_slots = (int(v) for v in values[1:9])
            workers.append(
                WorkerView(
                    worker_id,
                    Resources(cpu, mem, gpus),
                    Resources(r_cpu, r_mem, r_gpus),
                    slots,
                    r_slots,
                    json.loads(values[9]),
                    values[10] == "1",
                )
            )
        return workers

    def _read_hashes(self, keys: list[str], fields: tuple[str, ...]) -> Iterator[list[Any]]:
        """The fields of each hash: one script call per SNAPSHOT_CHUNK hashes, so no single
        call holds Redis for long, all sent at once; each reply is parsed while Redis still
        reads the chunks after it."""
        if not keys:
            return
        (sha,) = self.scripts.loaded(self.redis, "snapshot")
        pool = self.redis.connection_pool
        connection = pool.get_connection()
        unread = 0
        try:
            for start in range(0, len(keys), SNAPSHOT_CHUNK):
                chunk = keys[start : start + SNAPSHOT_CHUNK]
                # A health check's PING after the first call would read a chunk's reply.
                connection.send_command(
                    "EVALSHA", sha, len(chunk), *chunk, *fields, check_health=not unread
                )
                unread += 1
            width = len(fields)
            while unread:
                unread -= 1
                flat = connection.read_response()
                for start in range(0, len(flat), width):
                    yield flat[start : start + width]
        finally:
            if unread:  # replies left on the wire: this connection cannot be reused
                connection.disconnect()
            pool.release(connection)
