"""Job states, end reasons and the allowed transitions, as data.

The Lua scripts in shared/store/lua enforce these transitions in Redis; the table here is
the single written form of the state machine that tests check the scripts against.
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


def can_transition(current: JobState, target: JobState) -> bool:
    return target in TRANSITIONS[current]
