"""Stored tokens remembered for a moment, so a busy worker's calls do not each cost a Redis
round trip to look up its token (three per job on the dispatch path).

Only tokens found are remembered, each for TOKEN_CACHE_S: a token revoked in Redis is
refused by every API process within that bound, and at once by the process that revoked it
(`forget_worker`, `forget`). An unknown token is looked up every time.

A token's last use is recorded from the refresh path only (a lookup that found it), and at
most once every LAST_USED_EVERY_S per token in this process: a person's requests cost no
Redis write each, and `last_used_at` is late by at most that much.
"""

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import redis

from shared.store.tokens import token_hash

TOKEN_CACHE_S = 1.0
LAST_USED_EVERY_S = 60.0
MAX_ENTRIES = 10_000  # bounded memory whatever tokens are presented

Record = dict[str, Any]

log = logging.getLogger("jobyard.api")


@dataclass(frozen=True)
class _Entry:
    record: Record
    expires: float
    used_recorded: float | None  # when this process last recorded the token's use


class TokenCache:
    def __init__(
        self,
        lookup: Callable[[str], Record | None],
        record_use: Callable[[str, Record], None] | None = None,
        ttl_s: float = TOKEN_CACHE_S,
        clock: Callable[[], float] = time.monotonic,
        max_entries: int = MAX_ENTRIES,
    ) -> None:
        self._lookup = lookup  # token hash -> record, or None
        self._record_use = record_use  # (token hash, record): it was used now
        self._ttl_s = ttl_s
        self._clock = clock
        self._max_entries = max_entries
        self._entries: dict[str, _Entry] = {}

    def get(self, token: str) -> Record | None:
        """The record {name, role, worker_id?} of a stored token, or None."""
        return self.get_digest(token_hash(token))

    def get_digest(self, key: str) -> Record | None:
        """The same, by the token's sha256 (a session cookie carries only that)."""
        now = self._clock()
        entry = self._entries.get(key)
        if entry is not None and entry.expires > now:
            return entry.record
        record = self._lookup(key)
        if record is None:
            self._entries.pop(key, None)
            return None
        if len(self._entries) >= self._max_entries:
            self._evict(now)
        used = self._use(key, record, now, entry.used_recorded if entry else None)
        self._entries[key] = _Entry(record, now + self._ttl_s, used)
        return record

    def forget_worker(self, worker_id: str) -> None:
        """Drop the tokens of a worker this process has just deregistered."""
        self._entries = {
            key: entry
            for key, entry in self._entries.items()
            if entry.record.get("worker_id") != worker_id
        }

    def forget(self, digest: str) -> None:
        """Drop a token this process has just revoked, by its hash."""
        self._entries.pop(digest, None)

    def _use(self, key: str, record: Record, now: float, recorded: float | None) -> float | None:
        """Record the token's use when this process has not for LAST_USED_EVERY_S; returns
        when it last did."""
        if self._record_use is None:
            return recorded
        if recorded is not None and now - recorded < LAST_USED_EVERY_S:
            return recorded
        try:
            self._record_use(key, record)
        except redis.RedisError as exc:
            # Only bookkeeping: the request goes on, and the next refresh tries again.
            log.warning("event=token_use_not_recorded error=%r", str(exc))
            return recorded
        return now

    def _evict(self, now: float) -> None:
        self._entries = {key: e for key, e in self._entries.items() if e.expires > now}
        if len(self._entries) >= self._max_entries:
            self._entries.clear()
