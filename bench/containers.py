"""Short container jobs against `docker run`, through real processes (`jobyard api`,
`scheduler` and `worker` with the Docker executor and its 4 slots, the busybox test image):

(a) `jobyard submit --follow -- true`, the whole command's wall time, paired with
    `docker run --rm --network none IMAGE true` run just after it;
(b) for the same jobs, submission to result on the server's clock (the job's created_at to
    its finished_at) against the same `docker run`;
(c) many `true` jobs at once, submitted in one batch, to the last one done, against the same
    number of `docker run --rm` with 4 at a time.
"""

import os
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from datetime import datetime
from pathlib import Path
from typing import Any

from bench.output import IMAGE, RESOURCES, Cluster, cluster
from bench.report import BenchResult, Row
from bench.servers import redis_server
from bench.stats import median, ratio
from bench.throughput import finished

JOBYARD = str(Path(sys.executable).parent / "jobyard")
SLOTS = 4  # the agent's default JOBYARD_MAX_PARALLEL_JOBS
DOCKER_RUN = ["docker", "run", "--rm", "--network", "none", IMAGE, "true"]
# (c)'s jobs: small enough that all SLOTS fit on a worker of one core, as the 4 parallel
# `docker run` do. (With RESOURCES' whole core each, a 2-core worker ran only 2 at a time.)
SLOT_RESOURCES = {**RESOURCES, "cpu": 1 / SLOTS}
TARGET_FOLLOW, TARGET_SERVER, TARGET_SLOTS = 1.3, 1.1, 0.9


@dataclass(frozen=True)
class Sizes:
    pairs: int  # (a) and (b): submit --follow, then docker run, this many times
    jobs: int  # (c) per run
    runs: int  # (c)


FULL = Sizes(pairs=15, jobs=40, runs=3)
QUICK = replace(FULL, pairs=3, jobs=8, runs=1)


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    with redis_server(workdir / "redis", durable=True) as server, cluster(server, workdir) as c:
        env = {**os.environ, "JOBYARD_API_URL": c.client.base_url, "JOBYARD_TOKEN": c.client.token}
        timed_run(DOCKER_RUN)  # the image's first start warms Docker's caches for both
        follow(c, env)
        progress(f"containers: {sizes.pairs} pairs of submit --follow and docker run")
        pairs = [(follow(c, env), timed_run(DOCKER_RUN)) for _ in range(sizes.pairs)]
        startups = [startup() for _ in range(sizes.pairs)]
        progress(f"containers: {sizes.jobs} jobs on {SLOTS} slots, against docker run")
        slots = [
            (batch_run(c, server.url, sizes.jobs), parallel_docker(sizes.jobs))
            for _ in range(sizes.runs)
        ]
    figures = summarize(pairs, slots) | {"startup_s": median(startups)}
    result = BenchResult("containers", asdict(sizes), figures)
    result.rows = rows(sizes, figures)
    return result


def timed_run(command: list[str], env: dict[str, str] | None = None) -> float:
    started = time.perf_counter()
    subprocess.run(command, env=env, check=True, capture_output=True)
    return time.perf_counter() - started


def follow(c: Cluster, env: dict[str, str]) -> dict[str, float]:
    """The wall time of `jobyard submit --follow -- true`, and the job's own submission to
    result on the server's clock (the newest job: nothing else submits meanwhile)."""
    command = [JOBYARD, "submit", "--follow", "--cpu", str(RESOURCES["cpu"]), "--", "true"]
    wall = timed_run(command, env)
    (job,) = c.client.jobs(limit=1)["jobs"]
    return {"wall_s": wall, "server_s": seconds_between(job["created_at"], job["finished_at"])}


def seconds_between(first: str, last: str) -> float:
    return (datetime.fromisoformat(last) - datetime.fromisoformat(first)).total_seconds()


def batch_run(c: Cluster, redis_url: str, count: int) -> float:
    """Jobs a second: `count` jobs submitted in one batch, to the last one COMPLETED (read
    off Redis's state index, so that watching costs the API nothing)."""
    done_before = finished(redis_url)
    started = time.perf_counter()
    spec = {"image": IMAGE, "command": ["true"], "resources": SLOT_RESOURCES}
    c.client.submit_batch([spec] * count)
    while finished(redis_url) - done_before < count:
        time.sleep(0.01)
    return count / (time.perf_counter() - started)


def startup() -> float:
    """What the command pays before its first request: Python, and the modules it imports."""
    return timed_run([sys.executable, "-c", "import cli.main, cli.jobs, shared.client"])


def parallel_docker(count: int) -> float:
    started = time.perf_counter()
    with ThreadPoolExecutor(SLOTS) as pool:
        list(pool.map(lambda _: timed_run(DOCKER_RUN), range(count)))
    return count / (time.perf_counter() - started)


def summarize(
    pairs: list[tuple[dict[str, float], float]], slots: list[tuple[float, float]]
) -> dict[str, Any]:
    return {
        "follow_wall_s": median([ours["wall_s"] for ours, _ in pairs]),
        "server_s": median([ours["server_s"] for ours, _ in pairs]),
        "docker_run_s": median([theirs for _, theirs in pairs]),
        "follow_ratio": median([ours["wall_s"] / theirs for ours, theirs in pairs]),
        "server_ratio": median([ours["server_s"] / theirs for ours, theirs in pairs]),
        "slots_per_s": median([ours for ours, _ in slots]),
        "docker_parallel_per_s": median([theirs for _, theirs in slots]),
        "pairs": pairs,
        "slot_runs": slots,
    }


def rows(sizes: Sizes, f: dict[str, Any]) -> list[Row]:
    return [
        Row("containers", "`jobyard submit --follow -- true`, wall time",
            f"{f['follow_wall_s']:.2f} s", f"≤ {TARGET_FOLLOW:g}x",
            f"docker run --rm --network none {f['docker_run_s']:.2f} s",
            f"{f['follow_ratio']:.2f}x"),
        Row("containers", "the same job, submission to result on the server's clock",
            f"{f['server_s']:.2f} s", f"≤ {TARGET_SERVER:g}x",
            f"docker run --rm {f['docker_run_s']:.2f} s", f"{f['server_ratio']:.2f}x"),
        Row("containers", "of the command's wall time, Python and its imports",
            f"{f['startup_s']:.2f} s"),
        Row("containers", f"{sizes.jobs} `true` jobs on one agent's {SLOTS} slots",
            f"{f['slots_per_s']:.1f}/s", f"≥ {TARGET_SLOTS:g}x",
            f"{SLOTS} docker run at a time {f['docker_parallel_per_s']:.1f}/s",
            f"{ratio(f['slots_per_s'], f['docker_parallel_per_s']):.2f}x"),
    ]  # fmt: skip


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
