"""The scheduler's writes: batches of placements committed atomically by lua/assign.lua
(one at a time, or pipelined while the next batch is placed), and pending reasons."""

from collections.abc import Sequence
from typing import Any

import redis

from shared.store.lease import not_leader
from shared.store.scripts import StorePart


class Commits(StorePart):
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
            raise not_leader(exc) from None

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

    def set_pending_reasons(self, reasons: dict[str, str]) -> None:
        if reasons:
            keys = self.keys.common() + [self.keys.job(j) for j in reasons]
            self.scripts.run("pending", keys, [self.clock(), *reasons.values()])


class CommitPipeline:
    """Batches committed without waiting for each reply: the caller sends the next batch
    before it reads the reply to the one before, so Redis runs one batch while the caller
    places the next, and starts the next as soon as it is done. Each batch is a lease.lua
    call (keeping the lease through a long pass) followed by an assign.lua call, exactly as
    hold_lease() then commit(); replies come back in the order sent. Holds a connection of
    its own from the client's pool for as long as it is open."""

    def __init__(
        self, part: "Commits", worker_timeout_s: float, lease_token: str, lease_ttl_s: float
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
            raise not_leader(exc) from None
        return list(outcomes) if holds else None

    def _send(self, *args: Any) -> None:
        # No health check: its PING would read the reply of a batch still in flight.
        self._connection.send_command(*args, check_health=False)
        self._unread += 1

    def _read(self) -> Any:
        self._unread -= 1  # read or failed, it is off the wire
        return self._connection.read_response()
