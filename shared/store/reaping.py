"""What the reaper asks of the store: the jobs and workers its clocks say are overdue, and
the scripts that move them (queue timeout, retry backoff, stale assignment, run deadline,
silent worker)."""

from shared.states import JobState
from shared.store.jobs import DEFAULT_BACKOFF, Backoff
from shared.store.scripts import StorePart


class ReaperQueries(StorePart):
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
