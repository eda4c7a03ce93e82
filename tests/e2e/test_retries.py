"""Automatic retries through real processes: the api, the scheduler (whose reaper promotes
a job once its backoff has passed), one agent running jobs in Docker and one running them
as plain processes, and a real redis-server."""

import shlex
import shutil
import tempfile
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from shared.client import ApiError
from tests.e2e.cluster import TERMINAL, Cluster, ClusterSpec

DOCKER = {"runs": "docker"}
PROCESS = {"runs": "process"}
CLUSTER = ClusterSpec(
    env={
        "JOBYARD_REDIS_PREFIX": "retries:",
        "JOBYARD_RETRY_BACKOFF_S": "0.5",
        "JOBYARD_RETRY_BACKOFF_MAX_S": "1",
    },
    agents=(
        {"JOBYARD_WORKER_LABELS": "runs=docker"},
        {"JOBYARD_EXECUTOR": "process", "JOBYARD_WORKER_LABELS": "runs=process"},
    ),
)


def test_a_job_that_always_fails_runs_once_per_retry_then_fails(cluster: Cluster) -> None:
    job = cluster.client.submit(
        {"command": ["sh", "-c", "echo try; exit 3"], "max_retries": 2, "constraints": DOCKER}
    )
    job = cluster.wait_for_state(job["id"], TERMINAL)
    assert (job["state"], job["reason"], job["exit_code"]) == ("FAILED", "exit_code", 3)
    assert (job["retries"], job["max_retries"], job["attempt"]) == (2, 2, 3)
    events = cluster.client.events(job["id"])["events"]
    assert [(e["to"], e["reason"], e["attempt"]) for e in events] == [
        ("QUEUED", None, 0),
        ("ASSIGNED", None, 1),
        ("RUNNING", None, 1),
        ("QUEUED", "exit_code", 1),
        ("ASSIGNED", None, 2),
        ("RUNNING", None, 2),
        ("QUEUED", "exit_code", 2),
        ("ASSIGNED", None, 3),
        ("RUNNING", None, 3),
        ("FAILED", "exit_code", 3),
    ]
    # Each retry waited out its backoff (0.5 s, then 1 s) before it was placed again.
    at = {(e["to"], e["attempt"]): datetime.fromisoformat(e["at"]) for e in events}
    assert (at["ASSIGNED", 2] - at["QUEUED", 1]).total_seconds() >= 0.5
    assert (at["ASSIGNED", 3] - at["QUEUED", 2]).total_seconds() >= 1.0
    chunks = cluster.client.output(job["id"])["chunks"]
    assert [c["data"] for c in chunks] == ["try\n"] * 3

    cluster.client.delete_job(job["id"])
    for call in (cluster.client.job, cluster.client.events, cluster.client.delete_job):
        with pytest.raises(ApiError) as gone:
            call(job["id"])
        assert gone.value.status == 404


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory every user may write: an agent running as root runs jobs as nobody, who
    can reach /tmp but not pytest's tmp_path (under root's own 0700 directory)."""
    path = Path(tempfile.mkdtemp(prefix="jobyard-retries-"))
    path.chmod(0o777)
    yield path
    shutil.rmtree(path)


def test_a_job_that_fails_once_then_succeeds_completes(cluster: Cluster, shared_dir: Path) -> None:
    # Containers share nothing between attempts; plain processes share the host's files.
    marker = shlex.quote(str(shared_dir / "ran-before"))
    script = f"if [ -e {marker} ]; then echo second; else touch {marker}; exit 7; fi"
    job = cluster.client.submit(
        {"command": ["sh", "-c", script], "max_retries": 3, "constraints": PROCESS}
    )
    job = cluster.wait_for_state(job["id"], TERMINAL)
    assert (job["state"], job["exit_code"], job["reason"]) == ("COMPLETED", 0, None)
    assert (job["retries"], job["attempt"]) == (1, 2)
    events = cluster.client.events(job["id"])["events"]
    assert [(e["to"], e["reason"]) for e in events if e["from"] == "RUNNING"] == [
        ("QUEUED", "exit_code"),
        ("COMPLETED", None),
    ]
    chunks = cluster.client.output(job["id"])["chunks"]
    assert [c["data"] for c in chunks] == ["second\n"]
