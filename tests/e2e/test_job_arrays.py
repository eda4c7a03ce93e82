"""Job arrays through the real `jobyard` command and real processes (api under gunicorn,
scheduler, an agent running the jobs in Docker, redis-server): `submit --array`, `jobs
--label array=ID` and `cancel --array`."""

import json
import subprocess

from shared.batches import ARRAY_ID_ENV, ARRAY_INDEX_ENV
from tests.e2e.cluster import ADMIN_TOKEN, JOBYARD, TERMINAL, Cluster


def jobyard(cluster: Cluster, *args: str) -> subprocess.CompletedProcess[str]:
    env = {**cluster.env, "JOBYARD_TOKEN": ADMIN_TOKEN}
    done = subprocess.run(
        [JOBYARD, *args], env=env, capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    return done


def members(cluster: Cluster, array_id: str) -> list[dict]:
    listed = json.loads(jobyard(cluster, "jobs", "--label", f"array={array_id}", "--json").stdout)
    jobs: list[dict] = listed["jobs"]
    return jobs


def test_an_array_runs_each_job_with_its_index(cluster: Cluster) -> None:
    script = f'echo "${ARRAY_INDEX_ENV} ${ARRAY_ID_ENV}"'
    submitted = jobyard(
        cluster, "submit", "--array", "5", "--memory", "32", "--", "sh", "-c", script
    )
    array_id = submitted.stdout.strip()
    assert array_id and "5 jobs submitted" in submitted.stderr
    jobs = members(cluster, array_id)
    assert len(jobs) == 5
    indexes = sorted(int(job["labels"]["array_index"]) for job in jobs)
    assert indexes == [0, 1, 2, 3, 4]
    for job in jobs:
        assert job["labels"]["array"] == array_id
        ended = cluster.wait_for_state(job["id"], TERMINAL)
        assert ended["state"] == "COMPLETED", ended
        output = "".join(c["data"] for c in cluster.client.output(job["id"])["chunks"])
        assert output == f"{job['labels']['array_index']} {array_id}\n"


def test_cancel_array_cancels_the_unfinished_jobs_only(cluster: Cluster) -> None:
    finished = jobyard(cluster, "submit", "--array", "2", "--memory", "32", "--", "true")
    done_id = finished.stdout.strip()
    for job in members(cluster, done_id):
        cluster.wait_for_state(job["id"], TERMINAL)
    # More sleepers than the agent's 4 slots (JOBYARD_MAX_PARALLEL_JOBS): some wait queued.
    sleeping = jobyard(cluster, "submit", "--array", "6", "--memory", "32", "--", "sleep", "60")
    array_id = sleeping.stdout.strip()
    answer = jobyard(cluster, "cancel", "--array", array_id)
    assert f"array {array_id}: cancel asked of 6 jobs" in answer.stdout
    for job in members(cluster, array_id):
        ended = cluster.wait_for_state(job["id"], TERMINAL, timeout_s=30)
        assert ended["state"] == "CANCELLED", ended
    # The other array's jobs had ended: nothing of theirs changed.
    assert {job["state"] for job in members(cluster, done_id)} == {"COMPLETED"}
    again = jobyard(cluster, "cancel", "--array", done_id)
    assert f"array {done_id}: cancel asked of 0 jobs" in again.stdout
