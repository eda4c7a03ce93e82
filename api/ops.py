"""Operations: liveness, readiness, Prometheus metrics (api/metrics.py) and cluster stats."""

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response
from flask.views import MethodView

from api import metrics as api_metrics
from api.auth import authenticate, current, require
from api.cluster import cluster_stats
from api.errors import Forbidden, documents_errors, error_response
from api.extensions import services
from api.guards import Blueprint
from shared.schemas.jobs import StatsHistorySchema, StatsSchema

probes = FlaskBlueprint("probes", __name__)
blp = Blueprint("stats", __name__, url_prefix="/api/v1/stats", description="Cluster figures")


@probes.get("/healthz")
def healthz() -> Any:
    return {"status": "ok"}


@probes.get("/readyz")
def readyz() -> Any:
    try:
        services().store.redis.ping()
    except Exception:  # any failure to reach Redis means not ready
        return error_response(503, "unavailable", "Redis is unreachable")
    return {"status": "ready"}


@blp.route("")
class Stats(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.response(200, StatsSchema)
    def get(self) -> Any:
        """Job counts and queue depth (a user's own; every owner's for an admin), and the
        cluster's workers, capacity and reservation."""
        principal = current()
        return cluster_stats(services().store, None if principal.is_admin else principal.name)


@blp.route("/history")
class StatsHistory(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.response(200, StatsHistorySchema)
    def get(self) -> Any:
        """The last hour a minute at a time: jobs finished per state, and the queue depth.
        The whole pool's figures (counts only, no job), for the dashboard's charts."""
        return {"minutes": services().store.history.minutes()}


@probes.get("/metrics")
def metrics() -> Response:
    # The figures describe every owner's jobs and the whole cluster: an admin's to read,
    # unless the operator opened them to a scraper that holds no token.
    if not services().config.public_metrics:
        principal = authenticate()
        if not principal.is_admin:
            raise Forbidden(f"a {principal.role} token cannot read the metrics")
    body, content_type = api_metrics.render(services().store)
    return Response(body, content_type=content_type)
