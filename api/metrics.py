"""/metrics in the Prometheus text format, through prometheus-client.

Two kinds of figures:
- the cluster's, read from Redis at each scrape (StoreCollector): jobs by state, queue depth,
  workers by status, capacity and reservation, output bytes stored, and the latency
  histograms the Lua transitions observe (placement, dispatch, run time by outcome), so the
  scheduler's placements reach /metrics through Redis and no process's restart loses them;
- each API process's own: HTTP requests by route and status and their duration, Redis
  errors. Under gunicorn these are kept in prometheus-client's multiprocess mode (files in
  PROMETHEUS_MULTIPROC_DIR, which `jobyard api` sets up: cli/gunicorn_app.py), so a scrape
  answered by any process sums every process.

Names carry base units (seconds, bytes), as Prometheus's naming rules ask.
"""

import os
import time
from collections.abc import Iterator
from typing import Any

from flask import Flask, g, request
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import REGISTRY, Collector

from api.cluster import cluster_stats
from shared.latency import RUN_OUTCOMES
from shared.store import Store
from shared.store.metrics import Histogram as StoredHistogram

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
MB = 1024 * 1024

HTTP_REQUESTS = Counter(
    "jobyard_http_requests_total",
    "HTTP requests answered by the API, by route (the URL rule), method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "jobyard_http_request_duration_seconds",
    "Time the API took to answer a request, by route and method (a stream: until its start)",
    ["route", "method"],
)
REDIS_ERRORS = Counter(
    "jobyard_redis_errors_total", "Requests the API answered 503 because Redis failed"
)


def install(app: Flask) -> None:
    """Count and time every request."""

    @app.before_request
    def started() -> None:
        g.metrics_started = time.perf_counter()

    @app.after_request
    def answered(response: Any) -> Any:
        route = request.url_rule.rule if request.url_rule is not None else "unmatched"
        HTTP_REQUESTS.labels(route, request.method, str(response.status_code)).inc()
        began = g.get("metrics_started")
        if began is not None:
            HTTP_DURATION.labels(route, request.method).observe(time.perf_counter() - began)
        return response


def render(store: Store) -> tuple[bytes, str]:
    """The scrape's body and content type: this API's processes, then the cluster."""
    if os.environ.get(MULTIPROC_ENV):
        processes = CollectorRegistry()
        MultiProcessCollector(processes)
    else:
        processes = REGISTRY  # one process (the test client): its own figures, as they are
    cluster = CollectorRegistry()
    cluster.register(StoreCollector(store))
    return generate_latest(processes) + generate_latest(cluster), CONTENT_TYPE_LATEST


class StoreCollector(Collector):
    def __init__(self, store: Store) -> None:
        self.store = store

    def collect(self) -> Iterator[Metric]:
        yield from self._cluster()
        yield from self._stored()

    def _cluster(self) -> Iterator[Metric]:
        stats = cluster_stats(self.store)
        jobs = GaugeMetricFamily("jobyard_jobs", "Jobs stored, by state", labels=["state"])
        for state, n in stats["counts"].items():
            jobs.add_metric([state], n)
        yield jobs
        yield GaugeMetricFamily(
            "jobyard_queue_depth", "Jobs QUEUED, waiting to be placed", stats["queue_depth"]
        )
        workers = GaugeMetricFamily("jobyard_workers", "Workers by status", labels=["status"])
        for status, n in sorted(stats["workers"].items()):
            workers.add_metric([status], n)
        yield workers
        # (name, what, field of the stats' capacity and reservation, factor to base units)
        amounts = (
            ("cpu_cores", "CPU cores", "cpu", 1),
            ("memory_bytes", "Memory", "memory_mb", MB),
            ("gpus", "GPUs", "gpus", 1),
        )
        for name, what, field, factor in amounts:
            yield GaugeMetricFamily(
                f"jobyard_capacity_{name}",
                f"{what} offered by alive workers",
                stats["capacity"][field] * factor,
            )
            yield GaugeMetricFamily(
                f"jobyard_reserved_{name}",
                f"{what} reserved by jobs on workers",
                stats["reserved"][field] * factor,
            )

    def _stored(self) -> Iterator[Metric]:
        stored = self.store.metrics.read()
        yield GaugeMetricFamily(
            "jobyard_output_stored_bytes", "Job output kept in Redis", stored.output_bytes
        )
        placement = stored.latency["placement"]
        placements = CounterMetricFamily("jobyard_placements", "Jobs assigned to a worker")
        placements.add_metric([], placement.count)
        yield placements
        yield _histogram(
            "jobyard_placement_latency_seconds",
            "From entering the queue to assignment to a worker",
            [([], placement)],
        )
        yield _histogram(
            "jobyard_dispatch_latency_seconds",
            "From assignment to the job's start on its worker",
            [([], stored.latency["dispatch"])],
        )
        yield _histogram(
            "jobyard_job_run_seconds",
            "From a job's start to its end, by outcome",
            [([outcome], stored.latency[f"run_{outcome}"]) for outcome in RUN_OUTCOMES],
            ["outcome"],
        )


def _histogram(
    name: str,
    documentation: str,
    series: list[tuple[list[str], StoredHistogram]],
    labels: list[str] | None = None,
) -> HistogramMetricFamily:
    family = HistogramMetricFamily(name, documentation, labels=labels or [])
    for values, stored in series:
        family.add_metric(values, stored.cumulative(), stored.sum_s)
    return family
