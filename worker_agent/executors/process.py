"""Process executor: the command as a plain child process in its own process group, with
rlimits and a fresh working directory per attempt; for hosts without Docker.

It isolates far less than a container: no filesystem, network or PID isolation, and memory
is capped as address space (RLIMIT_AS), which is stricter than the resident memory Docker
counts. Jobs run as the agent's user, except that an agent running as root drops them to an
unprivileged one (see job_identity). Its GPUs are named in CUDA_VISIBLE_DEVICES and
NVIDIA_VISIBLE_DEVICES, which CUDA honours but nothing enforces.
"""

import contextlib
import json
import logging
import os
import re
import resource
import shutil
import signal
import subprocess
import threading
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Any

import psutil

from shared import clock
from shared.config import Config
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

BASE_PATH = "/usr/local/bin:/usr/bin:/bin"
NOBODY = 65534  # the uid and gid of "nobody", which owns nothing
READ_SIZE = 64 * 1024


class ProcessExecutor:
    def __init__(self, config: Config) -> None:
        self.config = config
        self.state_dir = Path(config.agent_state_dir)

    def run(self, job: JobRun, sink: OutputSink, cancel: threading.Event) -> ExecResult:
        started = clock.monotonic()
        if cancel.is_set():
            return cancelled_before_start(started)
        if not job.command:
            return error_result("the job has no command", started)
        workdir = self.state_dir / "work" / _slug(job)
        shutil.rmtree(workdir, ignore_errors=True)
        workdir.mkdir(parents=True)
        identity = job_identity(self.config)
        if identity is not None:
            os.chown(workdir, *identity)  # the job's own, to write in
        try:
            return self._run_in(workdir, job, sink, cancel, started)
        finally:
            shutil.rmtree(workdir, ignore_errors=True)

    def remove_orphans(self, worker_ids: Iterable[str]) -> int:
        """Kill the process groups that earlier agents with these ids left running.

        Each job runs in a session of its own (so that a signal to the agent's terminal does
        not hit it), which also means it outlives an agent that is killed outright; the
        record written at spawn lets the next agent with this state directory find it.
        """
        wanted = set(worker_ids)
        killed = 0
        for path in sorted(self._records_dir().glob("*.json")):
            record = _read_record(path)
            if record is None or record.get("worker_id") not in wanted:
                continue
            killed += _kill_recorded(record)
            shutil.rmtree(self.state_dir / "work" / str(record.get("workdir", "")), True)
            path.unlink(missing_ok=True)
        return killed

    def _run_in(
        self,
        workdir: Path,
        job: JobRun,
        sink: OutputSink,
        cancel: threading.Event,
        started: float,
    ) -> ExecResult:
        try:
            proc = self._spawn(job, workdir)
        except (OSError, subprocess.SubprocessError) as exc:
            reason = getattr(exc, "strerror", None) or str(exc)
            return error_result(f"cannot run {job.command[0]!r}: {reason}", started)
        record = self._remember(job, proc.pid, workdir)
        readers = [
            _spawn_thread(_pump, pipe, name, sink, name=f"{name}-{job.job_id}-{job.attempt}")
            for name, pipe in (("stdout", proc.stdout), ("stderr", proc.stderr))
        ]
        reaper = _Reaper(proc)
        try:
            stop_reason = watch(reaper.done.wait, cancel, deadline_of(job, started))
            if stop_reason is not None:
                self._stop(reaper, job)
        finally:
            reaper.signal(signal.SIGKILL)
            reaper.done.wait()
            record.unlink(missing_ok=True)
        for reader in readers:
            reader.join(OUTPUT_DRAIN_S)
        usage = metrics(started, reaper.cpu_s, reaper.peak_memory_mb)
        return ExecResult(reaper.exit_code, stop_reason, None, usage)

    def _spawn(self, job: JobRun, workdir: Path) -> "subprocess.Popen[bytes]":
        # The job's GPUs last, so its own env cannot widen them.
        env = {"PATH": BASE_PATH, "HOME": str(workdir), **job.env, **gpu_env(job.gpus)}
        identity = job_identity(self.config)
        uid, gid = identity if identity is not None else (None, None)
        return subprocess.Popen(
            job.command,
            cwd=workdir,
            env=env,  # its PATH is also where the command is looked up
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            start_new_session=True,  # its own process group, so one killpg reaches it all
            # In the child before exec, after the chdir: setgroups([]), setgid, setuid.
            user=uid,
            group=gid,
            extra_groups=None if identity is None else [],
            # Only setrlimit runs between fork and exec: no lock a thread could hold.
            preexec_fn=_rlimits(job),
        )

    def _stop(self, reaper: "_Reaper", job: JobRun) -> None:
        """SIGTERM to the whole group, then SIGKILL after kill_grace_s."""
        reaper.signal(signal.SIGTERM)
        if not reaper.done.wait(self.config.kill_grace_s):
            log_event(
                log,
                "process_killed",
                job=job.job_id,
                attempt=job.attempt,
                worker=job.worker_id,
                grace_s=self.config.kill_grace_s,
            )
            reaper.signal(signal.SIGKILL)

    def _records_dir(self) -> Path:
        return self.state_dir / "procs"

    def _remember(self, job: JobRun, pid: int, workdir: Path) -> Path:
        """Write down the job's process group, for remove_orphans after an agent crash."""
        record = {
            "worker_id": job.worker_id,
            "job": job.job_id,
            "attempt": job.attempt,
            "pgid": pid,
            "create_time": _create_time(pid),
            "workdir": workdir.name,
        }
        path = self._records_dir() / f"{workdir.name}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(record))
        return path


class _Reaper:
    """Waits for the child in a thread; when it exits, kills what is left of its group (as
    a container's end would), then reaps it with wait4, which also gives its resource usage.

    Signals to the group go through `signal`, under the same lock as the reaping: while the
    leader is unreaped its pid cannot be reused, so a group signal never reaches a stranger.
    """

    def __init__(self, proc: "subprocess.Popen[bytes]") -> None:
        self.done = threading.Event()
        self.exit_code: int | None = None
        self.cpu_s: float | None = None
        self.peak_memory_mb: float | None = None
        self._pgid = proc.pid  # start_new_session made the child its group's leader
        self._lock = threading.Lock()
        _spawn_thread(self._reap, proc, name=f"reap-{proc.pid}")

    def signal(self, sig: signal.Signals) -> None:
        with self._lock:
            if not self.done.is_set():
                _kill_group(self._pgid, sig)

    def _reap(self, proc: "subprocess.Popen[bytes]") -> None:
        try:
            # WNOWAIT: see the exit but leave the zombie, which keeps the pgid reserved.
            os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            with self._lock:
                _kill_group(self._pgid, signal.SIGKILL)
                _, status, usage = os.wait4(proc.pid, 0)
                self._record(proc, status, usage)
                self.done.set()
        except ChildProcessError:
            self.done.set()

    def _record(
        self, proc: "subprocess.Popen[bytes]", status: int, usage: resource.struct_rusage
    ) -> None:
        code = os.waitstatus_to_exitcode(status)
        # A signal death reads as 128+N, the shell's and Docker's convention (137 = KILL).
        self.exit_code = 128 - code if code < 0 else code
        proc.returncode = self.exit_code  # reaped here, so Popen must not wait for it again
        self.cpu_s = usage.ru_utime + usage.ru_stime
        self.peak_memory_mb = usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def job_identity(config: Config) -> tuple[int, int] | None:
    """(uid, gid) a job runs as when the agent runs as root, so that a job never has root
    unless the operator asks: the numeric uid[:gid] of JOBYARD_CONTAINER_USER (gid = uid
    when not given), else nobody. None when the agent is not root: it cannot switch users,
    and the job runs as the agent's own unprivileged user."""
    if os.geteuid() != 0:
        return None
    uid_text, _, gid_text = config.container_user.partition(":")
    if not uid_text.isdigit() or (gid_text and not gid_text.isdigit()):
        return NOBODY, NOBODY  # a user name means nothing outside the image it names
    return int(uid_text), int(gid_text or uid_text)


def gpu_env(gpus: tuple[str, ...]) -> dict[str, str]:
    """The variables through which CUDA and NVIDIA's container tools see only these GPUs.
    Empty for a job without GPUs: that hides every device (unset would show them all)."""
    visible = ",".join(gpus)
    return {"CUDA_VISIBLE_DEVICES": visible, "NVIDIA_VISIBLE_DEVICES": visible}


def _rlimits(job: JobRun) -> Callable[[], None]:
    """The function the child runs before exec: address space and CPU time limits."""
    memory = _within_hard_limit(resource.RLIMIT_AS, job.memory_mb * MIB)
    cpu = None
    if job.timeout_s is not None:
        # A backstop only (the wall-clock timeout is enforced by watch): CPU seconds can
        # exceed wall seconds with threads, so allow timeout x cores, and at least 1 s.
        seconds = int(job.timeout_s * max(job.cpu, 1.0)) + 1
        cpu = _within_hard_limit(resource.RLIMIT_CPU, seconds)

    def apply() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
        if cpu is not None:
            resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu))

    return apply


def _within_hard_limit(which: int, wanted: int) -> int:
    """An unprivileged process cannot raise a hard limit, so never ask for more."""
    hard = resource.getrlimit(which)[1]
    return wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)


def _pump(pipe: IO[bytes] | None, name: str, sink: OutputSink) -> None:
    """Feed one pipe to the sink until EOF; a failing sink leaves the pipe drained anyway."""
    if pipe is None:
        return
    deliver: OutputSink | None = sink
    with pipe:
        while data := pipe.read1(READ_SIZE):  # type: ignore[attr-defined]
            if deliver is None:
                continue
            try:
                deliver(name, data, clock.now())
            except Exception as exc:
                log_event(log, "output_sink_failed", level=logging.ERROR, error=repr(exc))
                deliver = None


def _kill_group(pgid: int, sig: signal.Signals) -> None:
    # An error means the whole group has already ended.
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, sig)


def _create_time(pid: int) -> float | None:
    try:
        return psutil.Process(pid).create_time()
    except psutil.Error:
        return None


def _read_record(path: Path) -> dict[str, Any] | None:
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return record if isinstance(record, dict) else None


def _kill_recorded(record: dict[str, Any]) -> int:
    """Kill the recorded group if its leader is still the very process that was started
    (same pid and start time), so a reused pid never costs a stranger its life."""
    pgid = record.get("pgid")
    if not isinstance(pgid, int):
        return 0
    recorded = record.get("create_time")
    if recorded is None or _create_time(pgid) != recorded:
        return 0
    _kill_group(pgid, signal.SIGKILL)
    log_event(
        log,
        "orphan_killed",
        job=record.get("job"),
        attempt=record.get("attempt"),
        worker=record.get("worker_id"),
        pgid=pgid,
    )
    return 1


def _slug(job: JobRun) -> str:
    """A file name for the attempt, whatever characters the job id holds."""
    return re.sub(r"[^A-Za-z0-9_.-]", "_", f"{job.job_id}-{job.attempt}")


def _spawn_thread(target: Any, *args: Any, name: str) -> threading.Thread:
    thread = threading.Thread(target=target, args=args, name=name, daemon=True)
    thread.start()
    return thread
