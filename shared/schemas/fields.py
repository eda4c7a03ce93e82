"""Field types the wire schemas share."""

import re
from datetime import UTC, datetime
from typing import Any

from marshmallow import Schema, ValidationError, fields, validate

from shared.image_reference import image_reference_error

NAME = validate.Length(min=1, max=200)
# Epoch seconds that Timestamp can write (UTC years 1970 to 9999); one beyond made every
# read of the output it was stored with a 500 (found by schemathesis).
EPOCH_S = validate.Range(min=0, max=253402300799)
# Whole numbers that pass through Lua (whose numbers are doubles) unchanged: the largest
# integer a double holds exactly.
MAX_EXACT_INTEGER = 2**53 - 1


class Timestamp(fields.Field):
    """Epoch seconds inside jobyard, ISO 8601 (UTC) on the wire."""

    def _serialize(self, value: Any, attr: str | None, obj: Any, **kwargs: Any) -> str | None:
        if value is None:
            return None
        return datetime.fromtimestamp(value, UTC).isoformat(timespec="milliseconds")


class WholeNumber(fields.Integer):
    """An integer of a JSON body: a JSON number without a fraction. marshmallow's Integer
    truncates (1.5 became 1 GPU) and reads strings; this one refuses both, and booleans,
    but takes 2.0, which is the same number. Query strings are text: they keep
    fields.Integer."""

    default_error_messages = {"invalid": "Not a whole number."}  # noqa: RUF012 - as marshmallow declares it

    def _validated(self, value: Any) -> int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.make_error("invalid")
        if isinstance(value, float) and not value.is_integer():  # also inf and nan
            raise self.make_error("invalid")
        return int(value)


# A NUL ends a C string (argv, environment, Docker labels) wherever a command reaches; a
# lone UTF-16 surrogate (half a pair: JSON can spell one, UTF-8 cannot) cannot be stored.
# json.loads joins the halves of a pair into one character, so any surrogate left is lone.
_UNSTORABLE = re.compile("[\x00\ud800-\udfff]")


def storable_text(value: str) -> None:
    """The validator of Text; raises ValidationError naming what is wrong."""
    found = _UNSTORABLE.search(value)
    if found is None:
        return
    if found.group() == "\x00":
        raise ValidationError("must not contain a NUL character")
    raise ValidationError("must not contain a lone UTF-16 surrogate")


class Text(fields.String):
    """A string of a JSON body that reaches a container, Redis or a log: no NUL, no lone
    surrogate (422 naming the field, not a 400 for the whole body or a 500 from Redis)."""

    def __init__(self, *args: Any, validate: Any = None, **kwargs: Any) -> None:
        validators = [validate] if callable(validate) else list(validate or [])
        super().__init__(*args, validate=[storable_text, *validators], **kwargs)


def image_reference(value: str) -> None:
    """A Docker image reference (shared/image_reference.py); raises ValidationError."""
    error = image_reference_error(value)
    if error is not None:
        raise ValidationError(error)


def label_map(**kwargs: Any) -> fields.Dict:
    return fields.Dict(
        keys=Text(validate=validate.Length(min=1, max=63)),
        values=Text(validate=validate.Length(max=255)),
        validate=validate.Length(max=64),
        **kwargs,
    )


class ResourceAmountsSchema(Schema):
    """An amount of resources that is not one job's request (a cluster's capacity, what is
    reserved on a worker): never below zero, with no per-job maximum."""

    cpu = fields.Float(validate=validate.Range(min=0))
    memory_mb = fields.Integer(validate=validate.Range(min=0))
    gpus = fields.Integer(validate=validate.Range(min=0))
