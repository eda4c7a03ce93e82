"""The Flask app factory: `create_app(config)` builds the whole API with its own store."""

import json
import re

from flask import Flask, request
from werkzeug.exceptions import BadRequest

from api import attempts, jobs, ops, streams, tokens, workers
from api.errors import JobyardApi, register_error_handlers
from api.extensions import Services
from api.token_cache import TokenCache
from shared.config import Config
from shared.store import Store, connect


def create_app(config: Config | None = None, store: Store | None = None) -> Flask:
    config = config or Config.from_env()
    app = Flask("jobyard")
    app.config.update(
        API_TITLE="jobyard",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="api/v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL="https://cdn.jsdelivr.net/npm/swagger-ui-dist/",
        MAX_CONTENT_LENGTH=config.max_request_bytes,
        JSON_SORT_KEYS=False,
    )
    if store is None:
        store = Store(connect(config.redis_url), config.redis_prefix)
    cache = TokenCache(store.tokens.lookup_hash, record_use=store.tokens.used)
    app.extensions["jobyard"] = Services(config, store, cache)
    api = JobyardApi(app)
    for blueprint in (jobs.blp, attempts.blp, workers.blp, ops.blp, streams.blp, tokens.blp):
        api.register_blueprint(blueprint)
    app.register_blueprint(ops.probes)
    app.before_request(_refuse_cut_bodies)
    app.before_request(_refuse_lone_surrogates)
    register_error_handlers(app)
    return app


def _refuse_cut_bodies() -> None:
    """A client that dies mid-request leaves a body shorter than its Content-Length, which
    gevent's server hands over as if whole (it sets wsgi.input_terminated); parsed, an empty
    body would mean "all defaults". Found by the chaos soak: an agent killed while posting
    a result failed its job with no exit code."""
    expected = request.content_length
    if expected and len(request.get_data(cache=True)) < expected:
        raise BadRequest(f"the request body ended before its {expected} bytes")


# A \uD800-\uDFFF escape: a UTF-16 surrogate, which JSON text may spell but no Unicode
# string holds alone. Only a body with one is parsed here; most have none.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F][0-9a-fA-F]{2}")


def _refuse_lone_surrogates() -> None:
    """A string with half a surrogate pair cannot be encoded to UTF-8: Redis's Lua JSON
    refused it and the API answered 500 (found by schemathesis). Pairs (an emoji as
    Python's json.dumps writes it) are whole characters and welcome."""
    body = request.get_data(cache=True)
    if not request.is_json or not _SURROGATE_ESCAPE.search(body):
        return
    try:
        json.dumps(json.loads(body), ensure_ascii=False).encode()
    except UnicodeEncodeError:
        raise BadRequest("the request body has a string with a lone UTF-16 surrogate") from None
    except ValueError:
        return  # not JSON at all: the argument parser answers that
