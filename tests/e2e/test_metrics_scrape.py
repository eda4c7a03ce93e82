"""/metrics from a real `jobyard api` of two gunicorn processes: every process's requests
are in one scrape (prometheus-client's multiprocess mode), and Prometheus's own checker,
`promtool check metrics` (Debian's prometheus package), finds nothing to complain about."""

import subprocess
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.cluster import ADMIN_TOKEN, Cluster
from tests.helpers import require_binary

REQUESTS = 40


def healthz_count(text: str) -> float:
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            if sample.name == "jobyard_http_requests_total" and sample.labels.get(
                "route"
            ) == "/healthz":
                return float(sample.value)
    return 0.0


def test_two_api_processes_scrape_as_one_and_promtool_passes(
    redis_url: str, tmp_path: Path
) -> None:
    promtool = require_binary("promtool", "prometheus")
    cluster = Cluster(redis_url, tmp_path, {"JOBYARD_API_PROCESSES": "2"})
    try:
        cluster.start_control_plane()
        headers = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
        for _ in range(REQUESTS):
            # A new connection each: gunicorn hands them to either process.
            assert requests.get(f"{cluster.api_url}/healthz", timeout=5).status_code == 200
        cluster.client.submit({"command": ["true"]})
        body = requests.get(f"{cluster.api_url}/metrics", headers=headers, timeout=5).text
    finally:
        cluster.stop()
    assert healthz_count(body) == REQUESTS
    checked = subprocess.run(
        [promtool, "check", "metrics"], input=body, capture_output=True, text=True, timeout=30
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert checked.stdout + checked.stderr == ""  # no lint warning either
    assert "jobyard_placement_latency_seconds_bucket" in body
