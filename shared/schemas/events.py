"""Wire schemas of the change feed's events, one per kind of shared/feed.py: what the stream
sends as each event's data and what the OpenAPI document shows for it."""

from collections.abc import Callable

from marshmallow import Schema, fields, validate

from shared.feed import KINDS, Field, FieldType, Kind
from shared.schemas.fields import Timestamp
from shared.states import JobState, Reason, WorkerStatus


def _one_of(values: type[JobState] | type[Reason] | type[WorkerStatus]) -> validate.OneOf:
    return validate.OneOf([value.value for value in values])


FIELDS: dict[FieldType, Callable[..., fields.Field]] = {
    FieldType.STRING: fields.String,
    FieldType.INTEGER: fields.Integer,
    FieldType.TIMESTAMP: Timestamp,
    FieldType.JOB_STATE: lambda **kw: fields.String(validate=_one_of(JobState), **kw),
    FieldType.REASON: lambda **kw: fields.String(validate=_one_of(Reason), **kw),
    FieldType.WORKER_STATUS: lambda **kw: fields.String(validate=_one_of(WorkerStatus), **kw),
}


# Timestamp is a custom field: apispec cannot tell its type by itself.
OPENAPI_TYPES = {FieldType.TIMESTAMP: {"type": "string", "format": "date-time"}}


def _field(field: Field) -> fields.Field:
    metadata = {"description": field.description, **OPENAPI_TYPES.get(field.type, {})}
    return FIELDS[field.type](required=True, allow_none=field.nullable, metadata=metadata)


def _schema(kind: Kind) -> type[Schema]:
    subject = f"the {kind.subject.value}'s id"
    declared: dict[str, fields.Field] = {
        "kind": fields.Constant(
            kind.name,
            required=True,
            metadata={"type": "string", "enum": [kind.name], "description": kind.description},
        ),
        "id": fields.String(required=True, metadata={"description": subject}),
    }
    declared.update((field.name, _field(field)) for field in kind.fields)
    name = "".join(part.title() for part in kind.name.split("_")) + "Event"
    return Schema.from_dict(declared, name=name)


# Keyed by kind; each class's name (JobEvent, WorkerRemovedEvent, ...) names its component
# in the OpenAPI document.
EVENT_SCHEMAS: dict[str, type[Schema]] = {kind.name: _schema(kind) for kind in KINDS}
