"""What every request must pass before a view reads it: a whole body, a JSON body if any,
JSON nested no deeper than MAX_JSON_DEPTH, no string JSON can spell but UTF-8 cannot.

Each guard answers with an HTTPException, which api/errors.py turns into the error shape.
`install(app)` registers them in the order they run; the Blueprint here is the one every
API module builds its routes with, so that a field's own 422 speaks before the body-wide
lone-surrogate 400 (see refuse_lone_surrogates).
"""

import json
import operator
import re
from http import HTTPStatus
from itertools import accumulate, repeat
from typing import Any

import flask_smorest
from flask import Flask, current_app, g, request
from webargs.flaskparser import FlaskParser
from werkzeug.exceptions import BadRequest, UnsupportedMediaType

# The deepest nesting of arrays and objects a JSON body may have: the API's documents are
# a few levels deep, and Python's parser recurses per level (a thousand levels ended in a
# RecursionError, a 500).
MAX_JSON_DEPTH = 32

LONE_SURROGATE = "the request body has a string with a lone UTF-16 surrogate"


def install(app: Flask) -> None:
    app.before_request(_guard)


def _guard() -> None:
    # Flask raises a 404 or 405 from routing only after the before_request hooks: an
    # unknown path or method says more than anything about the body sent to it.
    if request.routing_exception is not None:
        return
    for guard in (
        refuse_cut_bodies,
        refuse_bodies_not_json,
        refuse_deep_nesting,
        refuse_lone_surrogates,
    ):
        guard()


def refuse_cut_bodies() -> None:
    """A client that dies mid-request leaves a body shorter than its Content-Length, which
    gevent's server hands over as if whole (it sets wsgi.input_terminated); parsed, an empty
    body would mean "all defaults". Found by the chaos soak: an agent killed while posting
    a result failed its job with no exit code."""
    expected = request.content_length
    if expected and len(request.get_data(cache=True)) < expected:
        raise BadRequest(f"the request body ended before its {expected} bytes")


# The one route that reads a form: the dashboard's login (api/session.py).
FORM_ENDPOINTS = frozenset({"session.login_form"})
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def refuse_bodies_not_json() -> None:
    """Every body the API reads is JSON, but the login form's. One sent as text/plain or a
    form was ignored by the argument parser, which then said "command: missing data"; a
    request with no body (cancel, retry) needs no Content-Type."""
    if request.endpoint in FORM_ENDPOINTS and request.mimetype in FORM_TYPES:
        return
    if request.get_data(cache=True) and not request.is_json:
        raise UnsupportedMediaType(
            f"the request body must be application/json, not {request.mimetype or 'untyped'}"
        )


def refuse_deep_nesting() -> None:
    if request.is_json and nested_deeper_than(request.get_data(cache=True), MAX_JSON_DEPTH):
        raise BadRequest(f"the JSON body is nested deeper than {MAX_JSON_DEPTH} levels")


# A JSON string, escapes and all; possessive, so a long one costs one pass and no
# backtracking.
_JSON_STRING = re.compile(rb'"(?:[^"\\]++|\\.)*+"', re.DOTALL)
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
# Opening brackets become 2 and closing ones 0: less one each, the steps of the depth.
_STEPS = bytes.maketrans(b"[]{}", b"\x02\x00\x02\x00")


def nested_deeper_than(body: bytes, limit: int) -> bool:
    """Do the arrays and objects of `body` nest deeper than `limit`? Read from the bytes
    without parsing them: brackets counted outside strings, unbalanced ones too (an
    unclosed "[[" recurses in the parser as deep as a closed one)."""
    if body.count(b"[") + body.count(b"{") <= limit:
        return False  # the common case: too few brackets to matter
    brackets = _JSON_STRING.sub(b"", body).translate(None, _NOT_BRACKETS)
    # The deepest level is the largest running sum of the steps; all in C, no Python code
    # runs per byte.
    steps = map(operator.sub, brackets.translate(_STEPS), repeat(1))
    return max(accumulate(steps), default=0) > limit


# A \uD800-\uDFFF escape: a UTF-16 surrogate, which JSON text may spell but no Unicode
# string holds alone. Only a body with one is parsed here; most have none.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def refuse_lone_surrogates() -> None:
    """A string with half a surrogate pair cannot be encoded to UTF-8: Redis's Lua JSON
    refused it and the API answered 500 (found by schemathesis). Pairs (an emoji as
    Python's json.dumps writes it) are whole characters and welcome.

    Routes of this module's Blueprint read their bodies through its parser, which refuses
    the body after the schema has loaded it: the text fields (shared/schemas/fields.py
    Text) first answer 422 naming the field, and a surrogate elsewhere (a metrics value)
    still gets this 400. Any other route is refused here, before its view runs."""
    body = request.get_data(cache=True)
    if not request.is_json or not _SURROGATE_ESCAPE.search(body) or not _lone_surrogate(body):
        return
    if isinstance(current_app.blueprints.get(request.blueprint or ""), Blueprint):
        g.lone_surrogate = True
        return
    raise BadRequest(LONE_SURROGATE)


def _lone_surrogate(body: bytes) -> bool:
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        return True
    except ValueError:
        pass  # not JSON at all: the argument parser answers that
    return False


class _Parser(FlaskParser):
    def parse(self, *args: Any, **kwargs: Any) -> Any:
        parsed = super().parse(*args, **kwargs)
        if kwargs.get("location") == "json" and g.get("lone_surrogate"):
            raise BadRequest(LONE_SURROGATE)
        return parsed


class Blueprint(flask_smorest.Blueprint):
    """flask-smorest's Blueprint whose `arguments` parse with the parser above, and declare
    for a JSON body the 415 that refuse_bodies_not_json answers. Its views read their JSON
    bodies through `blp.arguments` only (never request.get_json), so that the parser sees
    every body refuse_lone_surrogates let through."""

    ARGUMENTS_PARSER = _Parser()

    def arguments(self, schema: Any, *, location: str = "json", **kwargs: Any) -> Any:
        parse = super().arguments(schema, location=location, **kwargs)
        if location != "json":
            return parse
        declare = self.alt_response(415, response=HTTPStatus(415).name)
        return lambda view: declare(parse(view))
