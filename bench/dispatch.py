"""Dispatch latency: from a job's submission to the worker's long-poll returning it, at a
steady 200 submissions a second through the real HTTP API (`jobyard api` under gunicorn and
`jobyard scheduler`, as real processes). The peer is RQ at the same rate on the same
redis-server: enqueue to the job's start in one of two SimpleWorkers; and the floor, a raw
Redis LPUSH -> BLPOP between two clients.
"""

import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from bench.lean_client import LeanClient
from bench.report import BenchResult, Row
from bench.servers import Cluster, cluster, cpu_seconds, redis_server
from bench.stats import median, percentile, ratio
from bench.throughput import Peers, wait_for
from bench.worker_sim import FAILURES, SENTINEL, SimulatedWorker
from shared.config import Config
from shared.store import connect

FLOOR_KEY = "bench:floor"  # a throwaway list on the benchmark's own redis-server
SUBMITTERS = 8  # threads, so one slow POST does not hold back the ones after it
DRAIN_S = 30.0  # how long to wait for a run's last jobs to reach the worker and finish
JOB = {"command": ["true"], "resources": {"cpu": 0.1, "memory_mb": 64}}
TARGET_P99_MS = 20.0  # and a p50 no worse than RQ's


@dataclass(frozen=True)
class Sizes:
    rate_per_s: float
    seconds: float  # of load per run
    warmup_s: float  # discarded at the start of each run
    runs: int
    floor_seconds: float
    durable: bool  # redis-server with AOF and appendfsync always, as `jobyard up` runs it
    reference_rate_per_s: float  # one light-load run first, to show the unloaded latency
    reference_seconds: float


FULL = Sizes(
    rate_per_s=200,
    seconds=15,
    warmup_s=1,
    runs=3,
    floor_seconds=5,
    durable=True,
    reference_rate_per_s=20,
    reference_seconds=10,
)
QUICK = replace(FULL, seconds=5, runs=1, floor_seconds=3, reference_seconds=5)


@dataclass
class LoadRun:
    rate_per_s: float
    latencies_ms: list[float]
    submit_ms: list[float]  # the POST round trip alone
    sent: int
    lost: int
    errors: int
    achieved_per_s: float
    cpu_ms_per_job: dict[str, float]  # per process: api, scheduler, redis, bench (the client)


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    floors: list[list[float]] = []
    rqs: list[list[float]] = []
    loads: list[LoadRun] = []
    with (
        redis_server(workdir / "redis", durable=sizes.durable) as server,
        cluster(server, workdir) as jobyard,
    ):
        worker = SimulatedWorker(jobyard.api_url, jobyard.join)
        worker.start()
        try:
            progress(f"dispatch: reference run at {sizes.reference_rate_per_s:.0f}/s")
            light = replace(sizes, rate_per_s=sizes.reference_rate_per_s)
            reference = load_run(
                jobyard, worker, replace(light, seconds=sizes.reference_seconds), "ref"
            )
            for n in range(sizes.runs):
                progress(
                    f"dispatch: run {n + 1}/{sizes.runs}: floor, then the API at "
                    f"{sizes.rate_per_s:.0f}/s for {sizes.seconds:.0f} s"
                )
                floors.append(floor_run(server.url, sizes))
                rqs.append(rq_run(Peers(server.url, workdir), sizes))
                loads.append(load_run(jobyard, worker, sizes, f"r{n}"))
        finally:
            worker.stop(LeanClient(jobyard.api_url, jobyard.admin))
    return summarize(sizes, floors, rqs, loads, reference, worker.errors)


def floor_run(redis_url: str, sizes: Sizes) -> list[float]:
    """LPUSH by one client, BLPOP by another, paced at the benchmark's rate: ms each."""
    pusher, popper = connect(redis_url), connect(redis_url)
    received: dict[str, float] = {}

    def pop() -> None:
        while True:
            item = popper.blpop([FLOOR_KEY], timeout=1)
            if item is None:
                continue
            if item[1] == SENTINEL:
                return
            received[item[1]] = time.perf_counter()

    popping = threading.Thread(target=pop, daemon=True)
    popping.start()
    sent: dict[str, float] = {}

    def push(name: str) -> None:
        sent[name] = time.perf_counter()
        pusher.lpush(FLOOR_KEY, name)

    paced(int(sizes.floor_seconds * sizes.rate_per_s), sizes.rate_per_s, push, pool=None)
    pusher.lpush(FLOOR_KEY, SENTINEL)
    popping.join(timeout=10)
    pusher.close()
    popper.close()
    return latencies(sent, received, skip=int(sizes.warmup_s * sizes.rate_per_s))


def rq_run(peers: Peers, sizes: Sizes) -> list[float]:
    """RQ's enqueue to the job's start in one of two SimpleWorkers, at the same rate: ms
    each (the job notes when it starts; perf_counter is the same clock in every process)."""
    from bench.queue_peers import RQ_STARTS_KEY, stamp

    sent: dict[str, float] = {}
    count = int(sizes.seconds * sizes.rate_per_s)
    with peers.rq_workers("rq.worker.SimpleWorker") as queue:

        def enqueue(name: str) -> None:
            sent[name] = time.perf_counter()
            queue.enqueue(stamp, name)

        paced(count, sizes.rate_per_s, enqueue, pool=None)
        wait_for(lambda: queue.connection.hlen(RQ_STARTS_KEY) >= count, "rq")
        started = queue.connection.hgetall(RQ_STARTS_KEY)
    received = {name.decode(): float(at) for name, at in started.items()}
    return latencies(sent, received, skip=int(sizes.warmup_s * sizes.rate_per_s))


def load_run(jobyard: Cluster, worker: SimulatedWorker, sizes: Sizes, tag: str) -> LoadRun:
    """Submit at a steady rate; the latency of each job is from just before its POST to
    the moment the worker's long-poll returned it."""
    sent: dict[str, float] = {}
    acked: dict[str, float] = {}
    errors: list[str] = []
    local = threading.local()

    def submit(name: str) -> None:
        if not hasattr(local, "client"):
            local.client = LeanClient(jobyard.api_url, jobyard.admin)
        sent[name] = time.perf_counter()
        try:
            local.client.call("POST", "/api/v1/jobs", {**JOB, "name": name})
            acked[name] = time.perf_counter()
        except FAILURES as exc:
            errors.append(str(exc))

    count = int(sizes.seconds * sizes.rate_per_s)
    cpu_before = {name: cpu_seconds(pid) for name, pid in jobyard.pids.items()}
    own_before = time.process_time()  # this process alone: the load generator and the worker
    with ThreadPoolExecutor(SUBMITTERS) as pool:
        seconds = paced(count, sizes.rate_per_s, submit, pool, prefix=f"{tag}-")
    worker.wait_for(sent.keys(), DRAIN_S)
    cpu_ms = {
        name: (cpu_seconds(pid) - cpu_before[name]) * 1000 / count
        for name, pid in jobyard.pids.items()
    }
    cpu_ms["bench"] = (time.process_time() - own_before) * 1000 / count
    skip = int(sizes.warmup_s * sizes.rate_per_s)
    measured = latencies(sent, worker.received, skip)
    return LoadRun(
        rate_per_s=sizes.rate_per_s,
        latencies_ms=measured,
        submit_ms=latencies(sent, acked, skip),
        sent=count,
        lost=count - skip - len(measured),
        errors=len(errors),
        achieved_per_s=count / seconds if seconds else 0.0,
        cpu_ms_per_job=cpu_ms,
    )


def paced(
    count: int,
    rate_per_s: float,
    action: Callable[[str], None],
    pool: ThreadPoolExecutor | None,
    prefix: str = "",
) -> float:
    """Call action(name) `count` times on a fixed schedule (open loop); returns the seconds
    it took. With a pool, each call runs there so a slow one does not delay the next."""
    start = time.perf_counter() + 0.05
    for i in range(count):
        delay = start + i / rate_per_s - time.perf_counter()
        if delay > 0:
            time.sleep(delay)
        name = f"{prefix}{i:06d}"
        if pool is None:
            action(name)
        else:
            pool.submit(action, name)
    return time.perf_counter() - start


def latencies(sent: dict[str, float], received: dict[str, float], skip: int) -> list[float]:
    """Milliseconds from sent to received, in send order, the first `skip` left out."""
    names = sorted(sent)[skip:]
    return [(received[n] - sent[n]) * 1000 for n in names if n in received]


def summarize(
    sizes: Sizes,
    floors: list[list[float]],
    rqs: list[list[float]],
    loads: list[LoadRun],
    reference: LoadRun,
    worker_errors: list[str],
) -> BenchResult:
    runs = [
        run_figures(load) | floor_figures(floor) | rq_figures(rq)
        for floor, rq, load in zip(floors, rqs, loads, strict=True)
    ]
    figures: dict[str, Any] = {key: median([r[key] for r in runs]) for key in MEDIAN_KEYS}
    pooled = [ms for load in loads for ms in load.latencies_ms]
    cpu = {
        name: median([load.cpu_ms_per_job[name] for load in loads])
        for name in loads[0].cpu_ms_per_job
    }
    figures |= {
        "pooled_p50_ms": percentile(pooled, 50),
        "pooled_p99_ms": percentile(pooled, 99),
        "samples": len(pooled),
        "lost": sum(load.lost for load in loads),
        "submit_errors": sum(load.errors for load in loads),
        "worker_errors": worker_errors[:20],
        "cpu_ms_per_job": cpu,
        "server_cores_needed": sum(cpu[n] for n in SERVERS) * sizes.rate_per_s / 1000,
        "reference": run_figures(reference),
        "runs": runs,
    }
    result = BenchResult(
        name="dispatch",
        sizes={**asdict(sizes), "api_processes": Config.from_env(env={}).api_processes},
        figures=figures,
    )
    result.rows = rows(sizes, figures)
    return result


MEDIAN_KEYS = (
    "p50_ms",
    "p99_ms",
    "max_ms",
    "submit_p50_ms",
    "submit_p99_ms",
    "floor_p50_ms",
    "floor_p99_ms",
    "rq_p50_ms",
    "rq_p99_ms",
    "achieved_per_s",
)
SERVERS = ("api", "scheduler", "redis")


def rq_figures(rq: list[float]) -> dict[str, Any]:
    return {"rq_p50_ms": percentile(rq, 50), "rq_p99_ms": percentile(rq, 99), "rq_samples": len(rq)}


def floor_figures(floor: list[float]) -> dict[str, Any]:
    return {
        "floor_p50_ms": percentile(floor, 50),
        "floor_p99_ms": percentile(floor, 99),
        "floor_samples": len(floor),
    }


def run_figures(load: LoadRun) -> dict[str, Any]:
    return {
        "rate_per_s": load.rate_per_s,
        "p50_ms": percentile(load.latencies_ms, 50),
        "p99_ms": percentile(load.latencies_ms, 99),
        "max_ms": max(load.latencies_ms, default=float("nan")),
        "submit_p50_ms": percentile(load.submit_ms, 50),
        "submit_p99_ms": percentile(load.submit_ms, 99),
        "samples": len(load.latencies_ms),
        "lost": load.lost,
        "achieved_per_s": load.achieved_per_s,
        "cpu_ms_per_job": load.cpu_ms_per_job,
    }


def rows(sizes: Sizes, f: dict[str, Any]) -> list[Row]:
    rate = f"{sizes.rate_per_s:.0f}/s"
    ref = f["reference"]
    cpu = f["cpu_ms_per_job"]
    return [
        Row(
            "dispatch", f"submit → long-poll p50 at {rate}", f"{f['p50_ms']:.1f} ms",
            "≤ RQ's p50", f"RQ enqueue → job start {f['rq_p50_ms']:.1f} ms",
            f"{ratio(f['p50_ms'], f['rq_p50_ms']):.2f}x",
        ),
        Row(
            "dispatch", f"submit → long-poll p99 at {rate}", f"{f['p99_ms']:.1f} ms",
            f"≤ {TARGET_P99_MS:g} ms", f"RQ enqueue → job start {f['rq_p99_ms']:.1f} ms",
            f"{ratio(f['p99_ms'], f['rq_p99_ms']):.2f}x",
        ),
        Row("dispatch", "the floor: LPUSH → BLPOP on the same redis-server, p50 / p99",
            f"{f['floor_p50_ms']:.2f} / {f['floor_p99_ms']:.2f} ms"),
        Row("dispatch", "of which the POST itself, p50 / p99",
            f"{f['submit_p50_ms']:.1f} / {f['submit_p99_ms']:.1f} ms"),
        Row("dispatch", f"p50 / p99 at {ref['rate_per_s']:.0f}/s (light load, one run)",
            f"{ref['p50_ms']:.1f} / {ref['p99_ms']:.1f} ms"),
        Row("dispatch", "CPU per job: api / scheduler / redis / client",
            " / ".join(f"{cpu[n]:.1f}" for n in (*SERVERS, "bench")) + " ms",
            "", "", f"{f['server_cores_needed']:.2f} server cores at {rate}"),
    ]  # fmt: skip


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
