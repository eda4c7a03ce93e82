"""The cluster's figures, as GET /api/v1/stats and /metrics both report them."""

from typing import Any

from shared.resources import Resources
from shared.store import Store


def cluster_stats(store: Store, owner: str | None = None) -> dict[str, Any]:
    """The cluster's figures; the job counts and queue depth are `owner`'s alone when given
    (a user's stats), every owner's when None."""
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
