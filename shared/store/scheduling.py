"""What the scheduler reads and writes: a snapshot of queued jobs and live workers, and the
atomic commit of a batch of placements."""

import json
from collections.abc import Iterator, Sequence
from typing import Any

import redis

from shared.pool import QueuedJob, WorkerView
from shared.resources import Resources
from shared.states import JobState
from shared.store.jobs import DEFAULT_BACKOFF, Backoff
from shared.store.scripts import StorePart

# What the scheduler reads of each queued job and each worker.
JOB_FIELDS = (
    "cpu_m", "memory_mb", "gpus", "priority", "pending_reason", "constraints", "queued_at",
    "timeout_s",
)  # fmt: skip
WORKER_FIELDS = (
    "status", "cpu_m", "memory_mb", "gpus", "slots", "res_cpu_m", "res_memory_mb", "res_gpus",
    "res_slots", "labels",
)  # fmt: skip
# Hashes per snapshot.lua call: about 10 ms of Redis time, which other clients wait out.
SNAPSHOT_CHUNK = 1000


class NotLeader(Exception):
    """Another scheduler holds the lease: this one must not place anything."""


class SchedulingStore(StorePart):
    def wait_for_work(self, timeout_s: float) -> None:
        """Block until something may have changed what can be placed, or the timeout."""
        self.redis.blpop([self.keys.wake], timeout=timeout_s)

    def queued_jobs(self, limit: int) -> list[QueuedJob]:
        """The head of the queue: highest priority first, then oldest."""
        ids = self.redis.zrange(self.keys.queue, 0, limit - 1)
        rows = self._read_hashes([self.keys.job(job_id) for job_id in ids], JOB_FIELDS)
        requests: dict[tuple[str, str, str], Resources] = {}  # few shapes, many jobs
        jobs = []
        for job_id, (cpu_m, mem, gpus, priority, reason, constraints, queued_at, timeout) in zip(
            ids, rows, strict=True
        ):
            if cpu_m is None:  # deleted between the two reads
                continue
            request = requests.get((cpu_m, mem, gpus))
            if request is None:
                request = requests[cpu_m, mem, gpus] = Resources(int(cpu_m), int(mem), int(gpus))
            wanted = json.loads(constraints) if constraints and constraints != "{}" else {}
            timeout_s = float(timeout) if timeout else None
            jobs.append(
                QueuedJob(
                    job_id, request, int(priority), reason, wanted, float(queued_at), timeout_s
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

    def hold_lease(self, token: str, ttl_s: float) -> bool:
        """Take the scheduler lease, or keep it for another ttl_s if it is already ours."""
        return bool(
            self.scripts.run("lease", [self.keys.scheduler_lease], [token, int(ttl_s * 1000)])
        )

    def commit(
        self, placements: Sequence[tuple[str, str]], worker_timeout_s: float, lease_token: str
    ) -> list[int | str]:
        """Assign each (job id, worker id) that still holds, atomically, if the caller still
        holds the scheduler lease (else NotLeader). Returns 1 per placement made, else the
        reason it was skipped (capacity taken, job gone...)."""
        if not placements:
            return []
        keys, args = self._assign_call(placements, worker_timeout_s, lease_token)
        try:
            return list(self.scripts.run("assign", keys, args))
        except redis.ResponseError as exc:
            raise _not_leader(exc) from None

    def commit_pipeline(
        self, worker_timeout_s: float, lease_token: str, lease_ttl_s: float
    ) -> "CommitPipeline":
        return CommitPipeline(self, worker_timeout_s, lease_token, lease_ttl_s)

    def _assign_call(
        self, placements: Sequence[tuple[str, str]], worker_timeout_s: float, lease_token: str
    ) -> tuple[list[str], list[str | float | int]]:
        """KEYS and ARGV of lua/assign.lua for a batch of placements."""
        keys = self.keys.common() + [self.keys.scheduler_lease]
        now = self.clock()
        args: list[str | float | int] = [now, now - worker_timeout_s, lease_token, len(placements)]
        numbers: dict[str, int] = {}  # each worker's keys are sent once
        for job_id, worker_id in placements:
            keys += [self.keys.job(job_id), self.keys.job_events(job_id)]
            args += [job_id, numbers.setdefault(worker_id, len(numbers) + 1)]
        for worker_id in numbers:
            keys += [
                self.keys.worker(worker_id),
                self.keys.worker_jobs(worker_id),
                self.keys.worker_inbox(worker_id),
            ]
        args += numbers
        return keys, args

    def expire_queued(self) -> list[str]:
        """Fail the QUEUED jobs whose queue timeout has passed (reason unschedulable)."""
        now = self.clock()
        due = self.redis.zrangebyscore(self.keys.queue_deadlines, "-inf", now, start=0, num=500)
        if not due:
            return []
        keys = self.keys.common()
        for job_id in due:
            keys += [self.keys.job(job_id), self.keys.job_events(job_id)]
        return list(self.scripts.run("expire", keys, [now, *due]))

    def promote_retries(self) -> list[str]:
        """Put the jobs whose retry backoff has passed back into the queue."""
        now = self.clock()
        due = self.redis.zrangebyscore(self.keys.retries, "-inf", now, start=0, num=500)
        if not due:
            return []
        keys = self.keys.common() + [self.keys.job(job_id) for job_id in due]
        return list(self.scripts.run("promote", keys, [now, *due]))

    def overdue(
        self, state: JobState, since_field: str, allowed_s: float | None, grace_s: float = 0.0
    ) -> list[tuple[str, str, int]]:
        """Jobs in `state` since `since_field` for longer than allowed_s + grace_s, as
        (job id, worker id, attempt). With allowed_s None, each job's own timeout_s is the
        allowance, and jobs without one are never overdue."""
        ids = self.redis.zrange(self.keys.state(state), 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), since_field, "worker_id", "attempt", "timeout_s")
        now = self.clock()
        found = []
        for job_id, (since, worker_id, attempt, timeout) in zip(ids, pipe.execute(), strict=True):
            allowance = (
                allowed_s if allowed_s is not None else (float(timeout) if timeout else None)
            )
            if allowance is None or not since or not worker_id:
                continue
            if float(since) + allowance + grace_s < now:
                found.append((job_id, worker_id, int(attempt)))
        return found

    def reap(
        self,
        job_id: str,
        worker_id: str,
        attempt: int,
        kind: str,
        max_requeues: int,
        backoff: Backoff = DEFAULT_BACKOFF,
    ) -> str:
        """Requeue a stale assignment or fail an overdue run, which waits out `backoff` when it
        has an automatic retry left (see lua/reap.lua). Returns the new state, or '' when the
        job had already moved on."""
        keys = self.keys.common() + [
            self.keys.job(job_id),
            self.keys.job_events(job_id),
            self.keys.worker(worker_id),
            self.keys.worker_jobs(worker_id),
        ]
        state: str = self.scripts.run(
            "reap", keys, [self.clock(), job_id, kind, attempt, max_requeues, *backoff.args()]
        )
        return state

    def silent_workers(self, worker_timeout_s: float) -> list[str]:
        """Workers not heard from for worker_timeout_s that are not yet declared lost."""
        ids = self.redis.zrangebyscore(self.keys.workers, "-inf", self.clock() - worker_timeout_s)
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hget(self.keys.worker(worker_id), "status")
        return [
            w for w, status in zip(ids, pipe.execute(), strict=True) if status not in (None, "lost")
        ]

    def set_pending_reasons(self, reasons: dict[str, str]) -> None:
        if reasons:
            keys = self.keys.common() + [self.keys.job(j) for j in reasons]
            self.scripts.run("pending", keys, [self.clock(), *reasons.values()])


def _not_leader(exc: redis.ResponseError) -> Exception:
    return NotLeader(str(exc)) if "not leader" in str(exc) else exc


class CommitPipeline:
    """Batches committed without waiting for each reply: the caller sends the next batch
    before it reads the reply to the one before, so Redis runs one batch while the caller
    places the next, and starts the next as soon as it is done. Each batch is a lease.lua
    call (keeping the lease through a long pass) followed by an assign.lua call, exactly as
    hold_lease() then commit(); replies come back in the order sent. Holds a connection of
    its own from the client's pool for as long as it is open."""

    def __init__(
        self, part: SchedulingStore, worker_timeout_s: float, lease_token: str, lease_ttl_s: float
    ) -> None:
        self._part = part
        self._worker_timeout_s = worker_timeout_s
        self._token = lease_token
        self._ttl_ms = int(lease_ttl_s * 1000)
        self._pool = part.redis.connection_pool
        self._connection: Any = None
        self._unread = 0
        self._lease_sha, self._assign_sha = part.scripts.loaded(part.redis, "lease", "assign")

    def __enter__(self) -> "CommitPipeline":
        self._connection = self._pool.get_connection()
        return self

    def __exit__(self, *exc_info: object) -> None:
        if self._unread:  # replies left on the wire: this connection cannot be reused
            self._connection.disconnect()
        self._pool.release(self._connection)

    def send(self, placements: Sequence[tuple[str, str]]) -> None:
        keys, args = self._part._assign_call(placements, self._worker_timeout_s, self._token)
        lease = self._part.keys.scheduler_lease
        self._send("EVALSHA", self._lease_sha, 1, lease, self._token, self._ttl_ms)
        self._send("EVALSHA", self._assign_sha, len(keys), *keys, *args)

    def receive(self) -> list[int | str] | None:
        """The outcomes of the oldest batch not yet received, as commit() returns them; None
        when another scheduler holds the lease (then nothing of the batch was committed)."""
        holds = self._read()
        try:
            outcomes = self._read()
        except redis.ResponseError as exc:
            if not holds:
                return None  # refused as not leader: that is what the lease reply said
            raise _not_leader(exc) from None
        return list(outcomes) if holds else None

    def _send(self, *args: Any) -> None:
        # No health check: its PING would read the reply of a batch still in flight.
        self._connection.send_command(*args, check_health=False)
        self._unread += 1

    def _read(self) -> Any:
        self._unread -= 1  # read or failed, it is off the wire
        return self._connection.read_response()
