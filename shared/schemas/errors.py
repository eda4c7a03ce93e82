"""The one error shape every failure answers with: {"error": {code, message, details}}."""

from marshmallow import Schema, fields


class ErrorBodySchema(Schema):
    code = fields.String(
        required=True,
        metadata={"description": "machine-readable, e.g. invalid, not_found, stale_attempt"},
    )
    message = fields.String(required=True, metadata={"description": "for people"})
    details = fields.Raw(
        required=True,
        allow_none=True,
        metadata={"description": "what exactly was wrong, e.g. the invalid fields; may be null"},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)
