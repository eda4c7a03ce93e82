"""Job states, end reasons and the allowed transitions, as data.

This is the one written form of the state machine: shared/store/scripts.py generates the
Lua tables the scripts use from it, and transition() in lua/lib.lua refuses, inside Redis,
any move that TRANSITIONS does not allow.
"""

from enum import StrEnum


class JobState(StrEnum):
    QUEUED = "QUEUED"
    ASSIGNED = "ASSIGNED"
    RUNNING = "RUNNING"
    COMPLETED = "COMPLETED"
    FAILED = "FAILED"
    CANCELLED = "CANCELLED"


class Reason(StrEnum):
    EXIT_CODE = "exit_code"
    OOM = "oom"
    TIMEOUT = "timeout"
    CANCELLED = "cancelled"
    LOST = "lost"
    STALE = "stale"
    ERROR = "error"
    UNSCHEDULABLE = "unschedulable"


class WorkerStatus(StrEnum):
    ALIVE = "alive"
    DRAINING = "draining"
    LOST = "lost"


TERMINAL_STATES = frozenset({JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED})
# In one fixed order, for figures kept or shown per terminal state (history, histograms).
TERMINAL_STATE_NAMES = tuple(sorted(state.value for state in TERMINAL_STATES))
# The states a user may retry a job from (POST /jobs/{id}/retry: retry.lua; the dashboard).
USER_RETRYABLE_STATES = frozenset({JobState.FAILED, JobState.CANCELLED})
ACTIVE_STATES = frozenset({JobState.ASSIGNED, JobState.RUNNING})

TRANSITIONS: dict[JobState, frozenset[JobState]] = {
    JobState.QUEUED: frozenset({JobState.ASSIGNED, JobState.CANCELLED, JobState.FAILED}),
    JobState.ASSIGNED: frozenset(
        {JobState.RUNNING, JobState.QUEUED, JobState.FAILED, JobState.CANCELLED}
    ),
    JobState.RUNNING: frozenset(
        {JobState.COMPLETED, JobState.FAILED, JobState.CANCELLED, JobState.QUEUED}
    ),
    # Only an explicit retry leaves a terminal state, and it starts a new attempt.
    JobState.COMPLETED: frozenset(),
    JobState.FAILED: frozenset({JobState.QUEUED}),
    JobState.CANCELLED: frozenset({JobState.QUEUED}),
}

# Reasons an agent may report in a result; the others are decided by the control plane.
AGENT_REASONS = frozenset(
    {Reason.EXIT_CODE, Reason.OOM, Reason.TIMEOUT, Reason.CANCELLED, Reason.ERROR}
)


# Failures of the job itself, which spend its max_retries (DESIGN §2); lost and stale are
# the infrastructure's and count against JOBYARD_MAX_REQUEUES instead.
RETRYABLE_REASONS = frozenset({Reason.EXIT_CODE, Reason.OOM, Reason.TIMEOUT, Reason.ERROR})


# Fields of a job's record that belong to one attempt, by the moves that forget them.
# A new attempt (QUEUED -> ASSIGNED) starts without anything the last one ended with.
NEW_ATTEMPT_CLEARS = (
    "pending_reason", "reason", "exit_code", "error", "started_at", "finished_at", "out_seq",
    "cancel_requested", "metrics", "ended_by_agent",
)  # fmt: skip
# Back to the queue from ASSIGNED or RUNNING (a requeue, or waiting out a retry backoff): the
# attempt's clocks stop; its worker and number stay on record, to fence its late reports.
REQUEUE_CLEARS = ("pending_reason", "assigned_at", "started_at", "finished_at", "cancel_requested")
# A user's retry of a FAILED or CANCELLED job: nothing of the attempt that ended is left.
USER_RETRY_CLEARS = (
    "retry_at", "reason", "exit_code", "error", "finished_at", "started_at", "assigned_at",
    "worker_id", "metrics", "cancel_requested", "pending_reason", "ended_by_agent",
)  # fmt: skip


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]
