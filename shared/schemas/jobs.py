"""Wire schemas for jobs: what users submit and what they read back."""

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.batches import MAX_BATCH
from shared.resources import DEFAULT_JOB_RESOURCES
from shared.schemas.fields import (
    NAME,
    ResourceAmountsSchema,
    Text,
    Timestamp,
    WholeNumber,
    image_reference,
    label_map,
)
from shared.states import JobState, Reason

# \Z, not $: `$` would let "NAME\n" through.
ENV_NAME = validate.Regexp(r"^[A-Za-z_][A-Za-z0-9_]*\Z", error="not a valid variable name")
# Fields of the contract whose features are not built yet: refused, never silently ignored.
NOT_SUPPORTED_YET = {
    "depends_on": None,
    "notify": None,
}
_DEFAULT = DEFAULT_JOB_RESOURCES.to_wire()


class ResourcesSchema(Schema):
    """What one job asks for, within what any one job may ask."""

    cpu = fields.Float(load_default=_DEFAULT["cpu"], validate=validate.Range(min=0.001, max=1024))
    memory_mb = WholeNumber(
        load_default=_DEFAULT["memory_mb"], validate=validate.Range(min=6, max=16 * 1024 * 1024)
    )
    gpus = WholeNumber(load_default=_DEFAULT["gpus"], validate=validate.Range(min=0, max=64))


# Built once: a schema built per request deep-copies its fields each time.
DEFAULT_RESOURCES = ResourcesSchema()


class JobSubmitSchema(Schema):
    image = Text(load_default=None, validate=[validate.Length(min=1, max=255), image_reference])
    command = fields.List(
        Text(validate=validate.Length(max=65536)),
        required=True,
        validate=validate.Length(min=1, max=1024),
    )
    env = fields.Dict(
        keys=Text(validate=[validate.Length(max=255), ENV_NAME]),
        values=Text(validate=validate.Length(max=65536)),
        load_default=dict,
        validate=validate.Length(max=256),
    )
    resources = fields.Nested(ResourcesSchema, load_default=lambda: DEFAULT_RESOURCES.load({}))
    timeout_s = fields.Float(load_default=None, validate=validate.Range(min=0.1, max=30 * 86400))
    priority = WholeNumber(load_default=0, validate=validate.Range(min=-1000, max=1000))
    labels = label_map(load_default=dict)
    network = fields.Boolean(load_default=False)
    name = Text(load_default=None, validate=NAME)
    max_retries = WholeNumber(load_default=0, validate=validate.Range(min=0, max=100))
    queue_timeout_s = fields.Float(
        load_default=None, validate=validate.Range(min=0.1, max=365 * 86400)
    )
    constraints = label_map(load_default=dict)
    depends_on = fields.List(fields.String())
    notify = fields.List(fields.String())

    @validates_schema
    def refuse_unbuilt(self, data: dict[str, Any], **kwargs: Any) -> None:
        errors = {
            name: ["not supported yet"]
            for name, allowed in NOT_SUPPORTED_YET.items()
            if name in data and data[name] != allowed
        }
        if errors:
            raise ValidationError(errors)


class JobBatchSubmitSchema(Schema):
    jobs = fields.List(
        fields.Nested(JobSubmitSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
        metadata={"description": f"1 to {MAX_BATCH} submissions, stored together or not at all"},
    )


class JobSchema(Schema):
    id = fields.String()
    name = fields.String(allow_none=True)
    owner = fields.String()
    image = fields.String()
    command = fields.List(fields.String())
    env = fields.Dict()
    resources = fields.Nested(ResourcesSchema)
    timeout_s = fields.Float(allow_none=True)
    priority = fields.Integer()
    labels = fields.Dict()
    network = fields.Boolean()
    constraints = fields.Dict()
    queue_timeout_s = fields.Float(allow_none=True)
    state = fields.String(validate=validate.OneOf([s.value for s in JobState]))
    reason = fields.String(allow_none=True, validate=validate.OneOf([r.value for r in Reason]))
    exit_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
    attempt = fields.Integer()
    worker_id = fields.String(allow_none=True)
    version = fields.Integer()
    pending_reason = fields.String(allow_none=True)
    max_retries = fields.Integer()
    retries = fields.Integer(metadata={"description": "automatic retries spent"})
    retry_at = Timestamp(metadata={"description": "while waiting out a retry backoff"})
    cancel_requested = fields.Boolean()
    output_bytes = fields.Integer()
    output_truncated = fields.Boolean()
    metrics = fields.Dict(allow_none=True)
    created_at = Timestamp()
    queued_at = Timestamp()
    assigned_at = Timestamp()
    started_at = Timestamp()
    finished_at = Timestamp()


class JobBatchSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema), metadata={"description": "in submission order"})


class JobFilterSchema(Schema):
    """Which jobs a list or an export holds."""

    state = fields.String(validate=validate.OneOf([s.value for s in JobState]))
    owner = fields.String(
        validate=validate.Length(min=1, max=200),
        metadata={
            "description": "admins: only this owner's jobs, and counts of theirs; a user may "
            "name only themselves (another owner is 403)"
        },
    )
    worker = fields.String(validate=validate.Length(max=100))
    label = fields.String(validate=validate.Regexp(r"^[^=]+=.*$", error="must be KEY=VALUE"))


class JobListArgsSchema(JobFilterSchema):
    limit = fields.Integer(load_default=50, validate=validate.Range(min=1, max=500))
    cursor = fields.Integer(validate=validate.Range(min=0))


class JobExportArgsSchema(JobFilterSchema):
    """The job list's filters, without its paging: an export is every job that matches."""

    format = fields.String(load_default="csv", validate=validate.OneOf(["csv", "json"]))


class JobListSchema(Schema):
    jobs = fields.List(fields.Nested(JobSchema))
    next_cursor = fields.Integer(allow_none=True)
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={
            "description": "jobs per state: a user's own; for an admin every owner's, or "
            "those of `owner` when it is given"
        },
    )


class EventSchema(Schema):
    at = Timestamp()
    from_ = fields.String(data_key="from", attribute="from", allow_none=True)
    to = fields.String()
    reason = fields.String(allow_none=True)
    attempt = fields.Integer()
    worker_id = fields.String(allow_none=True)
    version = fields.Integer()
    actor = fields.String(
        allow_none=True,
        metadata={
            "description": "who asked for the change (a token's name: the submitter, or who "
            "cancelled or retried it); null when the system or a worker made it"
        },
    )


class EventListSchema(Schema):
    events = fields.List(fields.Nested(EventSchema))


# Chunk offsets number Redis stream entries ("N-0"), so one past the largest asked for must
# still be a stream id; 18 digits, as the output stream's Last-Event-ID allows.
MAX_OUTPUT_OFFSET = 10**18 - 1


class OutputArgsSchema(Schema):
    offset = fields.Integer(load_default=0, validate=validate.Range(min=0, max=MAX_OUTPUT_OFFSET))
    limit = fields.Integer(load_default=1000, validate=validate.Range(min=1, max=5000))


class OutputChunkSchema(Schema):
    offset = fields.Integer()
    stream = fields.String()
    at = Timestamp()
    data = fields.String()


class OutputSchema(Schema):
    chunks = fields.List(fields.Nested(OutputChunkSchema))
    next_offset = fields.Integer()
    complete = fields.Boolean()


class StatsSchema(Schema):
    counts = fields.Dict(
        keys=fields.String(),
        values=fields.Integer(),
        metadata={"description": "jobs per state: a user's own, every owner's for an admin"},
    )
    queue_depth = fields.Integer(
        metadata={"description": "QUEUED jobs: a user's own, every owner's for an admin"}
    )
    workers = fields.Dict(keys=fields.String(), values=fields.Integer())
    # Sums over workers: not one job's request, so none of its limits apply.
    capacity = fields.Nested(ResourceAmountsSchema)
    reserved = fields.Nested(ResourceAmountsSchema)


class FinishedCountsSchema(Schema):
    COMPLETED = fields.Integer()
    FAILED = fields.Integer()
    CANCELLED = fields.Integer()


class HistoryPointSchema(Schema):
    at = Timestamp(
        metadata={"description": "when the figures were taken: a minute's start, or now"}
    )
    finished = fields.Nested(
        FinishedCountsSchema,
        metadata={"description": "jobs that ended in each state since the point before"},
    )
    queue_depth = fields.Integer(metadata={"description": "QUEUED jobs at `at`"})


class StatsHistorySchema(Schema):
    minutes = fields.List(
        fields.Nested(HistoryPointSchema),
        metadata={
            "description": "the last hour, oldest first, at most one point a minute; the last "
            "point is now (the minute so far). The whole pool's figures."
        },
    )
