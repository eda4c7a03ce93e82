"""Every Redis key name jobyard uses, built in this one module.

Lua scripts never build key names: they receive them as KEYS, laid out by `common()` first
and then the per-entity keys each script documents. One exception: a job's ended stream is
its job key with JOB_ENDED_SUFFIX (the preamble of lua/lib.lua gets the suffix from here),
because every script that can end a job would otherwise take one key more per job for it.
"""

from dataclasses import dataclass

from shared.states import JobState

# A job's ended stream (Keys.job_ended): one entry each time the job reaches a final state,
# which wakes whoever follows its output at once; it lasts JOB_ENDED_TTL_MS, long enough for
# a follower between two reads, so that finished jobs do not keep it.
JOB_ENDED_SUFFIX = ":ended"
JOB_ENDED_TTL_MS = 60_000


@dataclass(frozen=True)
class Keys:
    prefix: str = "jy:"

    # Global keys

    @property
    def rate_limits(self) -> str:
        """Prefix of flask-limiter's counters (api/limits.py): the limits library adds
        ":LIMITER/<identity>/..." and owns the keys under it."""
        return f"{self.prefix}limits"

    @property
    def owner_counts(self) -> str:
        """Hash: "<owner>\t<state>" -> number of that owner's jobs in it (owners are token
        names, which have no tab); a field that reaches 0 is removed, so the hash holds only
        owners with jobs."""
        return f"{self.prefix}owner_counts"

    @property
    def owner_counts_recounted(self) -> str:
        """String set once the per-owner counts were recounted from the indexes, for a store
        whose jobs a version without per-owner counts made (see recount.lua)."""
        return f"{self.prefix}owner_counts:recounted"

    @property
    def finished_totals(self) -> str:
        """Hash: terminal state -> how many times a job has entered it, ever (deletions do not
        lower it): the cumulative figures the history samples."""
        return f"{self.prefix}finished:totals"

    @property
    def metrics(self) -> str:
        """Hash of what /metrics reports that no index holds: the latency histograms the
        transitions observe ("<series>\t<bucket>" -> count, "<series>\tsum" -> seconds),
        and the output bytes stored (shared/store/metrics.py reads it)."""
        return f"{self.prefix}metrics"

    @property
    def history(self) -> str:
        """Stream of one entry a minute, its id the minute's start in milliseconds: the
        finished totals and the queue depth then (lua/history_sample.lua); the dashboard's
        charts of the last hour."""
        return f"{self.prefix}history"

    @property
    def events(self) -> str:
        """Stream of every job and worker change (the dashboard's feed)."""
        return f"{self.prefix}events"

    @property
    def queue(self) -> str:
        """Sorted set of QUEUED job ids, scored by priority then arrival."""
        return f"{self.prefix}queue"

    @property
    def queue_deadlines(self) -> str:
        """Sorted set of QUEUED job ids that have a queue timeout, scored by its end."""
        return f"{self.prefix}queue:deadlines"

    @property
    def retries(self) -> str:
        """Sorted set of QUEUED job ids waiting out a retry backoff, scored by when they may
        run again; they enter the queue only then."""
        return f"{self.prefix}retries"

    @property
    def assigned_at(self) -> str:
        """Sorted set of ASSIGNED job ids, scored by when they were assigned: the reaper
        requeues as stale those assigned longer ago than JOBYARD_ASSIGN_TIMEOUT_S."""
        return f"{self.prefix}assigned:at"

    @property
    def run_deadlines(self) -> str:
        """Sorted set of RUNNING job ids that have a timeout_s, scored by started_at plus
        timeout_s: the reaper fails those past it by more than JOBYARD_DEADLINE_GRACE_S."""
        return f"{self.prefix}run:deadlines"

    @property
    def finished(self) -> str:
        """Sorted set of terminal job ids, scored by finished_at (for retention)."""
        return f"{self.prefix}finished"

    @property
    def wake(self) -> str:
        """List the scheduler blocks on; anything that may free or need capacity pushes."""
        return f"{self.prefix}wake"

    @property
    def seq(self) -> str:
        """Counter giving every job its arrival number."""
        return f"{self.prefix}seq"

    @property
    def jobs(self) -> str:
        """Sorted set of every job id, scored by arrival number."""
        return f"{self.prefix}jobs"

    @property
    def workers(self) -> str:
        """Sorted set of worker ids, scored by last heartbeat time."""
        return f"{self.prefix}workers"

    @property
    def lost_workers(self) -> str:
        """Sorted set of the ids of workers declared lost, scored by when: the reaper removes
        their records JOBYARD_WORKER_RETENTION_S later."""
        return f"{self.prefix}workers:lost"

    @property
    def scheduler_lease(self) -> str:
        """String holding the active scheduler's token, with a time to live."""
        return f"{self.prefix}scheduler:lease"

    @property
    def tokens(self) -> str:
        """Hash: sha256 of a token -> JSON record {name, role, worker_id}."""
        return f"{self.prefix}tokens"

    @property
    def token_names(self) -> str:
        """Hash: name of a person's token -> its sha256, so a name is held by one token and a
        token is revoked by name. Worker tokens are not here: they die with their worker."""
        return f"{self.prefix}token:names"

    @property
    def token_last_used(self) -> str:
        """Hash: name of a person's token -> when it was last used (epoch seconds), written
        at most once a minute per API process (api/token_cache.py)."""
        return f"{self.prefix}token:last_used"

    def state(self, state: JobState) -> str:
        """Sorted set of the job ids in one state, scored by arrival number."""
        return f"{self.prefix}state:{state.value}"

    def common(self) -> list[str]:
        """The keys every state-changing script receives first: the global ones, then one
        index per state in JobState's order (lua/lib.lua's preamble names them)."""
        return [*self.common_globals().values(), *(self.state(state) for state in JobState)]

    def common_globals(self) -> dict[str, str]:
        """The global keys of common(), in order, by the name the scripts know each by."""
        return {
            "K_EVENTS": self.events,
            "K_QUEUE": self.queue,
            "K_WAKE": self.wake,
            "K_DEADLINES": self.queue_deadlines,
            "K_RETRIES": self.retries,
            "K_FINISHED": self.finished,
            "K_ASSIGNED_AT": self.assigned_at,
            "K_RUN_DEADLINES": self.run_deadlines,
            "K_OWNER_COUNTS": self.owner_counts,
            "K_FINISHED_TOTALS": self.finished_totals,
            "K_METRICS": self.metrics,
        }

    # Per job

    def job(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}"

    def job_events(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:events"

    def job_output(self, job_id: str) -> str:
        return f"{self.prefix}job:{job_id}:output"

    def job_ended(self, job_id: str) -> str:
        return self.job(job_id) + JOB_ENDED_SUFFIX

    def owner_jobs(self, owner: str) -> str:
        return f"{self.prefix}owner:{owner}:jobs"

    def owner_of_jobs_key(self, key: str) -> str:
        """The owner an owner_jobs key is of (read back from a SCAN)."""
        return key.removeprefix(self.owner_jobs("")[: -len(":jobs")]).removesuffix(":jobs")

    def idempotency(self, owner: str, key: str) -> str:
        return f"{self.prefix}idem:{owner}:{key}"

    # Per worker

    def worker(self, worker_id: str) -> str:
        return f"{self.prefix}worker:{worker_id}"

    def worker_jobs(self, worker_id: str) -> str:
        """Set of the job ids ASSIGNED to or RUNNING on one worker."""
        return f"{self.prefix}worker:{worker_id}:jobs"

    def worker_inbox(self, worker_id: str) -> str:
        """List of newly assigned job ids, popped by the worker's long-poll."""
        return f"{self.prefix}worker:{worker_id}:inbox"
