"""Field types the wire schemas share."""

from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, fields, validate

NAME = validate.Length(min=1, max=200)
# Epoch seconds that Timestamp can write (UTC years 1970 to 9999); one beyond made every
# read of the output it was stored with a 500 (found by schemathesis).
EPOCH_S = validate.Range(min=0, max=253402300799)


class Timestamp(fields.Field):
    """Epoch seconds inside jobyard, ISO 8601 (UTC) on the wire."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


def label_map(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=fields.String(validate=validate.Length(min=1, max=63)),
        values=fields.String(validate=validate.Length(max=255)),
        validate=validate.Length(max=64),
        **kwargs,
    )


class ResourceAmountsSchema(Schema):
    """An amount of resources that is not one job's request (a cluster's capacity, what is
    reserved on a worker): never below zero, with no per-job maximum."""

    cpu = fields.Float(validate=validate.Range(min=0))
    memory_mb = fields.Integer(validate=validate.Range(min=0))
    gpus = fields.Integer(validate=validate.Range(min=0))
