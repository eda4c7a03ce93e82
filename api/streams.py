"""Server-sent event streams: a job's output, live until the job ends, and the feed of every
job and worker change.

Each stream reads Redis with XREAD in blocking slices, which wake on what the stream waits
for: a job's output stream waits on its output and on its ended stream (so the end reaches
a follower at once), the feed on its entries. Under gunicorn's gevent worker the standard
library is monkey-patched before the app is built, so redis-py's socket waits yield to the
other requests of the process instead of holding it. Between slices a stream checks whether
the client has gone, so no greenlet outlives its client by more than a slice, and a comment
goes out every KEEPALIVE_S so that proxies keep a quiet connection open.
"""

import logging
import select
import socket
import time
from collections.abc import Callable, Iterator
from typing import Any

import redis
from flask import Response, request
from flask.views import MethodView
from marshmallow import Schema, ValidationError
from marshmallow.validate import Validator

from api.auth import Principal, current, require
from api.errors import Invalid, JobNotFound, documents_errors
from api.extensions import services
from api.guards import Blueprint
from shared.feed import KINDS, NOT_CARRIED
from shared.schemas.events import EVENT_SCHEMAS
from shared.schemas.jobs import OutputChunkSchema
from shared.schemas.streams import (
    FEED_EVENT_ID,
    OUTPUT_EVENT_ID,
    EndEventSchema,
    FeedStreamArgsSchema,
    OutputStreamArgsSchema,
)
from shared.states import TERMINAL_STATES
from shared.store.streams import START, Change, StreamStore

log = logging.getLogger("jobyard.api")

# Blocking reads stay well under the Redis client's socket timeout (5 s); both wake on what
# they wait for, so a slice bounds only how long a gone client keeps its greenlet.
OUTPUT_SLICE_S = 2.0
FEED_SLICE_S = 2.0
KEEPALIVE_S = 15.0
RETRY_MS = 2000  # how long an EventSource waits before it reconnects
OUTPUT_BATCH = 50  # chunks per read: at most about 3 MiB in memory per stream
FEED_BATCH = 200

blp = Blueprint(
    "streams",
    __name__,
    url_prefix="/api/v1",
    description="Live output and the change feed, as server-sent events",
)

EVENT_STREAM_DOC = {
    "responses": {
        "200": {
            "description": "text/event-stream; see the operation's description",
            "content": {"text/event-stream": {"schema": {"type": "string"}}},
        }
    }
}

FEED_DESCRIPTION = "\n".join(
    [
        "Every change to a job or worker that a GET would show, from now on (or after the "
        "Last-Event-ID header, or `?last_event_id=`), as server-sent events: `id:` the "
        "event id to resume from, `data:` one JSON object whose `kind` says what changed "
        "and whose `id` names the job or worker. Every job event carries the job's "
        "`version` after the change: apply it only when newer than the version you hold. "
        "Admins see everything, users the events of their own jobs.",
        "",
        "When the resume point is older than the oldest event the feed still holds (it "
        "keeps the newest entries only), the stream starts with `event: reset` (data `{}`, "
        "the id to resume from from now on): changes were missed, so refetch what you show, "
        "then apply the events that follow.",
        "",
        "Kinds:",
        *(f"- `{kind.name}`: {kind.description}" for kind in KINDS),
        "",
        "Left out on purpose, for their volume:",
        *(f"- {item}" for item in NOT_CARRIED),
    ]
)

FEED_STREAM_DOC = {
    "description": FEED_DESCRIPTION,
    "responses": {
        "200": {
            "description": "text/event-stream; each event's data is one of these",
            "content": {
                "text/event-stream": {
                    "schema": {
                        "oneOf": list(EVENT_SCHEMAS.values()),
                        "discriminator": {
                            "propertyName": "kind",
                            "mapping": {
                                kind: f"#/components/schemas/{schema.__name__}"
                                for kind, schema in EVENT_SCHEMAS.items()
                            },
                        },
                    }
                }
            },
        }
    },
}

Gone = Callable[[], bool]


@blp.route("/jobs/<string:job_id>/output/stream")
class JobOutputStream(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 404, 503)
    @blp.arguments(OutputStreamArgsSchema(), location="query")
    @blp.doc(**EVENT_STREAM_DOC)
    def get(self, args: dict[str, Any], job_id: str) -> Response:
        """The job's output chunks as server-sent events, live until the job ends.

        Each event's id is the chunk's offset and its data the chunk as JSON
        ({offset, stream, at, data}); a last `event: end` carries {id, state, reason,
        exit_code, error}, then the stream closes. Resumes after the Last-Event-ID header
        (or `?last_event_id=`)."""
        streams = services().store.streams
        status = streams.job_status(job_id)
        if status is None or not _may_see(current(), status.owner):
            raise JobNotFound(f"no job {job_id}")
        after = int(_resume_from(args, OUTPUT_EVENT_ID) or 0)
        return _event_stream(output_events(streams, job_id, after, _client_gone()))


@blp.route("/events/stream")
class ChangeFeed(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.arguments(FeedStreamArgsSchema(), location="query")
    @blp.doc(**FEED_STREAM_DOC)
    def get(self, args: dict[str, Any]) -> Response:
        """The change feed: every job and worker change, as server-sent events."""
        principal = current()
        viewer = None if principal.is_admin else principal.name
        streams = services().store.streams
        # Pinned here, not "$" on every read, which would skip what lands between reads.
        resume = _resume_from(args, FEED_EVENT_ID)
        reset = resume is not None and not streams.can_resume_after(resume)
        after = resume if resume is not None and not reset else streams.last_change_id()
        return _event_stream(change_events(streams, after, viewer, _client_gone(), reset))


def output_events(streams: StreamStore, job_id: str, after: int, gone: Gone) -> Iterator[str]:
    """Chunks numbered above `after` as they are stored; once the job has ended and every
    chunk is sent, the end event. Ends without it if the job is deleted meanwhile (the
    client's reconnection then gets the 404)."""
    yield f"retry: {RETRY_MS}\n\n"
    keepalive = _Keepalive()
    ends_seen = START
    while not gone():
        status, chunks = streams.poll_output(job_id, after, OUTPUT_BATCH)
        if status is None:
            return
        if not chunks:
            if status.state in TERMINAL_STATES:
                # Read after the status said so: no output is stored once a job has ended.
                yield _event(EndEventSchema().dumps(status), event="end")
                return
            chunks, ends_seen = streams.wait_output(
                job_id, after, OUTPUT_BATCH, OUTPUT_SLICE_S, ends_seen
            )
        if chunks:
            after = chunks[-1]["offset"]
            keepalive.reset()
            yield _chunk_events(chunks)
        elif keepalive.due():
            yield ": keep-alive\n\n"


def change_events(
    streams: StreamStore, after: str, viewer: str | None, gone: Gone, reset: bool = False
) -> Iterator[str]:
    """Feed entries after the entry id `after` as they come; `viewer` None sees all, a user
    name only the changes of that user's jobs. With `reset`, a first `reset` event says the
    asked-for resume point is gone, so the client must refetch what it shows."""
    yield f"retry: {RETRY_MS}\n\n"
    if reset:
        yield _event("{}", event_id=after, event="reset")
    keepalive = _Keepalive()
    while not gone():
        changes = streams.wait_changes(after, FEED_BATCH, FEED_SLICE_S)
        if changes:
            after = changes[-1].id
            if viewer is not None:  # a worker's change has no owner: only admins see it
                changes = [change for change in changes if change.owner == viewer]
        if text := "".join(_change_event(change) for change in changes):
            keepalive.reset()
            yield text
        elif keepalive.due():
            yield ": keep-alive\n\n"


CHANGE_SCHEMAS: dict[str, Schema] = {kind: schema() for kind, schema in EVENT_SCHEMAS.items()}


def _change_event(change: Change) -> str:
    schema = CHANGE_SCHEMAS.get(change.kind)
    if schema is None:  # published by newer scripts than this api process knows: leave it out
        return ""
    return _event(schema.dumps({**change.payload, "id": change.subject}), event_id=change.id)


class _Keepalive:
    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.last = time.monotonic()

    def due(self) -> bool:
        if time.monotonic() - self.last < KEEPALIVE_S:
            return False
        self.reset()
        return True


def _may_see(principal: Principal, owner: str) -> bool:
    # The rule of every job endpoint: another user's job is as good as absent.
    return principal.is_admin or owner == principal.name


def _resume_from(args: dict[str, Any], valid: Validator) -> str | None:
    """The Last-Event-ID header if sent (a reconnecting EventSource sends the newest id it
    has), else the query parameter."""
    header = request.headers.get("Last-Event-ID")
    if not header:
        value: str | None = args.get("last_event_id")
        return value
    try:
        valid(header)
    except ValidationError as exc:
        raise Invalid(
            "the Last-Event-ID header is not valid",
            {"headers": {"Last-Event-ID": exc.messages}},
        ) from None
    return header


def _client_gone() -> Gone:
    """A check that the client has closed its connection. Under gunicorn the socket is at
    hand: a closed peer makes it readable with nothing to read (an SSE client sends nothing
    after its request). Elsewhere (the test client) the answer is always no."""
    sock = request.environ.get("gunicorn.socket")
    if sock is None:
        return lambda: False

    def gone() -> bool:
        try:
            readable, _, _ = select.select([sock], [], [], 0)
            return bool(readable) and sock.recv(1, socket.MSG_PEEK) == b""
        except OSError:
            return True

    return gone


def _event_stream(events: Iterator[str]) -> Response:
    return Response(
        _ending_quietly(events),
        mimetype="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


def _ending_quietly(events: Iterator[str]) -> Iterator[str]:
    """The status line went out long ago, so a Redis failure cannot become a 503 any more:
    end the stream, and the client reconnects (to a 503 while Redis is still away)."""
    try:
        yield from events
    except redis.RedisError as exc:
        log.warning("event=stream_ended_by_redis_error error=%r", str(exc))


def _chunk_events(chunks: list[dict[str, Any]]) -> str:
    schema = OutputChunkSchema()
    return "".join(_event(schema.dumps(chunk), event_id=str(chunk["offset"])) for chunk in chunks)


def _event(data: str, *, event_id: str | None = None, event: str | None = None) -> str:
    """One event; `data` is JSON, which has no raw newline, so it fits one data line."""
    lines = [f"id: {event_id}"] if event_id is not None else []
    if event is not None:
        lines.append(f"event: {event}")
    lines.append(f"data: {data}")
    return "\n".join(lines) + "\n\n"
