"""/metrics through Flask's test client on a real redis-server: the cluster's figures in base
units, the latency histograms the Lua transitions observe (placement, dispatch, run time by
outcome), the output bytes stored, and the API's own request counts; HELP and TYPE for every
family, parsed by prometheus-client's own parser."""

import json
import re
from pathlib import Path
from typing import Any

import pytest
from flask.testing import FlaskClient
from prometheus_client.parser import text_string_to_metric_families

from api.app import create_app
from shared.config import Config
from shared.latency import LATENCY_BUCKETS_S
from shared.store import Store, connect
from shared.store.jobs import Backoff
from tests.helpers import free_port
from tests.store_support import ManualClock, assign, register, submit

ROOT = Path(__file__).resolve().parents[2]
ADMIN = {"Authorization": "Bearer admin-token"}
CONFIG = Config.from_env({}, admin_token="admin-token", worker_join_token="join-token")


@pytest.fixture
def client(store: Store) -> FlaskClient:
    return create_app(CONFIG, store).test_client()


def scrape(client: FlaskClient) -> dict[str, Any]:
    response = client.get("/metrics", headers=ADMIN)
    assert response.status_code == 200
    assert response.mimetype == "text/plain"
    text = response.get_data(as_text=True)
    families = {family.name: family for family in text_string_to_metric_families(text)}
    for name in families:
        assert f"# HELP {name}" in text and f"# TYPE {name}" in text, name
    return families


def value(families: dict[str, Any], name: str, sample: str | None = None, **labels: str) -> float:
    family = families[name]
    wanted = sample or name
    for found in family.samples:
        if found.name == wanted and all(found.labels.get(k) == v for k, v in labels.items()):
            return float(found.value)
    raise AssertionError(f"no sample {wanted} {labels} in {family.samples}")


def test_a_jobs_life_is_in_the_histograms_and_the_gauges(
    client: FlaskClient, store: Store, clock: ManualClock
) -> None:
    register(store, "w1", cpu_m=2000, memory_mb=1024)
    submit(store, "j1", cpu_m=500, memory_mb=256)
    clock.advance(0.3)  # queued for 0.3 s
    assert assign(store, "j1", "w1") == [1]
    families = scrape(client)
    assert value(families, "jobyard_reserved_cpu_cores") == 0.5
    assert value(families, "jobyard_reserved_memory_bytes") == 256 * 1024 * 1024
    assert value(families, "jobyard_capacity_memory_bytes") == 1024 * 1024 * 1024
    assert value(families, "jobyard_jobs", state="ASSIGNED") == 1
    assert value(families, "jobyard_workers", status="alive") == 1

    clock.advance(2.0)  # 2 s from assignment to start
    store.jobs.start("j1", "w1", 1)
    chunk = {"seq": 1, "stream": "stdout", "at": clock(), "data": "hello\n"}
    store.jobs.append_output("j1", "w1", 1, [chunk], CONFIG.max_output_bytes)
    clock.advance(40.0)  # runs 40 s
    store.jobs.finish("j1", "w1", 1, exit_code=0, reason=None, error=None, metrics={},
                      backoff=Backoff(0.0, 0.0))  # fmt: skip
    families = scrape(client)

    assert value(families, "jobyard_placements", "jobyard_placements_total") == 1
    latency = "jobyard_placement_latency_seconds"
    assert value(families, latency, f"{latency}_count") == 1
    assert value(families, latency, f"{latency}_sum") == pytest.approx(0.3)
    assert value(families, latency, f"{latency}_bucket", le="0.25") == 0
    assert value(families, latency, f"{latency}_bucket", le="0.5") == 1
    assert value(families, latency, f"{latency}_bucket", le="+Inf") == 1
    dispatch = "jobyard_dispatch_latency_seconds"
    assert value(families, dispatch, f"{dispatch}_sum") == pytest.approx(2.0)
    run = "jobyard_job_run_seconds"
    assert value(families, run, f"{run}_count", outcome="COMPLETED") == 1
    assert value(families, run, f"{run}_bucket", outcome="COMPLETED", le="30.0") == 0
    assert value(families, run, f"{run}_bucket", outcome="COMPLETED", le="60.0") == 1
    assert value(families, run, f"{run}_count", outcome="FAILED") == 0
    assert len(families[run].samples) == 3 * (len(LATENCY_BUCKETS_S) + 3)
    assert value(families, "jobyard_output_stored_bytes") == len("hello\n")
    assert value(families, "jobyard_reserved_cpu_cores") == 0

    store.jobs.delete("j1")
    assert value(scrape(client), "jobyard_output_stored_bytes") == 0


def test_the_apis_requests_are_counted_by_route_and_status(client: FlaskClient) -> None:
    for _ in range(3):
        assert client.get("/api/v1/jobs/nope", headers=ADMIN).status_code == 404
    families = scrape(client)
    requests = "jobyard_http_requests"
    route = "/api/v1/jobs/<string:job_id>"
    assert value(families, requests, f"{requests}_total", route=route, status="404") >= 3
    duration = "jobyard_http_request_duration_seconds"
    assert value(families, duration, f"{duration}_count", route=route, method="GET") >= 3


def test_a_redis_failure_is_counted(client: FlaskClient) -> None:
    before = value(scrape(client), "jobyard_redis_errors", "jobyard_redis_errors_total")
    # Another app of this process on a Redis that is not there: the counter is the process's.
    dead = Store(connect(f"redis://127.0.0.1:{free_port()}/0"), "t:")
    response = create_app(CONFIG, dead).test_client().get("/api/v1/jobs", headers=ADMIN)
    assert response.status_code == 503
    after = value(scrape(client), "jobyard_redis_errors", "jobyard_redis_errors_total")
    assert after == before + 1


def test_every_query_of_the_grafana_dashboard_names_a_series_metrics_serves(
    client: FlaskClient, store: Store
) -> None:
    register(store, "w1")  # a series per status once there are workers
    dashboard = json.loads((ROOT / "deploy" / "grafana-dashboard.json").read_text())
    queries = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    client.get("/healthz")  # so that the request counters have a series
    families = scrape(client)
    served = {sample.name for family in families.values() for sample in family.samples}
    named = {name for query in queries for name in re.findall(r"\bjobyard_\w+", query)}
    assert named - served == set(), "the dashboard asks for series /metrics does not serve"
    assert len(named) >= 15 and set(families) >= {"jobyard_http_requests", "jobyard_jobs"}
