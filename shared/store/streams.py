"""Read-only views for live streams: a job's output and the global change feed, read with
XREAD in bounded blocking slices, and the little of a job a stream needs between slices."""

import json
from dataclasses import dataclass
from typing import Any

import redis

from shared.store.keys import Keys

# The change feed's entry ids are Redis stream ids: milliseconds-sequence.
START_OF_FEED = "0-0"


@dataclass(frozen=True)
class JobStatus:
    """What a stream checks between slices: whose job it is and whether it has ended."""

    id: str
    owner: str
    state: str
    reason: str | None
    exit_code: int | None
    error: str | None


@dataclass(frozen=True)
class Change:
    """One entry of the global feed: a job transition or a worker status change."""

    id: str  # the stream entry id, which a client resumes from
    kind: str  # job | worker
    subject: str  # the job or worker id
    payload: dict[str, Any]


class StreamStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def job_status(self, job_id: str) -> JobStatus | None:
        """None when there is no such job (never was, or deleted)."""
        owner, state, reason, exit_code, error = self.redis.hmget(
            self.keys.job(job_id), "owner", "state", "reason", "exit_code", "error"
        )
        if state is None:
            return None
        return JobStatus(
            job_id,
            owner,
            state,
            reason or None,
            int(exit_code) if exit_code not in (None, "") else None,
            error or None,
        )

    def read_output(
        self, job_id: str, after: int, count: int, block_s: float | None
    ) -> list[dict[str, Any]]:
        """Output chunks numbered above `after`, oldest first, at most `count`. With
        `block_s`, waits up to that long for the first one (keep it under the client's socket
        timeout); without, answers at once."""
        reply = self.redis.xread(
            {self.keys.job_output(job_id): f"{after}-0"}, count=count, block=_block_ms(block_s)
        )
        return [_chunk(entry_id, fields) for entry_id, fields in _entries(reply)]

    def last_change_id(self) -> str:
        """The id of the newest entry of the feed, so a new follower starts after it."""
        newest = self.redis.xrevrange(self.keys.events, "+", "-", count=1)
        return str(newest[0][0]) if newest else START_OF_FEED

    def read_changes(self, after: str, count: int, block_s: float | None) -> list[Change]:
        """Feed entries after the entry id `after`, oldest first, at most `count`."""
        reply = self.redis.xread({self.keys.events: after}, count=count, block=_block_ms(block_s))
        return [
            Change(entry_id, fields["kind"], fields["id"], json.loads(fields["data"]))
            for entry_id, fields in _entries(reply)
        ]

    def owners(self, job_ids: list[str]) -> dict[str, str | None]:
        """Owner of each job; None for a job that no longer exists."""
        pipe = self.redis.pipeline(transaction=False)
        for job_id in job_ids:
            pipe.hget(self.keys.job(job_id), "owner")
        return dict(zip(job_ids, pipe.execute(), strict=True))


def _block_ms(block_s: float | None) -> int | None:
    # BLOCK 0 would wait forever: the shortest real wait is one millisecond.
    return None if block_s is None else max(1, round(block_s * 1000))


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of a one-stream XREAD reply: [[stream, entries]], or None when none came."""
    return list(reply[0][1]) if reply else []


def _chunk(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    # Same shape as JobStore.read_output: the entry number is the chunk's offset.
    return {
        "offset": int(entry_id.split("-")[0]),
        "stream": fields["stream"],
        "at": float(fields["at"]),
        "data": fields["data"],
    }
