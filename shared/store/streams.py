"""Read-only views for live streams: a job's output and the global change feed, read with
XREAD in bounded blocking slices, and the little of a job a stream needs between slices."""

import json
from dataclasses import dataclass
from typing import Any

import redis

from shared.store.keys import Keys
from shared.store.records import chunk_from_entry

# Stream entry ids are milliseconds-sequence; START comes before every entry.
START = "0-0"
# The change feed's.
START_OF_FEED = START


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
    """One entry of the global feed: a change to a job or a worker (shared/feed.py lists
    the kinds)."""

    id: str  # the stream entry id, which a client resumes from
    kind: str
    subject: str  # the job or worker id
    owner: str | None  # the job's owner; None for a worker's change
    payload: dict[str, Any]


STATUS_FIELDS = ("owner", "state", "reason", "exit_code", "error")


class StreamStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def job_status(self, job_id: str) -> JobStatus | None:
        """None when there is no such job (never was, or deleted)."""
        return _status(job_id, self.redis.hmget(self.keys.job(job_id), *STATUS_FIELDS))

    def poll_output(
        self, job_id: str, after: int, count: int
    ) -> tuple[JobStatus | None, list[dict[str, Any]]]:
        """The job's status, then the chunks numbered above `after`, in one round trip. In
        this order: when the status says the job has ended, the chunks are all there are."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.hmget(self.keys.job(job_id), *STATUS_FIELDS)
        pipe.xread({self.keys.job_output(job_id): f"{after}-0"}, count=count)
        status, reply = pipe.execute()
        return _status(job_id, status), [chunk_from_entry(*entry) for entry in _entries(reply)]

    def wait_output(
        self, job_id: str, after: int, count: int, block_s: float, ends_after: str = START
    ) -> tuple[list[dict[str, Any]], str]:
        """Output chunks numbered above `after`, oldest first, at most `count`, waiting up to
        `block_s` (keep it under the client's socket timeout) for the first, or for the job
        to end: an entry of its ended stream after `ends_after`. Returns the chunks and the
        newest ended entry seen, which the next wait starts after (a job retried since it
        ended keeps the entry a while, and must not wake each wait at once)."""
        ended = self.keys.job_ended(job_id)
        output = self.keys.job_output(job_id)
        reply = self.redis.xread(
            {output: f"{after}-0", ended: ends_after}, count=count, block=_block_ms(block_s)
        )
        by_stream = {name: entries for name, entries in reply or []}
        if by_stream.get(ended):
            ends_after = str(by_stream[ended][-1][0])
        chunks = [chunk_from_entry(*entry) for entry in by_stream.get(output, [])]
        return chunks, ends_after

    def last_change_id(self) -> str:
        """The id of the newest entry of the feed, so a new follower starts after it."""
        newest = self.redis.xrevrange(self.keys.events, "+", "-", count=1)
        return str(newest[0][0]) if newest else START_OF_FEED

    def can_resume_after(self, after: str) -> bool:
        """Whether the feed still holds every entry after the id `after`: false once the
        feed's cap has trimmed entries newer than it (a follower away too long), and for an
        id newer than the newest entry (a Redis restored from an older snapshot: reading
        after it would skip the entries to come until the clock passes it)."""
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(self.keys.events, "-", "+", count=1)
        pipe.xrevrange(self.keys.events, "+", "-", count=1)
        oldest, newest = pipe.execute()
        point = _stream_id(after)
        if newest and point > _stream_id(str(newest[0][0])):
            return False
        if not oldest or _stream_id(str(oldest[0][0])) <= point:
            return True
        return point == _stream_id(START_OF_FEED) and not self._trimmed()

    def _trimmed(self) -> bool:
        # Redis counts what XADD's MAXLEN (or XTRIM) removed: without that, a follower from
        # the very start has lost nothing.
        info = self.redis.xinfo_stream(self.keys.events)
        return int(info.get("entries-added", 0)) > int(info.get("length", 0))

    def wait_changes(self, after: str, count: int, block_s: float) -> list[Change]:
        """Feed entries after the entry id `after`, oldest first, at most `count`, waiting up
        to `block_s` for the first."""
        reply = self.redis.xread({self.keys.events: after}, count=count, block=_block_ms(block_s))
        return [
            Change(
                entry_id,
                fields["kind"],
                fields["id"],
                fields.get("owner"),
                json.loads(fields["data"]),
            )
            for entry_id, fields in _entries(reply)
        ]


def _stream_id(entry_id: str) -> tuple[int, int]:
    ms, _, seq = entry_id.partition("-")
    return int(ms), int(seq or 0)


def _status(job_id: str, values: list[str | None]) -> JobStatus | None:
    owner, state, reason, exit_code, error = values
    if owner is None or state is None:
        return None
    return JobStatus(
        job_id,
        owner,
        state,
        reason or None,
        int(exit_code) if exit_code else None,
        error or None,
    )


def _block_ms(block_s: float) -> int:
    # BLOCK 0 would wait forever: the shortest real wait is one millisecond.
    return max(1, round(block_s * 1000))


def _entries(reply: Any) -> list[tuple[str, dict[str, str]]]:
    """The entries of a one-stream XREAD reply: [[stream, entries]], or None when none came."""
    return list(reply[0][1]) if reply else []
