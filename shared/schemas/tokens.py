"""Wire schemas for people's access tokens: create, list."""

import re

from marshmallow import Schema, ValidationError, fields, validate

from shared.identities import PERSON_ROLES, RESERVED_NAMES
from shared.schemas.fields import Timestamp

# A name becomes the `owner` of jobs and part of Redis key names and URLs: a strict charset.
NAME_CHARS = "[A-Za-z0-9][A-Za-z0-9._-]{0,63}"


def _well_formed(name: str) -> None:
    # fullmatch, not a pattern ending in $: that lets a trailing newline through.
    if not re.fullmatch(NAME_CHARS, name):
        raise ValidationError(
            "1 to 64 letters, digits, '.', '_' or '-', starting with a letter or digit"
        )
    if name.lower() in RESERVED_NAMES:
        raise ValidationError(f"{name} is the name of a configured token")


class TokenCreateSchema(Schema):
    name = fields.String(
        required=True,
        validate=_well_formed,
        metadata={
            "description": "who the token is for; the owner of the jobs it submits",
            "pattern": f"^{NAME_CHARS}$",
        },
    )
    role = fields.String(load_default="user", validate=validate.OneOf(PERSON_ROLES))


class TokenCreatedSchema(Schema):
    name = fields.String()
    role = fields.String()
    token = fields.String(metadata={"description": "shown this once: only its hash is kept"})


class TokenInfoSchema(Schema):
    name = fields.String()
    role = fields.String()
    created_at = Timestamp()
    last_used_at = Timestamp(
        allow_none=True,
        metadata={
            "description": "approximate: recorded now and then, not on every request; "
            "null when never used"
        },
    )


class TokenListSchema(Schema):
    tokens = fields.List(fields.Nested(TokenInfoSchema))
