"""The one error shape every failure answers with: {"error": {code, message, details}}."""

from marshmallow import Schema, fields


class ErrorBodySchema(Schema):
    code = fields.String(required=True)
    message = fields.String(required=True)
    details = fields.Raw(allow_none=True)


class ErrorSchema(Schema):
    error = fields.Nested(ErrorBodySchema, required=True)
