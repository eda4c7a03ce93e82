"""Wire schemas for workers: registration, heartbeats, assignments, output and results."""

from typing import Any

from marshmallow import Schema, ValidationError, fields, validate, validates_schema

from shared.batches import MAX_BATCH
from shared.schemas.fields import (
    EPOCH_S,
    MAX_EXACT_INTEGER,
    ResourceAmountsSchema,
    Text,
    Timestamp,
    WholeNumber,
    label_map,
)
from shared.schemas.jobs import ResourcesSchema
from shared.states import AGENT_REASONS

WORKER_ID = validate.Length(min=1, max=100)
ALLOWS_NETWORK = (
    "whether the agent lets jobs have a network (its JOBYARD_ALLOW_NETWORK); only such a "
    "worker is given a job with `network: true`"
)


class CapacitySchema(Schema):
    cpu = fields.Float(required=True, validate=validate.Range(min=0.001, max=100000))
    memory_mb = WholeNumber(required=True, validate=validate.Range(min=1, max=1 << 40))
    gpus = WholeNumber(load_default=0, validate=validate.Range(min=0, max=1024))


class RegisterSchema(Schema):
    hostname = Text(required=True, validate=validate.Length(min=1, max=255))
    capacity = fields.Nested(CapacitySchema, required=True)
    max_parallel_jobs = WholeNumber(load_default=4, validate=validate.Range(min=1, max=1024))
    labels = label_map(load_default=dict)
    executor = fields.String(load_default="docker", validate=validate.OneOf(["docker", "process"]))
    allows_network = fields.Boolean(load_default=False, metadata={"description": ALLOWS_NETWORK})


class RegisteredSchema(Schema):
    worker_id = fields.String()
    token = fields.String()
    heartbeat_s = fields.Float()


class RunningJobSchema(Schema):
    id = Text(required=True, validate=validate.Length(min=1, max=100))
    attempt = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_EXACT_INTEGER))


class HeartbeatSchema(Schema):
    metrics = fields.Dict(load_default=dict, validate=validate.Length(max=64))
    running = fields.List(
        fields.Nested(RunningJobSchema), load_default=list, validate=validate.Length(max=4096)
    )


class HeartbeatAnswerSchema(Schema):
    cancel = fields.List(fields.String())
    stop = fields.List(fields.String())


class AssignmentArgsSchema(Schema):
    wait = fields.Float(load_default=20.0, validate=validate.Range(min=0, max=60))


class AssignmentSchema(Schema):
    id = fields.String()
    attempt = fields.Integer()
    name = fields.String(allow_none=True)
    image = fields.String()
    command = fields.List(fields.String())
    env = fields.Dict()
    resources = fields.Nested(ResourcesSchema)
    timeout_s = fields.Float(allow_none=True)
    network = fields.Boolean()
    labels = fields.Dict()


class AssignmentListSchema(Schema):
    jobs = fields.List(fields.Nested(AssignmentSchema))


class ChunkSchema(Schema):
    seq = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_EXACT_INTEGER))
    stream = fields.String(required=True, validate=validate.OneOf(["stdout", "stderr"]))
    at = fields.Float(required=True, validate=EPOCH_S)
    data = fields.String(required=True, validate=validate.Length(max=256 * 1024))


class OutputPostSchema(Schema):
    chunks = fields.List(
        fields.Nested(ChunkSchema), required=True, validate=validate.Length(max=10000)
    )


class OutputAnswerSchema(Schema):
    cancel = fields.Boolean()


class ResultSchema(Schema):
    # What a process can exit with, and a signal death as docker reports it (128 + n).
    exit_code = WholeNumber(
        load_default=None, allow_none=True, validate=validate.Range(min=-(2**31), max=2**31 - 1)
    )
    reason = fields.String(
        load_default=None,
        allow_none=True,
        validate=validate.OneOf(sorted(r.value for r in AGENT_REASONS)),
    )
    error = Text(load_default=None, allow_none=True, validate=validate.Length(max=8192))
    metrics = fields.Dict(load_default=dict, validate=validate.Length(max=32))

    @validates_schema
    def _says_how_it_ended(self, data: dict[str, Any], **_: Any) -> None:
        # An empty body must not read as "failed, exit code unknown".
        if data.get("exit_code") is None and data.get("reason") is None:
            raise ValidationError("a result needs an exit_code or a reason")


class TransitionSchema(Schema):
    state = fields.String()
    version = fields.Integer()


class UpdateSchema(Schema):
    """One item of POST /workers/{id}/updates: the attempt started, or its result."""

    id = fields.String(required=True, validate=validate.Length(min=1, max=100))
    attempt = WholeNumber(required=True, validate=validate.Range(min=1, max=MAX_EXACT_INTEGER))
    start = fields.Boolean(metadata={"description": "true: the attempt started"})
    result = fields.Nested(ResultSchema, metadata={"description": "the attempt ended"})

    @validates_schema
    def _one_thing(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("start") is True) == ("result" in data):
            raise ValidationError("an update is `start: true` or a `result`, one of the two")


class UpdatesSchema(Schema):
    updates = fields.List(
        fields.Nested(UpdateSchema),
        required=True,
        validate=validate.Length(min=1, max=MAX_BATCH),
    )


class UpdateAnswerSchema(Schema):
    id = fields.String()
    attempt = fields.Integer()
    status = fields.Integer(
        metadata={"description": "what the per-job call would answer: 200, 403, 404 or 409"}
    )
    state = fields.String(allow_none=True, metadata={"description": "after the update (200)"})
    version = fields.Integer(allow_none=True)
    cancel = fields.Boolean(metadata={"description": "the user asked to cancel the job"})
    code = fields.String(
        allow_none=True, metadata={"description": "the refusal's error code, as the per-job call's"}
    )
    error = fields.String(allow_none=True, metadata={"description": "why it was refused"})


class UpdatesAnswerSchema(Schema):
    updates = fields.List(fields.Nested(UpdateAnswerSchema), metadata={"description": "in order"})


class WorkerReservedSchema(ResourceAmountsSchema):
    """What the control plane has reserved on a worker: 0 when idle."""

    jobs = fields.Integer(validate=validate.Range(min=0), metadata={"description": "job slots"})


class WorkerSchema(Schema):
    id = fields.String()
    hostname = fields.String()
    status = fields.String()
    executor = fields.String()
    allows_network = fields.Boolean(metadata={"description": ALLOWS_NETWORK})
    labels = fields.Dict()
    capacity = fields.Nested(CapacitySchema)
    max_parallel_jobs = fields.Integer()
    reserved = fields.Nested(WorkerReservedSchema)
    running_jobs = fields.List(fields.String())
    metrics = fields.Dict()
    registered_at = Timestamp()
    last_seen = Timestamp()


class WorkerListSchema(Schema):
    workers = fields.List(fields.Nested(WorkerSchema))
