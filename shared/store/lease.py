"""The scheduler lease: only its holder places or reaps (lua/lease.lua)."""

import redis

from shared.store.scripts import StorePart


class NotLeader(Exception):
    """Another scheduler holds the lease: this one must not place anything."""


class SchedulerLease(StorePart):
    def hold_lease(self, token: str, ttl_s: float) -> bool:
        """Take the scheduler lease, or keep it for another ttl_s if it is already ours."""
        return bool(
            self.scripts.run("lease", [self.keys.scheduler_lease], [token, int(ttl_s * 1000)])
        )


def not_leader(exc: redis.ResponseError) -> Exception:
    """The exception to raise for a script's error reply: NotLeader when the script refused
    the caller as not holding the lease."""
    return NotLeader(str(exc)) if "not leader" in str(exc) else exc
