"""Workers in Redis: registration, heartbeats, the assignment inbox, and listing."""

import json
import time
from collections.abc import Iterable
from typing import Any

from shared.batches import MAX_BATCH
from shared.resources import Resources
from shared.states import JobState
from shared.store.errors import InvalidState, NotFound, WorkerLimit
from shared.store.records import job_from_hash, worker_from_hash
from shared.store.scripts import StorePart

# Each blocking read stays well under the client's socket timeout (shared.store.connect).
BLOCK_SLICE_S = 2.0
MIN_BLOCK_S = 0.01


class WorkerLost(Exception):
    """The worker was declared lost: it must kill everything and register anew."""


class WorkerStore(StorePart):
    def register(
        self,
        worker_id: str,
        token_hash: str,
        *,
        hostname: str,
        capacity: Resources,
        slots: int,
        labels: dict[str, str],
        executor: str,
        allows_network: bool = False,
        max_workers: int,
    ) -> None:
        """Store a new worker and its token's hash; WorkerLimit when `max_workers` worker
        records (lost ones included) exist already."""
        record = json.dumps(
            {"name": f"worker:{worker_id}", "role": "worker", "worker_id": worker_id}
        )
        status = self.scripts.run(
            "register",
            self.keys.common() + [self.keys.worker(worker_id), self.keys.workers, self.keys.tokens],
            [
                self.clock(),
                worker_id,
                token_hash,
                record,
                hostname,
                capacity.cpu_m,
                capacity.memory_mb,
                capacity.gpus,
                slots,
                json.dumps(labels),
                executor,
                "1" if allows_network else "0",
                max_workers,
            ],
        )
        if status == "full":
            raise WorkerLimit(max_workers)

    def heartbeat(
        self, worker_id: str, metrics: dict[str, Any], running: Iterable[tuple[str, int]]
    ) -> tuple[list[str], list[str]]:
        """Record that the worker lives. Returns (cancel, stop): jobs of its own the user
        cancelled, and jobs it reports running that are no longer its own."""
        status = self.scripts.run(
            "heartbeat",
            self.keys.common() + [self.keys.worker(worker_id), self.keys.workers],
            [self.clock(), worker_id, json.dumps(metrics)],
        )
        if status == "not_found":
            raise NotFound(f"no worker {worker_id}")
        if status == "lost":
            raise WorkerLost(worker_id)
        own = sorted(self.redis.smembers(self.keys.worker_jobs(worker_id)))
        pipe = self.redis.pipeline(transaction=False)
        for job_id in own:
            pipe.hget(self.keys.job(job_id), "cancel_requested")
        cancel = [job_id for job_id, flag in zip(own, pipe.execute(), strict=True) if flag == "1"]
        running = list(running)
        pipe = self.redis.pipeline(transaction=False)
        for job_id, _attempt in running:
            pipe.hmget(self.keys.job(job_id), "worker_id", "attempt")
        stop = [
            job_id
            for (job_id, attempt), (owner_id, current) in zip(running, pipe.execute(), strict=True)
            if owner_id != worker_id or current != str(attempt) or job_id not in own
        ]
        return cancel, stop

    def drain(self, worker_id: str) -> str:
        """Take no new jobs on this worker. Returns its status (draining, or lost)."""
        status: str = self.scripts.run(
            "drain",
            self.keys.common() + [self.keys.worker(worker_id)],
            [self.clock(), worker_id],
        )
        if status == "not_found":
            raise NotFound(f"no worker {worker_id}")
        return status

    def deregister(self, worker_id: str) -> None:
        """Forget a worker that holds no job, and revoke its token."""
        keys = self.keys.common() + [
            self.keys.worker(worker_id),
            self.keys.workers,
            self.keys.worker_jobs(worker_id),
            self.keys.worker_inbox(worker_id),
            self.keys.tokens,
            self.keys.lost_workers,
        ]
        status = self.scripts.run("deregister", keys, [self.clock(), worker_id])
        if status == "not_found":
            raise NotFound(f"no worker {worker_id}")
        if status == "busy":
            raise InvalidState(f"worker {worker_id} still holds jobs: drain it first", "busy")

    def mark_lost(self, worker_id: str, max_requeues: int) -> dict[str, str]:
        """Declare the worker lost: each job it held goes back to the queue (reason lost),
        or FAILED once requeued `max_requeues` times. Returns {job id: new state}."""
        while True:
            job_ids = sorted(self.redis.smembers(self.keys.worker_jobs(worker_id)))
            keys = self.keys.common() + [
                self.keys.worker(worker_id),
                self.keys.worker_jobs(worker_id),
                self.keys.worker_inbox(worker_id),
                self.keys.lost_workers,
            ]
            for job_id in job_ids:
                keys += [self.keys.job(job_id), self.keys.job_events(job_id)]
            reply = self.scripts.run(
                "lost", keys, [self.clock(), worker_id, max_requeues, *job_ids]
            )
            if reply[0] == "not_found":
                raise NotFound(f"no worker {worker_id}")
            if reply[0] == "ok":
                return dict(zip(reply[1::2], reply[2::2], strict=True))
            # An assignment landed between the read and the script: read again.

    def forget_lost(self, retention_s: float, limit: int) -> list[str]:
        """Remove up to `limit` workers lost more than retention_s ago, with their token
        hashes and per-worker keys, in one script. Returns the ids removed."""
        cutoff = self.clock() - retention_s
        due = self.redis.zrangebyscore(self.keys.lost_workers, "-inf", cutoff, start=0, num=limit)
        if not due:
            return []
        keys = self.keys.common() + [self.keys.workers, self.keys.lost_workers, self.keys.tokens]
        for worker_id in due:
            keys += [
                self.keys.worker(worker_id),
                self.keys.worker_jobs(worker_id),
                self.keys.worker_inbox(worker_id),
            ]
        return list(self.scripts.run("forget", keys, [self.clock(), cutoff, *due]))

    def pop_assigned(self, worker_id: str, wait_s: float) -> list[dict[str, Any]]:
        """Block up to `wait_s` for jobs newly assigned to this worker; returns those waiting
        (at most MAX_BATCH: the rest wait for the next call) and still assigned to it (one
        cancelled or requeued meanwhile is left out)."""
        inbox = self.keys.worker_inbox(worker_id)
        first = self._first_assigned(inbox, wait_s)
        if first is None:
            return []
        # The first job is read with the rest of the inbox: one round trip when it is alone.
        pipe = self.redis.pipeline(transaction=True)
        pipe.hgetall(self.keys.job(first))
        pipe.lrange(inbox, 0, MAX_BATCH - 2)
        pipe.ltrim(inbox, MAX_BATCH - 1, -1)
        first_hash, rest, _ = pipe.execute()
        hashes = [first_hash]
        if rest:
            pipe = self.redis.pipeline(transaction=False)
            for job_id in rest:
                pipe.hgetall(self.keys.job(job_id))
            hashes += pipe.execute()
        jobs = [job_from_hash(h) for h in hashes if h]
        return [j for j in jobs if j["state"] == JobState.ASSIGNED and j["worker_id"] == worker_id]

    def _first_assigned(self, inbox: str, wait_s: float) -> str | None:
        # BLPOP answers at once when the inbox holds something, so only a wait too short
        # to block (timeout 0 would block forever) takes the plain LPOP.
        if wait_s <= MIN_BLOCK_S:
            first: str | None = self.redis.lpop(inbox)
            return first
        deadline = time.monotonic() + wait_s
        while (remaining := deadline - time.monotonic()) > MIN_BLOCK_S:
            popped = self.redis.blpop([inbox], timeout=min(BLOCK_SLICE_S, remaining))
            if popped:
                found: str = popped[1]
                return found
        return None

    def get(self, worker_id: str) -> dict[str, Any]:
        h = self.redis.hgetall(self.keys.worker(worker_id))
        if not h:
            raise NotFound(f"no worker {worker_id}")
        return worker_from_hash(h, list(self.redis.smembers(self.keys.worker_jobs(worker_id))))

    def all(self) -> list[dict[str, Any]]:
        ids = self.redis.zrange(self.keys.workers, 0, -1)
        pipe = self.redis.pipeline(transaction=False)
        for worker_id in ids:
            pipe.hgetall(self.keys.worker(worker_id))
            pipe.smembers(self.keys.worker_jobs(worker_id))
        replies = pipe.execute()
        return [
            worker_from_hash(h, list(jobs))
            for h, jobs in zip(replies[::2], replies[1::2], strict=True)
            if h
        ]
