"""What the reaper asks of the store: the jobs and workers its clocks say are overdue, and
the scripts that move them (queue timeout, retry backoff, stale assignment, run deadline,
silent worker)."""

from shared.states import JobState
from shared.store.jobs import DEFAULT_BACKOFF, Backoff
from shared.store.scripts import StorePart

# Jobs moved per clock per reaper pass, each batch one script call: a pass stays short, and
# the next one (a second later) goes on with the rest.
BATCH = 500

# A job a clock says is overdue: (job id, worker id, attempt).
Overdue = tuple[str, str, int]


class ReaperQueries(StorePart):
    def expire_queued(self) -> list[str]:
        """Fail the QUEUED jobs whose queue timeout has passed (reason unschedulable)."""
        now = self.clock()
        due = self.redis.zrangebyscore(self.keys.queue_deadlines, "-inf", now, start=0, num=BATCH)
        if not due:
            return []
        keys = self.keys.common()
        for job_id in due:
            keys += [self.keys.job(job_id), self.keys.job_events(job_id)]
        return list(self.scripts.run("expire", keys, [now, *due]))

    def promote_retries(self) -> list[str]:
        """Put the jobs whose retry backoff has passed back into the queue."""
        now = self.clock()
        due = self.redis.zrangebyscore(self.keys.retries, "-inf", now, start=0, num=BATCH)
        if not due:
            return []
        keys = self.keys.common() + [self.keys.job(job_id) for job_id in due]
        return list(self.scripts.run("promote", keys, [now, *due]))

    def stale_assignments(self, assign_timeout_s: float) -> list[Overdue]:
        """ASSIGNED jobs assigned more than assign_timeout_s ago, oldest first."""
        return self._overdue(self.keys.assigned_at, self.clock() - assign_timeout_s)

    def overdue_runs(self, grace_s: float) -> list[Overdue]:
        """RUNNING jobs more than grace_s past the end of their timeout_s, earliest first;
        a job without a timeout_s is never one."""
        return self._overdue(self.keys.run_deadlines, self.clock() - grace_s)

    def _overdue(self, clock_key: str, before: float) -> list[Overdue]:
        """The jobs scored below `before` in one of the clocks, as (job id, worker id,
        attempt): one range query, and a read of each job found, not of every job."""
        ids = self.redis.zrangebyscore(clock_key, "-inf", f"({before!r}", start=0, num=BATCH)
        if not ids:
            return []
        pipe = self.redis.pipeline(transaction=False)
        for job_id in ids:
            pipe.hmget(self.keys.job(job_id), "worker_id", "attempt")
        return [
            (job_id, worker_id, int(attempt))
            for job_id, (worker_id, attempt) in zip(ids, pipe.execute(), strict=True)
            if worker_id
        ]

    def index_clocks(self) -> int:
        """Enter the ASSIGNED and RUNNING jobs that are missing from the clocks (the jobs of
        a version that kept none; since, every transition keeps them): one full read, for a
        scheduler taking the lease. Returns how many entries were added."""
        added = 0
        for state in (JobState.ASSIGNED, JobState.RUNNING):
            ids = self.redis.zrange(self.keys.state(state), 0, -1)
            for start in range(0, len(ids), BATCH):
                chunk = ids[start : start + BATCH]
                keys = self.keys.common() + [self.keys.job(job_id) for job_id in chunk]
                added += int(self.scripts.run("clocks", keys, chunk))
        return added

    def recount_owners(self) -> int:
        """Once per store: recount the per-owner counts of every owner that has jobs or
        counts (jobs a version without them made), one script per owner, for a scheduler
        taking the lease. Returns how many owners were recounted (0 once done)."""
        if self.redis.exists(self.keys.owner_counts_recounted):
            return 0
        owners = {
            self.keys.owner_of_jobs_key(key)
            for key in self.redis.scan_iter(match=self.keys.owner_jobs("*"), count=1000)
        }
        owners |= {field.split("\t", 1)[0] for field in self.redis.hkeys(self.keys.owner_counts)}
        for owner in sorted(owners):
            self.scripts.run("recount", self.keys.common() + [self.keys.owner_jobs(owner)], [owner])
        self.redis.set(self.keys.owner_counts_recounted, "1")
        return len(owners)

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
