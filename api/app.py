"""The Flask app factory: `create_app(config)` builds the whole API with its own store."""

from flask import Flask

from api import attempts, guards, jobs, limits, metrics, ops, session, streams, tokens, web, workers
from api.errors import JobyardApi, register_error_handlers
from api.extensions import Services
from api.token_cache import TokenCache
from shared.config import Config
from shared.store import Store, connect


def create_app(config: Config | None = None, store: Store | None = None) -> Flask:
    config = config or Config.from_env()
    # No static route of the app's own: the dashboard's blueprint serves /static.
    app = Flask("jobyard", static_folder=None)
    app.config.update(
        API_TITLE="jobyard",
        API_VERSION="v1",
        OPENAPI_VERSION="3.0.3",
        OPENAPI_URL_PREFIX="/",
        OPENAPI_JSON_PATH="api/v1/openapi.json",
        OPENAPI_SWAGGER_UI_PATH="docs",
        OPENAPI_SWAGGER_UI_URL=web.SWAGGER_UI_URL,
        # Swagger UI would otherwise ask validator.swagger.io about the document.
        OPENAPI_SWAGGER_UI_CONFIG={"validatorUrl": "none"},
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
    app.register_blueprint(session.blp)
    app.register_blueprint(web.blp)
    metrics.install(app)  # first: every request is counted, refused ones too
    limits.install(app)  # before the guards: a refused caller costs no body reading
    guards.install(app)
    register_error_handlers(app)
    return app
