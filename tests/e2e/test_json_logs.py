"""JOBYARD_LOG_FORMAT=json in real processes: every line the api (gunicorn's own lines
included) and the scheduler write is one JSON object."""

import json
from pathlib import Path
from typing import Any

from tests.e2e.cluster import Cluster
from tests.helpers import wait_until


def json_lines(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_the_api_and_the_scheduler_log_one_json_object_a_line(
    redis_url: str, tmp_path: Path
) -> None:
    cluster = Cluster(redis_url, tmp_path, {"JOBYARD_LOG_FORMAT": "json"})
    try:
        cluster.start_control_plane()

        def scheduler_started() -> bool:
            return any(
                entry.get("event") == "scheduler_started"
                for entry in json_lines(tmp_path / "scheduler.log")
            )

        wait_until(scheduler_started, 20, 0.1, cluster.logs)
    finally:
        cluster.stop()
    api = json_lines(tmp_path / "api.log")  # every line parses, or this raises
    assert any(e["logger"] == "gunicorn.error" and "Listening at" in e["message"] for e in api)
    scheduler = json_lines(tmp_path / "scheduler.log")
    started = next(e for e in scheduler if e.get("event") == "scheduler_started")
    assert started["logger"] == "jobyard.scheduler" and started["level"] == "info"
    assert started["policy"] == "binpack"
