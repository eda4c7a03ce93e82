"""End-to-end throughput of trivial jobs: from the first submission to the last job done,
through jobyard's whole path (HTTP submit, placement, dispatch, start, result) with two
simulated worker processes that run nothing (bench/throughput_worker.py), beside the task
queues people use instead, on the same redis-server in the same run, rounds interleaved:

- jobyard, batch submissions (POST /jobs/batch) and batch reports (POST /workers/{id}/updates),
  against RQ with 2 SimpleWorkers fed by Queue.enqueue_many, RQ's forking Worker (2) and
  Celery (Redis broker, prefork, concurrency 2);
- jobyard through the per-job endpoints, against RQ's enqueue one job at a time.

Also what storing finished jobs costs: Redis bytes per finished job, and the api's and the
scheduler's memory with every job of the run kept.
"""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import redis

from bench.lean_client import LeanClient
from bench.report import BenchResult, Row
from bench.servers import Cluster, JobyardProcess, cluster, redis_server, rss_bytes
from bench.stats import median, ratio
from shared.batches import MAX_BATCH
from shared.states import JobState
from shared.store import Store, connect

BIN = Path(sys.executable).parent
JOB = {"command": ["true"], "resources": {"cpu": 0.1, "memory_mb": 64}}
WORKERS = 2
SUBMITTERS = 4  # threads submitting one job at a time, for the per-job runs on both sides
RQ_DB, CELERY_DB = 1, 2  # jobyard keeps database 0
DONE_TIMEOUT_S = 300.0
TARGET_VS_RQ = 2.5


@dataclass(frozen=True)
class Sizes:
    jobs: int  # per run: jobyard batch, RQ SimpleWorker, Celery
    per_job_jobs: int  # per run: jobyard per-job, RQ enqueue one at a time
    forking_jobs: int  # per run: RQ's forking Worker, a fork per job
    runs: int
    stored: int  # finished jobs stored when memory is measured (the rounds', then more)
    agent_jobs: int  # run by a real agent (process executor) before its memory is read


FULL = Sizes(
    jobs=20_000, per_job_jobs=5_000, forking_jobs=1_000, runs=3, stored=100_000, agent_jobs=500
)
QUICK = replace(
    FULL, jobs=2_000, per_job_jobs=500, forking_jobs=200, runs=1, stored=5_000, agent_jobs=50
)


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    rates: dict[str, list[float]] = {name: [] for name in SYSTEMS}
    memory: dict[str, float] = {}
    with redis_server(workdir / "redis") as server, cluster(server, workdir) as jobyard:
        peers = Peers(server.url, workdir)
        for n in range(sizes.runs):
            progress(f"throughput: round {n + 1}/{sizes.runs}")
            used_before = used_memory(server.url)
            rates["jobyard_batch"].append(
                jobyard_run(jobyard, server.url, "batch", sizes.jobs, workdir)
            )
            memory["redis_bytes_per_finished_job"] = (
                used_memory(server.url) - used_before
            ) / sizes.jobs
            rates["rq_simple"].append(peers.rq("rq.worker.SimpleWorker", sizes.jobs, bulk=True))
            rates["celery"].append(peers.celery(sizes.jobs))
            rates["rq_forking"].append(peers.rq("rq.worker.Worker", sizes.forking_jobs, bulk=True))
            rates["jobyard_per_job"].append(
                jobyard_run(jobyard, server.url, "per-job", sizes.per_job_jobs, workdir)
            )
            rates["rq_enqueue"].append(
                peers.rq("rq.worker.SimpleWorker", sizes.per_job_jobs, bulk=False)
            )
        if (more := sizes.stored - finished(server.url)) > 0:
            progress(f"throughput: {more:,} more jobs, to {sizes.stored:,} stored")
            jobyard_run(jobyard, server.url, "batch", more, workdir)
        agent_rss = real_agent_rss(jobyard, server.url, sizes.agent_jobs, workdir)
        memory |= rss_mb(jobyard) | {"finished_jobs": finished(server.url)}
        memory |= {"agent_rss_mb": agent_rss / 2**20, "agent_jobs": sizes.agent_jobs}
    figures: dict[str, Any] = {f"{name}_per_s": median(r) for name, r in rates.items()}
    figures |= {"runs": rates, "memory": memory}
    result = BenchResult(name="throughput", sizes=asdict(sizes), figures=figures)
    result.rows = rows(figures)
    return result


SYSTEMS = ("jobyard_batch", "rq_simple", "celery", "rq_forking", "jobyard_per_job", "rq_enqueue")


# jobyard


def jobyard_run(jobyard: Cluster, redis_url: str, mode: str, count: int, workdir: Path) -> float:
    """Jobs a second, from the first submission to the last job COMPLETED."""
    with worker_processes(jobyard, mode, workdir):
        done_before = finished(redis_url)
        started = time.perf_counter()
        if mode == "batch":
            client = LeanClient(jobyard.api_url, jobyard.admin, timeout_s=60)
            for size in chunks(count, MAX_BATCH):
                client.call("POST", "/api/v1/jobs/batch", {"jobs": [JOB] * size})
        else:
            local = threading.local()

            def submit(_: int) -> None:
                if not hasattr(local, "client"):
                    local.client = LeanClient(jobyard.api_url, jobyard.admin)
                local.client.call("POST", "/api/v1/jobs", JOB)

            with ThreadPoolExecutor(SUBMITTERS) as pool:
                list(pool.map(submit, range(count)))
        wait_for(lambda: finished(redis_url) - done_before >= count, "jobyard")
        return count / (time.perf_counter() - started)


@contextmanager
def worker_processes(jobyard: Cluster, mode: str, workdir: Path) -> Iterator[None]:
    """WORKERS simulated workers, registered before it yields, deregistered after."""
    command = [str(BIN / "python"), "-m", "bench.throughput_worker"]
    logs = [workdir / f"worker-{mode}-{i}.log" for i in range(WORKERS)]
    processes = [
        subprocess.Popen(
            [*command, jobyard.api_url, jobyard.join, mode],
            stdout=subprocess.PIPE,
            stderr=open(log, "ab"),  # noqa: SIM115 - the child holds it
            text=True,
        )
        for log in logs
    ]
    try:
        for process, log in zip(processes, logs, strict=True):
            assert process.stdout is not None
            if not process.stdout.readline():
                raise RuntimeError(f"a simulated worker did not register: {log.read_text()}")
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def real_agent_rss(jobyard: Cluster, redis_url: str, count: int, workdir: Path) -> float:
    """A real `jobyard worker` (process executor, its default 4 slots): its resident memory
    once it has run `count` jobs of `true`, read while it still serves."""
    env = {
        "JOBYARD_API_URL": jobyard.api_url,
        "JOBYARD_WORKER_JOIN_TOKEN": jobyard.join,
        "JOBYARD_EXECUTOR": "process",
        "JOBYARD_AGENT_STATE_DIR": str(workdir / "agent"),
    }
    agent = JobyardProcess("worker", env, workdir / "agent.log")
    try:
        client = LeanClient(jobyard.api_url, jobyard.admin, timeout_s=60)
        done_before = finished(redis_url)
        for size in chunks(count, MAX_BATCH):
            client.call("POST", "/api/v1/jobs/batch", {"jobs": [JOB] * size})
        wait_for(lambda: finished(redis_url) - done_before >= count, "the real agent")
        agent.check_alive()
        return rss_bytes(agent.process.pid)
    finally:
        agent.stop()


def finished(redis_url: str) -> int:
    with connect(redis_url) as client:
        return int(Store(client).jobs.counts()[JobState.COMPLETED.value])


# The peers


class Peers:
    def __init__(self, redis_url: str, workdir: Path) -> None:
        self.rq_url = f"{redis_url.rsplit('/', 1)[0]}/{RQ_DB}"
        self.celery_url = f"{redis_url.rsplit('/', 1)[0]}/{CELERY_DB}"
        self.workdir = workdir

    def rq(self, worker_class: str, count: int, bulk: bool) -> float:
        """Jobs a second, from the first enqueue to the last job in the finished registry."""
        import rq

        from bench.queue_peers import noop

        with self.rq_workers(worker_class) as queue:
            started = time.perf_counter()
            if bulk:
                for size in chunks(count, MAX_BATCH):
                    queue.enqueue_many([rq.Queue.prepare_data(noop) for _ in range(size)])
            else:
                with ThreadPoolExecutor(SUBMITTERS) as pool:
                    list(pool.map(lambda _: queue.enqueue(noop), range(count)))
            wait_for(lambda: queue.finished_job_registry.count >= count, "rq")
            return count / (time.perf_counter() - started)

    @contextmanager
    def rq_workers(self, worker_class: str) -> Iterator[Any]:
        """WORKERS `rq worker` processes of that class on an empty database, serving the
        queue it yields once they are all up."""
        import rq

        connection = redis.Redis.from_url(self.rq_url)
        connection.flushdb()
        queue = rq.Queue("bench", connection=connection)
        command = [str(BIN / "rq"), "worker", "-w", worker_class, "-u", self.rq_url, "-q"]
        with self._processes([[*command, "bench"]] * WORKERS, "rq"):
            wait_for(lambda: rq.Worker.count(connection=connection) == WORKERS, "rq workers")
            yield queue

    def celery(self, count: int) -> float:
        """Jobs a second, from the first apply_async to the count of tasks done reaching
        them all (one warm-up task first: the worker is up once it has run)."""
        os.environ["BENCH_CELERY_URL"] = self.celery_url
        from bench.queue_peers import CELERY_DONE_KEY, celery, celery_noop

        celery.conf.broker_url = self.celery_url
        connection = redis.Redis.from_url(self.celery_url)
        connection.flushdb()
        command = [
            str(BIN / "celery"), "-A", "bench.queue_peers", "worker", "--pool", "prefork",
            "--concurrency", str(WORKERS), "--loglevel", "WARNING",
            "--without-gossip", "--without-mingle", "--without-heartbeat",
        ]  # fmt: skip
        with self._processes([command], "celery"):

            def done() -> int:
                return int(connection.get(CELERY_DONE_KEY) or 0)

            celery_noop.apply_async()
            wait_for(lambda: done() == 1, "celery worker")
            started = time.perf_counter()
            for _ in range(count):
                celery_noop.apply_async()
            wait_for(lambda: done() >= count + 1, "celery")
            return count / (time.perf_counter() - started)

    @contextmanager
    def _processes(self, commands: list[list[str]], name: str) -> Iterator[None]:
        env = {**os.environ, "BENCH_CELERY_URL": self.celery_url}
        with open(self.workdir / f"{name}.log", "ab") as log:
            processes = [
                subprocess.Popen(c, stdout=log, stderr=subprocess.STDOUT, env=env) for c in commands
            ]
            try:
                yield
            finally:
                for process in processes:
                    process.terminate()
                for process in processes:
                    try:
                        process.wait(timeout=30)
                    except subprocess.TimeoutExpired:
                        process.kill()
                        process.wait()


# Helpers


def chunks(count: int, size: int) -> Iterator[int]:
    """The sizes of the batches that make up `count`."""
    for first in range(0, count, size):
        yield min(size, count - first)


def wait_for(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while not condition():
        if time.monotonic() > deadline:
            raise RuntimeError(f"throughput: {what} did not finish within {DONE_TIMEOUT_S:g} s")
        time.sleep(0.01)


def used_memory(redis_url: str) -> int:
    with connect(redis_url) as client:
        return int(client.info("memory")["used_memory"])


def rss_mb(jobyard: Cluster) -> dict[str, float]:
    """Resident memory of the api (gunicorn and its workers) and of the scheduler."""
    return {
        f"{name}_rss_mb": rss_bytes(jobyard.pids[name]) / 2**20 for name in ("api", "scheduler")
    }


def rows(f: dict[str, Any]) -> list[Row]:
    batch, simple = f["jobyard_batch_per_s"], f["rq_simple_per_s"]
    memory = f["memory"]
    return [
        Row("throughput", "trivial jobs/s end to end, batch submit and reports, 2 workers",
            f"{batch:.0f}/s", f"≥ {TARGET_VS_RQ:g}x RQ", f"RQ 2 SimpleWorkers, enqueue_many "
            f"{simple:.0f}/s", f"{ratio(batch, simple):.2f}x"),
        Row("throughput", "the same, against Celery", f"{batch:.0f}/s", "ahead",
            f"Celery prefork 2 {f['celery_per_s']:.0f}/s",
            f"{ratio(batch, f['celery_per_s']):.2f}x"),
        Row("throughput", "the same, against RQ's forking Worker", f"{batch:.0f}/s", "",
            f"RQ 2 Workers {f['rq_forking_per_s']:.0f}/s",
            f"{ratio(batch, f['rq_forking_per_s']):.1f}x"),
        Row("throughput", "trivial jobs/s through the per-job endpoints",
            f"{f['jobyard_per_job_per_s']:.0f}/s", "reported",
            f"RQ enqueue one at a time {f['rq_enqueue_per_s']:.0f}/s",
            f"{ratio(f['jobyard_per_job_per_s'], f['rq_enqueue_per_s']):.2f}x"),
        Row("memory", f"with {memory['finished_jobs']:,} finished jobs: api / scheduler RSS",
            f"{memory['api_rss_mb']:.0f} / {memory['scheduler_rss_mb']:.0f} MB", "reported"),
        Row("memory", f"a real agent's RSS after {memory['agent_jobs']:,} jobs (4 slots)",
            f"{memory['agent_rss_mb']:.0f} MB", "reported"),
        Row("memory", "Redis bytes per finished job",
            f"{memory['redis_bytes_per_finished_job']:.0f} B", "reported"),
    ]  # fmt: skip


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
