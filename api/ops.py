"""Operations: liveness, readiness, Prometheus metrics and cluster stats."""

from typing import Any

from flask import Blueprint as FlaskBlueprint
from flask import Response
from flask.views import MethodView

from api.auth import authenticate, current, require
from api.errors import Forbidden, documents_errors, error_response
from api.extensions import services
from api.guards import Blueprint
from shared.resources import Resources
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


def cluster_stats(owner: str | None = None) -> dict[str, Any]:
    """The cluster's figures; the job counts and queue depth are `owner`'s alone when given
    (a user's stats), every owner's when None."""
    store = services().store
    workers = store.workers.all()
    capacity = sum(
        (_res(w["capacity"]) for w in workers if w["status"] == "alive"), Resources(0, 0)
    )
    reserved = sum((_res(w["reserved"]) for w in workers), Resources(0, 0))
    by_status: dict[str, int] = {}
    for worker in workers:
        by_status[worker["status"]] = by_status.get(worker["status"], 0) + 1
    counts = store.jobs.counts(owner)
    return {
        "counts": counts,
        "queue_depth": counts["QUEUED"],
        "workers": by_status,
        "capacity": capacity.to_wire(),
        "reserved": reserved.to_wire(),
    }


def _res(wire: dict[str, Any]) -> Resources:
    return Resources(round(wire["cpu"] * 1000), int(wire["memory_mb"]), int(wire.get("gpus", 0)))


@blp.route("")
class Stats(MethodView):
    @require("admin", "user")
    @documents_errors(blp, 401, 403, 503)
    @blp.response(200, StatsSchema)
    def get(self) -> Any:
        """Job counts and queue depth (a user's own; every owner's for an admin), and the
        cluster's workers, capacity and reservation."""
        principal = current()
        return cluster_stats(None if principal.is_admin else principal.name)


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
    stats = cluster_stats()
    lines = ["# TYPE jobyard_jobs gauge"]
    lines += [f'jobyard_jobs{{state="{s}"}} {n}' for s, n in stats["counts"].items()]
    lines.append("# TYPE jobyard_workers gauge")
    lines += [f'jobyard_workers{{status="{s}"}} {n}' for s, n in stats["workers"].items()]
    lines.append("# TYPE jobyard_capacity_cpu gauge")
    lines.append(f"jobyard_capacity_cpu {stats['capacity']['cpu']}")
    lines.append(f"jobyard_reserved_cpu {stats['reserved']['cpu']}")
    lines.append(f"jobyard_capacity_memory_mb {stats['capacity']['memory_mb']}")
    lines.append(f"jobyard_reserved_memory_mb {stats['reserved']['memory_mb']}")
    return Response("\n".join(lines) + "\n", mimetype="text/plain; version=0.0.4")
