"""Wire shapes of the server-sent event streams: the query that resumes one, and the JSON
each output event carries in its `data` field (the change feed's are in events.py)."""

from marshmallow import Schema, fields, validate

# Output events are numbered by chunk offset; feed events by Redis stream id (ms-seq).
OUTPUT_EVENT_ID = validate.Regexp(r"^[0-9]{1,18}\Z", error="must be a chunk offset (0, 1, ...)")
FEED_EVENT_ID = validate.Regexp(
    r"^[0-9]{1,18}-[0-9]{1,18}\Z", error="must be an event id as sent (e.g. 1700000000000-0)"
)


class OutputStreamArgsSchema(Schema):
    last_event_id = fields.String(
        validate=OUTPUT_EVENT_ID,
        metadata={"description": "resume after this chunk offset; the Last-Event-ID header wins"},
    )


class FeedStreamArgsSchema(Schema):
    last_event_id = fields.String(
        validate=FEED_EVENT_ID,
        metadata={"description": "resume after this event id; the Last-Event-ID header wins"},
    )


class EndEventSchema(Schema):
    """`event: end`, the last event of an output stream: how the job ended."""

    id = fields.String()
    state = fields.String()
    reason = fields.String(allow_none=True)
    exit_code = fields.Integer(allow_none=True)
    error = fields.String(allow_none=True)
