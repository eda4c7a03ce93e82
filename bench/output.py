"""Output: how soon a line a job writes can be read through the API, and how much output one
job can push through, both through real processes (`jobyard api`, `scheduler` and `worker`
with the Docker executor, on a redis-server run as `jobyard up` runs it).

(a) Latency: a container writes lines at about 100 a second, each stamped with the time of
its write (the container and this host share the kernel's clock). A line's latency is from
that stamp to the moment this process reads it from the job's SSE output stream. The peer
reads the same lines of the same container with `docker logs --follow`, at the same time.

(b) Volume: one job writes a counter in base64 (`seq 1 N | base64`: lines of 76 characters,
every byte known beforehand) as fast as it can, about 200 MB, with JOBYARD_MAX_OUTPUT_BYTES
raised to 256 MiB. The stream is read to the end, checked byte for byte (length and
sha256), and timed from the job's start to the last byte; the agent's peak RSS is sampled
throughout. The peer runs the same command in a plain container with the same limits and
reads it with `docker logs --follow`.
"""

import base64
import hashlib
import json
import re
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field, replace
from datetime import datetime
from pathlib import Path
from subprocess import PIPE
from typing import Any

import docker
import psutil

from bench.report import BenchResult, Row
from bench.servers import JobyardProcess, control_plane, cpu_seconds, redis_server, wait_ready
from bench.stats import percentile, ratio
from cli.redis_server import RedisServer
from shared.client import ApiClient, stream_events

IMAGE = "jobyard/busybox:latest"
MB = 1_000_000
MIB = 1024 * 1024
TARGET_P99_MS = 250.0
TARGET_RSS_MB = 150.0
RSS_SAMPLE_S = 0.05
# A container's limits: the same for the job and for the peer's plain container.
RESOURCES = {"cpu": 1.0, "memory_mb": 128}
# One line per write: adjtimex reads the clock to the microsecond (busybox `date` cannot),
# awk prints "<seconds>.<micros> <n>" and exits, which flushes it.
LINES_SCRIPT = (
    "i=1; while [ $i -le {lines} ]; do adjtimex | awk -v n=$i "
    "'/tv_sec/ {{s=$2}} /tv_usec/ {{printf \"%d.%06d %d\\n\", s, $2, n}}'; "
    "usleep {pause_us}; i=$((i+1)); done"
)
STAMPED_LINE = re.compile(r"^(\d+\.\d{6}) (\d+)$")


@dataclass(frozen=True)
class Sizes:
    lines: int
    pause_us: int  # between lines; with the two commands each line runs, about 100/s
    skip_lines: int  # written before `docker logs` could attach: left out of both figures
    volume_bytes: int


FULL = Sizes(lines=1000, pause_us=8000, skip_lines=50, volume_bytes=200 * MB)
QUICK = replace(FULL, lines=200, volume_bytes=20 * MB)


@dataclass
class Arrivals:
    """When each numbered line was written (its stamp) and when a reader got it."""

    written: dict[int, float] = field(default_factory=dict)
    read: dict[int, float] = field(default_factory=dict)
    pending: str = ""

    def feed(self, text: str, now: float) -> None:
        """Complete lines in `text` arrive now; a line cut short waits for its end."""
        *lines, self.pending = (self.pending + text).split("\n")
        for line in lines:
            if match := STAMPED_LINE.match(line):
                number = int(match[2])
                self.written[number] = float(match[1])
                self.read[number] = now

    def latencies_ms(self, skip: int) -> list[float]:
        return [(self.read[n] - self.written[n]) * 1000 for n in sorted(self.read) if n > skip]


@dataclass(frozen=True)
class Cluster:
    client: ApiClient
    pids: dict[str, int]  # process name -> pid, for CPU and memory


def run(quick: bool, workdir: Path) -> BenchResult:
    sizes = QUICK if quick else FULL
    docker_client = docker.from_env()
    with redis_server(workdir / "redis", durable=True) as server, cluster(server, workdir) as c:
        progress(f"output: latency, {sizes.lines} lines at about 100/s")
        latency = latency_run(c, docker_client, sizes)
        progress(f"output: volume, one job writing {sizes.volume_bytes / MB:.0f} MB")
        volume = volume_run(c, sizes)
    progress("output: volume through `docker logs --follow`")
    peer_volume = docker_volume_run(docker_client, sizes)
    docker_client.close()
    return summarize(sizes, latency, volume, peer_volume)


@contextmanager
def cluster(redis: RedisServer, workdir: Path) -> Iterator[Cluster]:
    """`jobyard api`, `scheduler` and `worker` (Docker executor) on loopback."""
    plane = control_plane(redis.url)
    api_url, admin = plane.api_url, plane.admin
    env = {
        **plane.env,
        "JOBYARD_MAX_OUTPUT_BYTES": str(256 * MIB),
        "JOBYARD_EXECUTOR": "docker",
        "JOBYARD_DEFAULT_IMAGE": IMAGE,
        "JOBYARD_AGENT_STATE_DIR": str(workdir / "agent"),
    }
    api = JobyardProcess("api", env, workdir / "api.log")
    scheduler = JobyardProcess("scheduler", env, workdir / "scheduler.log")
    client = ApiClient(api_url, admin)
    processes = [api, scheduler]
    try:
        wait_ready(client, api)
        worker = JobyardProcess("worker", env, workdir / "worker.log")
        processes.insert(0, worker)
        wait_for_worker(client, worker)
        assert redis.process is not None
        pids = {p.command: p.process.pid for p in processes} | {"redis": redis.process.pid}
        yield Cluster(client, pids)
        for process in processes:
            process.check_alive()
    finally:
        for process in processes:  # the worker first, so it drains while the API is up
            process.stop()


def wait_for_worker(client: ApiClient, worker: JobyardProcess, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while not client.workers()["workers"]:
        worker.check_alive()
        if time.monotonic() > deadline:
            raise RuntimeError(f"the worker never registered: {worker.log_tail()}")
        time.sleep(0.1)


# (a) Latency


def latency_run(c: Cluster, docker_client: docker.DockerClient, sizes: Sizes) -> dict[str, Any]:
    script = LINES_SCRIPT.format(lines=sizes.lines, pause_us=sizes.pause_us)
    job_id = submit(c.client, script)
    ours, peers = Arrivals(), Arrivals()
    follower = threading.Thread(
        target=follow_docker_logs, args=(docker_client, job_id, peers), daemon=True
    )
    follower.start()
    end = read_stream(c.client, job_id, lambda chunk, now: ours.feed(chunk["data"], now))
    follower.join(timeout=30)
    job = c.client.job(job_id)
    api_ms = ours.latencies_ms(sizes.skip_lines)
    docker_ms = peers.latencies_ms(sizes.skip_lines)
    written = sorted(ours.written.values())
    return {
        "job_state": end["state"],
        "lines_read": len(ours.read),
        "lines_read_by_peer": len(peers.read),
        "lines_per_s": (len(written) - 1) / (written[-1] - written[0]) if written else 0.0,
        "p50_ms": percentile(api_ms, 50),
        "p99_ms": percentile(api_ms, 99),
        "max_ms": max(api_ms, default=float("nan")),
        "peer_p50_ms": percentile(docker_ms, 50),
        "peer_p99_ms": percentile(docker_ms, 99),
        "peer_max_ms": max(docker_ms, default=float("nan")),
        "samples": len(api_ms),
        "peer_samples": len(docker_ms),
        "output_chunks": len(c.client.output(job_id)["chunks"]),
        "job_duration_s": (job.get("metrics") or {}).get("duration_s"),
    }


def follow_docker_logs(client: docker.DockerClient, job_id: str, arrivals: Arrivals) -> None:
    """Find the job's container as soon as it runs, then read its logs as they come."""
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        found = client.containers.list(filters={"label": f"jobyard.job={job_id}"})
        if found:
            for raw in found[0].logs(stream=True, follow=True):
                arrivals.feed(raw.decode(errors="replace"), time.time())
            return
        time.sleep(0.01)
    raise RuntimeError(f"the container of job {job_id} never ran")


# (b) Volume


BASE64_LINE = 57  # raw bytes per line of base64 output (76 characters and a newline)


def counter_length(n: int) -> int:
    """Bytes `seq 1 n` writes: every number and its newline."""
    total, digits, low = 0, 1, 1
    while low <= n:
        high = min(n, low * 10 - 1)
        total += (high - low + 1) * (digits + 1)
        digits, low = digits + 1, low * 10
    return total


def base64_length(raw: int) -> int:
    """Bytes `base64` writes for `raw` bytes: 76-character lines, each with its newline."""
    characters = 4 * -(-raw // 3)
    return characters + -(-characters // 76)


def counter_for(volume_bytes: int) -> int:
    """The smallest n whose `seq 1 n | base64` writes at least `volume_bytes`."""
    low, high = 1, volume_bytes
    while low < high:
        middle = (low + high) // 2
        if base64_length(counter_length(middle)) < volume_bytes:
            low = middle + 1
        else:
            high = middle
    return low


def expected_output(n: int, block: int = 1_000_000) -> tuple[int, str]:
    """Length and sha256 of what `seq 1 n | base64` writes, computed here in blocks."""
    digest = hashlib.sha256()
    rest = b""
    for start in range(1, n + 1, block):
        numbers = range(start, min(n, start + block - 1) + 1)
        raw = rest + ("\n".join(map(str, numbers)) + "\n").encode()
        whole = len(raw) - len(raw) % BASE64_LINE  # so every line is full but the last
        digest.update(base64.encodebytes(raw[:whole]))
        rest = raw[whole:]
    if rest:
        digest.update(base64.encodebytes(rest))
    return base64_length(counter_length(n)), digest.hexdigest()


@dataclass
class Received:
    """What a reader got: a running digest and count, and when the last byte came."""

    digest: Any = field(default_factory=hashlib.sha256)
    size: int = 0
    last_at: float = 0.0

    def add(self, data: bytes, now: float) -> None:
        self.digest.update(data)
        self.size += len(data)
        self.last_at = now


def volume_run(c: Cluster, sizes: Sizes) -> dict[str, Any]:
    n = counter_for(sizes.volume_bytes)
    expected = expected_output(n)
    before = {name: cpu_seconds(pid) for name, pid in c.pids.items()}
    peak_rss = PeakRss(c.pids["worker"])
    peak_rss.start()
    job_id = submit(c.client, f"seq 1 {n} | base64")
    got = Received()
    streams: set[str] = set()

    def take(chunk: dict[str, Any], now: float) -> None:
        streams.add(chunk["stream"])
        got.add(chunk["data"].encode(), now)

    end = read_stream(c.client, job_id, take)
    peak_rss.stop()
    cpu = {name: cpu_seconds(pid) - before[name] for name, pid in c.pids.items()}
    job = c.client.job(job_id)
    started = epoch(job["started_at"])
    seconds = got.last_at - started
    return {
        "job_state": end["state"],
        "counter_to": n,
        "bytes_expected": expected[0],
        "bytes_read": got.size,
        "bytes_stored": job["output_bytes"],
        "output_truncated": job["output_truncated"],
        "streams": sorted(streams),
        "verified": (got.size, got.digest.hexdigest()) == expected and streams == {"stdout"},
        "seconds_start_to_last_byte": seconds,
        "mb_per_s": got.size / MB / seconds,
        "job_duration_s": (job.get("metrics") or {}).get("duration_s"),
        "agent_peak_rss_mb": peak_rss.peak / MB,
        "agent_rss_at_start_mb": peak_rss.first / MB,
        "cpu_s": cpu,
    }


def docker_volume_run(client: docker.DockerClient, sizes: Sizes) -> dict[str, Any]:
    """The same command in a plain container with the job's limits, read through the
    `docker logs --follow` command (the SDK's stream hands over one line at a time, which
    would measure Python rather than Docker), from its start to its last byte."""
    n = counter_for(sizes.volume_bytes)
    expected = expected_output(n)
    container = client.containers.create(
        IMAGE,
        ["sh", "-c", f"seq 1 {n} | base64"],
        mem_limit=RESOURCES["memory_mb"] * MIB,
        memswap_limit=RESOURCES["memory_mb"] * MIB,
        nano_cpus=round(RESOURCES["cpu"] * 1e9),
        network_mode="none",
        labels={"jobyard.bench": "output"},
    )
    try:
        got = Received()
        started = time.time()
        container.start()
        logs = subprocess.Popen(
            ["docker", "logs", "--follow", container.id], stdout=PIPE, bufsize=0
        )
        assert logs.stdout is not None
        while block := logs.stdout.read(MIB):  # unbuffered: whatever has come, up to 1 MiB
            got.add(block, time.time())
        logs.wait()
        seconds = got.last_at - started
        return {
            "bytes_read": got.size,
            "verified": (got.size, got.digest.hexdigest()) == expected,
            "seconds_start_to_last_byte": seconds,
            "mb_per_s": got.size / MB / seconds,
        }
    finally:
        container.remove(force=True)


class PeakRss:
    """Samples a process's resident memory in a thread; keeps the first and the largest."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.first = self.peak = self.process.memory_info().rss
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._stop.wait(RSS_SAMPLE_S):
            self.peak = max(self.peak, self.process.memory_info().rss)


# Both


def submit(client: ApiClient, script: str) -> str:
    job: dict[str, Any] = client.submit(
        {"command": ["sh", "-c", script], "resources": RESOURCES, "name": "bench-output"}
    )
    return str(job["id"])


def read_stream(
    client: ApiClient, job_id: str, take: Callable[[dict[str, Any], float], None]
) -> dict[str, Any]:
    """Every chunk of the job's SSE output stream, with the time it arrived; returns the
    end event."""
    for event in stream_events(client, f"/api/v1/jobs/{job_id}/output/stream"):
        now = time.time()
        if event.event == "end":
            end: dict[str, Any] = json.loads(event.data)
            return end
        take(json.loads(event.data), now)
    raise RuntimeError(f"the output stream of job {job_id} ended without its end event")


def epoch(stamp: str) -> float:
    return datetime.fromisoformat(stamp).timestamp()


def summarize(
    sizes: Sizes, latency: dict[str, Any], volume: dict[str, Any], peer: dict[str, Any]
) -> BenchResult:
    figures = {"latency": latency, "volume": volume, "volume_peer": peer}
    result = BenchResult(
        name="output",
        sizes={**asdict(sizes), "resources": RESOURCES, "max_output_bytes": 256 * MIB},
        figures=figures,
    )
    result.rows = rows(sizes, latency, volume, peer)
    return result


def rows(
    sizes: Sizes, lat: dict[str, Any], vol: dict[str, Any], peer: dict[str, Any]
) -> list[Row]:
    lines = f"{sizes.lines:,} lines at {lat['lines_per_s']:.0f}/s"
    size = f"{vol['bytes_read'] / MB:.0f} MB"
    checked = "verified" if vol["verified"] and peer["verified"] else "NOT VERIFIED"
    cpu = vol["cpu_s"]
    cpu_per_mb = " / ".join(
        f"{cpu[name] * 1000 / (vol['bytes_read'] / MB):.0f}" for name in ("api", "redis", "worker")
    )
    return [
        Row(
            "output", f"line written → read via SSE, p50 ({lines})", f"{lat['p50_ms']:.1f} ms",
            "", f"docker logs -f {lat['peer_p50_ms']:.1f} ms",
            f"{ratio(lat['p50_ms'], lat['peer_p50_ms']):.0f}x",
        ),
        Row(
            "output", f"line written → read via SSE, p99 ({lines})", f"{lat['p99_ms']:.1f} ms",
            f"≤ {TARGET_P99_MS:g} ms", f"docker logs -f {lat['peer_p99_ms']:.1f} ms",
            f"{ratio(lat['p99_ms'], lat['peer_p99_ms']):.0f}x",
        ),
        Row(
            "output", f"one job writing {size} at full speed, start → last byte read ({checked})",
            f"{vol['mb_per_s']:.1f} MB/s", "", f"docker logs -f {peer['mb_per_s']:.1f} MB/s",
            f"{ratio(vol['mb_per_s'], peer['mb_per_s']):.2f}x",
        ),
        Row(
            "output", f"agent peak RSS while streaming {size}",
            f"{vol['agent_peak_rss_mb']:.0f} MB", f"< {TARGET_RSS_MB:g} MB",
        ),
        Row("output", "CPU per MB of output: api / redis / agent", f"{cpu_per_mb} ms"),
    ]  # fmt: skip


def progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)
