"""From submit to a final state through real processes: the api under gunicorn, the
scheduler, a worker agent running jobs in Docker, and a real redis-server."""

import json
import socket

import pytest
import requests

from shared.client import ApiError
from tests.e2e.cluster import ADMIN_TOKEN, TERMINAL, Cluster
from tests.helpers import wait_until


def run(cluster: Cluster, command: list[str], **spec: object) -> dict:
    job = cluster.client.submit({"command": command, **spec})
    return cluster.wait_for_state(job["id"], TERMINAL)


def output_of(cluster: Cluster, job_id: str) -> list[tuple[str, str]]:
    chunks = cluster.client.output(job_id)["chunks"]
    return [(c["stream"], c["data"]) for c in chunks]


def test_a_job_writing_both_streams_completes_with_everything_recorded(cluster: Cluster) -> None:
    job = run(
        cluster,
        ["sh", "-c", "echo to-out; echo to-err >&2"],
        resources={"cpu": 0.5, "memory_mb": 64},
    )
    assert (job["state"], job["exit_code"], job["reason"]) == ("COMPLETED", 0, None)
    assert job["attempt"] == 1 and job["version"] == 4 and job["worker_id"]
    for stamp in ("created_at", "queued_at", "assigned_at", "started_at", "finished_at"):
        assert job[stamp], stamp
    assert job["metrics"]["duration_s"] >= 0
    joined = {
        stream: "".join(d for s, d in output_of(cluster, job["id"]) if s == stream)
        for stream in ("stdout", "stderr")
    }
    assert joined == {"stdout": "to-out\n", "stderr": "to-err\n"}
    events = cluster.client.events(job["id"])["events"]
    assert [e["to"] for e in events] == ["QUEUED", "ASSIGNED", "RUNNING", "COMPLETED"]


def test_a_non_zero_exit_fails_with_its_code(cluster: Cluster) -> None:
    job = run(cluster, ["sh", "-c", "exit 3"])
    assert (job["state"], job["reason"], job["exit_code"]) == ("FAILED", "exit_code", 3)


def test_a_job_past_its_memory_limit_is_oom_killed(cluster: Cluster) -> None:
    job = run(
        cluster,
        ["dd", "if=/dev/zero", "of=/dev/null", "bs=64M", "count=1"],
        resources={"cpu": 0.5, "memory_mb": 32},
    )
    assert (job["state"], job["reason"]) == ("FAILED", "oom")


def test_a_missing_image_fails_with_the_daemons_reason(cluster: Cluster) -> None:
    job = run(cluster, ["true"], image="jobyard/does-not-exist:1")
    assert (job["state"], job["reason"]) == ("FAILED", "error")
    assert "does-not-exist" in job["error"]


def test_a_job_bigger_than_any_worker_waits_with_a_reason(cluster: Cluster) -> None:
    job = cluster.client.submit({"command": ["true"], "resources": {"cpu": 4, "memory_mb": 64}})
    cluster.wait_for_state(job["id"], {"QUEUED"})
    wait_until(lambda: cluster.client.job(job["id"])["pending_reason"], timeout=10)
    fetched = cluster.client.job(job["id"])
    assert fetched["state"] == "QUEUED"
    assert "largest worker has 2 CPU, 2048 MB; job needs 4 CPU, 64 MB" in fetched["pending_reason"]
    cluster.client.cancel(job["id"])


def test_many_jobs_run_in_parallel_and_release_every_reservation(cluster: Cluster) -> None:
    ids = [
        cluster.client.submit(
            {"command": ["sh", "-c", f"echo {n}"], "resources": {"cpu": 0.5, "memory_mb": 32}}
        )["id"]
        for n in range(12)
    ]
    finished = [cluster.wait_for_state(job_id, TERMINAL) for job_id in ids]
    assert {job["state"] for job in finished} == {"COMPLETED"}
    worker = cluster.client.workers()["workers"][0]
    assert worker["reserved"] == {"cpu": 0.0, "memory_mb": 0, "gpus": 0, "jobs": 0}


def test_bad_requests_get_json_errors_over_real_http(cluster: Cluster) -> None:
    url = f"{cluster.api_url}/api/v1/jobs"
    auth = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    cases = [
        (requests.post(url, json={"command": "echo hi"}, headers=auth), 422),
        (requests.post(url, json={"command": ["x"], "resources": {"cpu": -1}}, headers=auth), 422),
        (requests.post(url, json={"command": ["x"], "colour": "red"}, headers=auth), 422),
        (requests.post(url, data="{", headers={**auth, "Content-Type": "application/json"}), 400),
        (requests.post(url, json={"command": ["x"]}), 401),
        (requests.get(f"{url}/no-such-job", headers=auth), 404),
    ]
    for response, status in cases:
        assert response.status_code == status, response.text
        assert response.headers["Content-Type"].startswith("application/json")
        assert set(response.json()["error"]) == {"code", "message", "details"}
    with pytest.raises(ApiError) as caught:
        cluster.client.job("no-such-job")
    assert caught.value.status == 404


def test_a_body_cut_short_by_a_dying_client_is_refused_not_read_as_whole(
    cluster: Cluster,
) -> None:
    """gevent hands the app whatever arrived before the client went away; the API must not
    act on a body shorter than its Content-Length (an empty result body once read as
    "failed, no exit code")."""
    body = b'{"command": ["true"], "priority": 5}'
    listed_before = cluster.client.request("GET", "/api/v1/jobs")["counts"]
    host, port = cluster.api_url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        head = (
            "POST /api/v1/jobs HTTP/1.1\r\n"
            f"Host: {host}\r\nAuthorization: Bearer {ADMIN_TOKEN}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body) + 20}\r\n\r\n"
        )
        sock.sendall(head.encode() + body)
        sock.shutdown(socket.SHUT_WR)  # the client is gone before the rest of its body
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    status_line, _, rest = answer.partition(b"\r\n")
    assert b" 400 " in status_line, answer
    assert json.loads(rest.partition(b"\r\n\r\n")[2])["error"]["code"] == "bad_request"
    assert cluster.client.request("GET", "/api/v1/jobs")["counts"] == listed_before
