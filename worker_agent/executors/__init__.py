"""Executors run one attempt of a job: `docker` (a container per attempt) and `process`
(a plain child process); `make_executor` picks the one the configuration names."""

from shared.config import Config
from worker_agent.executors.base import ExecResult, Executor, JobRun, OutputSink


class ExecutorUnavailable(RuntimeError):
    """The configured executor cannot work on this host (no Docker daemon answers)."""


def make_executor(config: Config) -> Executor:
    # Imported here so a process-executor host never needs a Docker daemon to start.
    if config.executor == "process":
        from worker_agent.executors.process import ProcessExecutor

        return ProcessExecutor(config)
    from docker.errors import DockerException

    from worker_agent.executors.docker import DockerExecutor

    try:
        return DockerExecutor(config)
    except DockerException as exc:
        raise ExecutorUnavailable(
            f"JOBYARD_EXECUTOR=docker but no Docker daemon answers ({exc}); start dockerd "
            "or set JOBYARD_EXECUTOR=process"
        ) from exc


__all__ = ["ExecResult", "Executor", "ExecutorUnavailable", "JobRun", "OutputSink", "make_executor"]
