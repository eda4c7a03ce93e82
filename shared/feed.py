"""The change feed (GET /api/v1/events/stream): every kind of event it carries and the fields
of each, as one list. The stream's schemas, its OpenAPI document and the tests that check
every publish of the Lua scripts all derive from KINDS."""

from dataclasses import dataclass
from enum import StrEnum


class Subject(StrEnum):
    """What an event is about; its `id` is that job's or worker's id."""

    JOB = "job"
    WORKER = "worker"


class FieldType(StrEnum):
    STRING = "string"
    INTEGER = "integer"
    TIMESTAMP = "timestamp"  # epoch seconds in Redis, ISO 8601 on the wire
    JOB_STATE = "job_state"
    REASON = "reason"
    WORKER_STATUS = "worker_status"


@dataclass(frozen=True)
class Field:
    name: str
    type: FieldType
    description: str
    nullable: bool = False


@dataclass(frozen=True)
class Kind:
    name: str
    subject: Subject
    description: str
    fields: tuple[Field, ...]  # the data a script publishes; the stream adds kind and id

    @property
    def field_names(self) -> frozenset[str]:
        return frozenset(field.name for field in self.fields)


AT = Field("at", FieldType.TIMESTAMP, "when the change was made")
# Every job event carries the job's version after the change: a client applies an event only
# when its version is newer than the one it holds (DESIGN §2).
VERSION = Field("version", FieldType.INTEGER, "the job's version after this change")
JOB_STATE = Field("state", FieldType.JOB_STATE, "the job's state, which this change kept")
# Who asked for a change a person makes (submit, cancel, retry, delete): the token's name.
ACTOR = Field(
    "actor",
    FieldType.STRING,
    "the name of the token that asked for this change; null when the system or a worker "
    "made it",
    True,
)

KINDS: tuple[Kind, ...] = (
    Kind(
        "job",
        Subject.JOB,
        "The job changed state: the same entry its history (GET /jobs/{id}/events) gets.",
        (
            AT,
            Field("from", FieldType.JOB_STATE, "the state it left; null on submission", True),
            Field("to", FieldType.JOB_STATE, "the state it entered"),
            Field("reason", FieldType.REASON, "why it ended or was requeued", True),
            Field("attempt", FieldType.INTEGER, "the job's attempt after the change"),
            Field("worker_id", FieldType.STRING, "the worker of that attempt", True),
            VERSION,
            ACTOR,
        ),
    ),
    Kind(
        "job_cancel_requested",
        Subject.JOB,
        "A user asked to cancel an ASSIGNED or RUNNING job (GET shows cancel_requested: "
        "true); its agent stops it, and a `job` event to CANCELLED follows.",
        (AT, JOB_STATE, VERSION, ACTOR),
    ),
    Kind(
        "job_pending",
        Subject.JOB,
        "Why a QUEUED job waits changed: the scheduler's pending_reason, or its retry "
        "backoff ended and it entered the queue. Fields as GET now shows them.",
        (
            AT,
            Field("pending_reason", FieldType.STRING, "why it is not placed yet", True),
            Field("retry_at", FieldType.TIMESTAMP, "while it waits out a retry backoff", True),
            Field("queued_at", FieldType.TIMESTAMP, "when it last entered the queue"),
            VERSION,
        ),
    ),
    Kind(
        "job_output_truncated",
        Subject.JOB,
        "The job's output reached JOBYARD_MAX_OUTPUT_BYTES: the rest is dropped (GET shows "
        "output_truncated: true).",
        (AT, VERSION),
    ),
    Kind(
        "job_deleted",
        Subject.JOB,
        "The job and its output were deleted, by a user or past retention (actor null): GET "
        "answers 404 from now on.",
        (AT, Field("state", FieldType.JOB_STATE, "the state it ended in"), VERSION, ACTOR),
    ),
    Kind(
        "worker",
        Subject.WORKER,
        "A worker's status changed: it registered (alive), was drained or was declared lost.",
        (AT, Field("status", FieldType.WORKER_STATUS, "its status from now on")),
    ),
    Kind(
        "worker_removed",
        Subject.WORKER,
        "A worker deregistered, or was lost longer than JOBYARD_WORKER_RETENTION_S: GET "
        "/workers no longer lists it and its token is revoked.",
        (AT,),
    ),
)

BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

# Changes a GET shows that the feed leaves out on purpose, each for its volume: one event
# per change would bury the rest of the feed and shorten how far back a client can resume.
NOT_CARRIED = (
    "output_bytes (grows with every output post: follow GET /jobs/{id}/output/stream)",
    "a worker's metrics and last_seen (every heartbeat: read GET /workers)",
    "a worker's reserved and running_jobs (they follow from the `job` events that assign a "
    "job to it and end it)",
)
