"""Docker executor: one locked-down container per attempt, with the GPUs the agent gave it
as device requests, its output streamed as it runs, its end (exit code, OOM kill, timeout,
cancel) turned into a result, then removed."""

import contextlib
import logging
import threading
from collections.abc import Iterable, Iterator
from typing import Any

import docker
from docker.errors import APIError, DockerException, ImageNotFound, NotFound
from docker.models.containers import Container
from docker.types import DeviceRequest

from shared import clock
from shared.config import Config
from shared.images import image_allowed
from shared.states import Reason
from worker_agent.executors.base import (
    MIB,
    OUTPUT_DRAIN_S,
    ExecResult,
    JobRun,
    OutputSink,
    cancelled_before_start,
    deadline_of,
    error_result,
    metrics,
    watch,
)
from worker_agent.logfmt import log_event

log = logging.getLogger(__name__)

LABEL_JOB = "jobyard.job"
LABEL_ATTEMPT = "jobyard.attempt"
LABEL_WORKER = "jobyard.worker"

SIGTERM_BIT = 1 << (15 - 1)  # bit of signal 15 in /proc/<pid>/status signal masks

# Samples come quickly at first, so that short jobs get numbers too, then every second.
STATS_FIRST_INTERVAL_S = 0.1
STATS_INTERVAL_S = 1.0


class DockerExecutor:
    def __init__(self, config: Config, client: docker.DockerClient | None = None) -> None:
        self.config = config
        # Each running job holds two long connections (attach, wait) besides short calls.
        self.client = client or docker.from_env(max_pool_size=4 * config.max_parallel_jobs + 4)
        if self.client.api.base_url.startswith("http+docker://"):
            # The daemon's own socket: no proxy or .netrc applies, and requests would look
            # them up in the environment on every call (a tenth of the agent's CPU per job).
            self.client.api.trust_env = False

    def run(self, job: JobRun, sink: OutputSink, cancel: threading.Event) -> ExecResult:
        started = clock.monotonic()
        if cancel.is_set():
            return cancelled_before_start(started)
        refusal = self._refusal(job)
        if refusal is not None:
            return error_result(refusal, started)
        try:
            container = self._create(job)
        except ImageNotFound:
            # No registry is configured, so a missing image is never pulled.
            return error_result(
                f"image {job.image!r} not found on this worker (images are not pulled: "
                "no registry is configured)",
                started,
            )
        except APIError as exc:
            return error_result(f"cannot create the container: {_explain(exc)}", started)
        try:
            return self._run_container(container, job, sink, cancel, started)
        finally:
            self._remove(container)

    def remove_orphans(self, worker_ids: Iterable[str]) -> int:
        """Kill and remove every container labelled with one of these worker ids, only those."""
        removed = 0
        for worker_id in worker_ids:
            found = self.client.containers.list(
                all=True, filters={"label": f"{LABEL_WORKER}={worker_id}"}
            )
            for container in found:
                # The filter is the daemon's; check again so nothing else is ever touched.
                if container.labels.get(LABEL_WORKER) == worker_id:
                    removed += self._remove(container)
        return removed

    def _refusal(self, job: JobRun) -> str | None:
        """Why this agent will not run the job, checked again here though the API and the
        scheduler already did: their settings may differ from this agent's."""
        if not image_allowed(job.image, self.config.allowed_images):
            return (
                f"image {job.image!r} is not allowed on this worker (JOBYARD_ALLOWED_IMAGES: "
                f"{', '.join(self.config.allowed_images)})"
            )
        if job.network and not self.config.allow_network:
            return "the job asks for a network and this worker allows none (JOBYARD_ALLOW_NETWORK)"
        return None

    def _create(self, job: JobRun) -> Container:
        """The job's container, created but not started. Through the SDK's low-level calls:
        its `containers.create` inspects the new container at once, a call we do not need.
        Docker's default seccomp profile applies as long as no security_opt turns it off."""
        api = self.client.api
        host_config = api.create_host_config(
            mem_limit=job.memory_mb * MIB,
            memswap_limit=job.memory_mb * MIB,  # equal: no swap beyond the limit
            nano_cpus=round(job.cpu * 1e9),
            pids_limit=self.config.pids_limit,
            cap_drop=["ALL"],
            security_opt=["no-new-privileges"],
            network_mode="bridge" if job.network else "none",
            read_only=self.config.readonly_rootfs,
            # Writable scratch space even on a read-only root; its pages count against the
            # container's memory limit, and the size bounds it to that limit as well.
            tmpfs={"/tmp": f"rw,nosuid,nodev,size={job.memory_mb}m,mode=1777"},
            device_requests=device_requests(job.gpus),
        )
        created = api.create_container(
            job.image,
            job.command,
            environment=dict(job.env),
            labels={
                LABEL_JOB: job.job_id,
                LABEL_ATTEMPT: str(job.attempt),
                LABEL_WORKER: job.worker_id,
            },
            user=self.config.container_user or None,
            detach=True,
            tty=False,
            stdin_open=False,
            host_config=host_config,
        )
        return self.client.containers.prepare_model({"Id": created["Id"]})

    def _run_container(
        self,
        container: Container,
        job: JobRun,
        sink: OutputSink,
        cancel: threading.Event,
        started: float,
    ) -> ExecResult:
        try:
            stream = attach_output(container)  # before start: not the first byte is missed
            reader = _spawn(_pump, stream, sink, name=f"out-{job.job_id}-{job.attempt}")
            container.start()
        except APIError as exc:
            return error_result(f"cannot start the container: {_explain(exc)}", started)
        waiter = _Waiter(container)
        sampler = _StatsSampler(container, waiter.done)
        stop_reason = watch(waiter.done.wait, cancel, deadline_of(job, started))
        if stop_reason is not None:
            self._stop(container, waiter.done, job)
            waiter.done.wait()
        reader.join(OUTPUT_DRAIN_S)
        if waiter.error is not None:
            return error_result(f"lost track of the container: {waiter.error}", started)
        return self._result(container, waiter.status, stop_reason, sampler, started)

    def _stop(self, container: Container, exited: threading.Event, job: JobRun) -> None:
        """SIGTERM, then SIGKILL after kill_grace_s (at once if SIGTERM cannot work)."""
        self._signal(container, "SIGTERM")
        grace = self.config.kill_grace_s
        if _ignores_sigterm(container):
            # PID 1 of a container is immune to signals it does not handle: TERM would only
            # make the user wait the whole grace period for the same KILL.
            grace = 0.0
        if not exited.wait(grace):
            log_event(
                log,
                "container_killed",
                job=job.job_id,
                attempt=job.attempt,
                worker=job.worker_id,
                grace_s=grace,
            )
            self._signal(container, "SIGKILL")

    @staticmethod
    def _signal(container: Container, signal: str) -> None:
        # An error means it has already stopped, which is what we wanted.
        with contextlib.suppress(APIError):
            container.kill(signal=signal)

    def _result(
        self,
        container: Container,
        status: int | None,
        stop_reason: str | None,
        sampler: "_StatsSampler",
        started: float,
    ) -> ExecResult:
        usage = metrics(started, sampler.cpu_s, sampler.peak_memory_mb)
        if stop_reason is not None:
            return ExecResult(status, stop_reason, None, usage)
        # OOMKilled is also set when only a child was killed and the job carried on to exit 0;
        # that job succeeded (so it is not asked). On cgroup v1 the OOM-killed main process
        # shows exit code 137.
        if status != 0 and _oom_killed(container):
            return ExecResult(status, Reason.OOM.value, None, usage)
        return ExecResult(status, None, None, usage)

    def _remove(self, container: Container) -> int:
        try:
            container.remove(force=True)
        except NotFound:
            return 0
        except APIError as exc:
            log_event(
                log,
                "container_remove_failed",
                level=logging.WARNING,
                container=container.short_id,
                error=_explain(exc),
            )
            return 0
        return 1


class _Waiter:
    """Waits for the container's exit in a thread, so the caller can watch cancel meanwhile."""

    def __init__(self, container: Container) -> None:
        self.done = threading.Event()
        self.status: int | None = None
        self.error: str | None = None
        _spawn(self._wait, container, name=f"wait-{container.short_id}")

    def _wait(self, container: Container) -> None:
        try:
            self.status = int(container.wait()["StatusCode"])
        except (DockerException, OSError) as exc:
            self.error = str(exc)
        finally:
            self.done.set()


class _StatsSampler:
    """Samples CPU time and peak memory while the container runs (best effort).

    The daemon forgets a container's cgroup as soon as it stops, so the numbers are read
    while it runs; a job shorter than one sample may report None.
    """

    def __init__(self, container: Container, exited: threading.Event) -> None:
        self.cpu_s: float | None = None
        self.peak_memory_mb: float | None = None
        _spawn(self._sample, container, exited, name=f"stats-{container.short_id}")

    def _sample(self, container: Container, exited: threading.Event) -> None:
        interval = STATS_FIRST_INTERVAL_S
        while not exited.wait(interval):
            try:
                # one_shot: the current numbers at once, not the 2 s average of a plain call.
                self._record(container.stats(stream=False, one_shot=True))
            except (DockerException, OSError, ValueError, KeyError, TypeError):
                return
            interval = min(interval * 2, STATS_INTERVAL_S)

    def _record(self, stats: dict[str, Any]) -> None:
        memory = stats.get("memory_stats") or {}
        # cgroup v1 keeps a high-water mark (max_usage); v2 only the current usage.
        peak = memory.get("max_usage") or memory.get("usage")
        if peak:
            self.peak_memory_mb = max(self.peak_memory_mb or 0.0, peak / MIB)
        cpu_ns = ((stats.get("cpu_stats") or {}).get("cpu_usage") or {}).get("total_usage")
        if cpu_ns:
            self.cpu_s = max(self.cpu_s or 0.0, cpu_ns / 1e9)


def device_requests(gpus: tuple[str, ...]) -> list[DeviceRequest] | None:
    """These GPUs and no others, as `docker run --gpus '"device=0,1"'` asks for them: no
    driver named, so the daemon picks the one that offers the "gpu" capability (NVIDIA's)
    and refuses to start the container when none does."""
    if not gpus:
        return None
    return [DeviceRequest(device_ids=list(gpus), capabilities=[["gpu"]])]


def attach_output(container: Container) -> Iterator[tuple[bytes | None, bytes | None]]:
    """The container's output from now on, as (stdout, stderr) pieces, until it exits.

    The daemon subscribes to the streams before it answers the attach, so attaching before
    the start misses nothing. Without its log replay (logs=False): output written while the
    replay ran would arrive twice (the chaos soak saw it under load).
    """
    return container.attach(stdout=True, stderr=True, stream=True, logs=False, demux=True)


def _pump(stream: Iterator[tuple[bytes | None, bytes | None]], sink: OutputSink) -> None:
    """Feed the demuxed attach stream to the sink until the container's streams close."""
    try:
        for stdout, stderr in stream:
            at = clock.now()
            for name, data in (("stdout", stdout), ("stderr", stderr)):
                if data:
                    sink = _feed(sink, name, data, at)
    except (DockerException, OSError) as exc:
        # The container was removed under us (after the drain time): nothing more to read.
        log_event(log, "output_stream_closed", level=logging.DEBUG, error=exc)


def _feed(sink: OutputSink, name: str, data: bytes, at: float) -> OutputSink:
    """Give data to the sink; a sink that fails is replaced by one that discards."""
    try:
        sink(name, data, at)
    except Exception as exc:
        # Keep reading anyway: a container must not block on a pipe nobody empties.
        log_event(log, "output_sink_failed", level=logging.ERROR, error=repr(exc))
        return _discard
    return sink


def _discard(name: str, data: bytes, at: float) -> None:
    pass


def _oom_killed(container: Container) -> bool:
    try:
        container.reload()
    except DockerException:
        return False
    return bool(container.attrs.get("State", {}).get("OOMKilled"))


def _ignores_sigterm(container: Container) -> bool:
    """Whether the container's main process neither catches nor could die of SIGTERM.

    Read from /proc on this host; when that is not possible (an agent inside a container
    of its own), say False and let the grace period run.
    """
    try:
        container.reload()
        pid = int(container.attrs["State"]["Pid"])
        with open(f"/proc/{pid}/status") as status:
            masks = dict(line.split(":", 1) for line in status if line.startswith("Sig"))
        caught = int(masks["SigCgt"], 16)
    except (DockerException, OSError, KeyError, ValueError):
        return False
    return pid > 0 and not caught & SIGTERM_BIT


def _explain(exc: APIError) -> str:
    return str(exc.explanation or exc)


def _spawn(target: Any, *args: Any, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread
