"""Configuration from JOBYARD_* environment variables, validated once at start.

Every process calls `Config.from_env()`; a bad value raises ConfigError naming the variable,
and the command line turns that into a one-line message and exit status 2.
"""

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any
from urllib.parse import urlparse

from shared.image_reference import image_reference_error
from shared.logs import LOG_FORMATS


class ConfigError(ValueError):
    pass


def _positive_float(text: str) -> float:
    value = float(text)
    if not value > 0:
        raise ValueError("must be a number above 0")
    return value


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a whole number above 0")
    return value


def _non_negative_int(text: str) -> int:
    value = int(text)
    if value < 0:
        raise ValueError("must be a whole number, 0 or more")
    return value


def _optional_float(text: str) -> float | None:
    return _positive_float(text) if text else None


def _optional_int(text: str) -> int | None:
    return _non_negative_int(text) if text else None


def _url(text: str) -> str:
    parsed = urlparse(text)
    if not parsed.scheme or not parsed.netloc:
        raise ValueError("must be a URL such as http://127.0.0.1:8080")
    return text.rstrip("/")


def _redis_url(text: str) -> str:
    if urlparse(text).scheme not in ("redis", "rediss", "unix"):
        raise ValueError("must be a redis:// URL")
    return text


def _bind(text: str) -> str:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError("must be HOST:PORT")
    return text


def _choice(*allowed: str) -> Callable[[str], str]:
    def parse(text: str) -> str:
        if text not in allowed:
            raise ValueError(f"must be one of {', '.join(allowed)}")
        return text

    return parse


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be true or false")


def _labels(text: str) -> dict[str, str]:
    """'gpu=a100,zone=eu' -> {'gpu': 'a100', 'zone': 'eu'}"""
    labels: dict[str, str] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ValueError("must be KEY=VALUE pairs separated by commas")
        labels[key.strip()] = value.strip()
    return labels


def _image(text: str) -> str:
    """The default image: a Docker image reference, by the rule the API's `image` obeys."""
    error = image_reference_error(text)
    if error is not None:
        raise ValueError(error)
    return text


def _image_list(text: str) -> tuple[str, ...]:
    return tuple(filter(None, (part.strip() for part in text.split(","))))


def _rate_limits(text: str) -> str:
    """'100/second;3000/minute': flask-limiter's notation, checked by its own parser."""
    from limits import parse_many  # only the API needs it

    try:
        parse_many(text)
    except ValueError:
        raise ValueError("must be limits such as 100/second;3000/minute") from None
    return text


def _setting(env: str, default: Any, parse: Callable[[str], Any] = str) -> Any:
    metadata = {"env": env, "parse": parse}
    if isinstance(default, dict):
        return field(default_factory=dict, metadata=metadata)
    return field(default=default, metadata=metadata)


@dataclass(frozen=True)
class Config:
    redis_url: str = _setting("JOBYARD_REDIS_URL", "redis://127.0.0.1:6379/0", _redis_url)
    redis_prefix: str = _setting("JOBYARD_REDIS_PREFIX", "jy:")
    api_url: str = _setting("JOBYARD_API_URL", "http://127.0.0.1:8080", _url)
    bind: str = _setting("JOBYARD_BIND", "127.0.0.1:8080", _bind)
    api_processes: int = _setting("JOBYARD_API_PROCESSES", 2, _positive_int)
    admin_token: str = _setting("JOBYARD_ADMIN_TOKEN", "")
    worker_join_token: str = _setting("JOBYARD_WORKER_JOIN_TOKEN", "")
    token: str = _setting("JOBYARD_TOKEN", "")
    # Signs the dashboard's session cookies; derived from the admin token when unset, so
    # rotating that token also ends every session.
    session_secret: str = _setting("JOBYARD_SESSION_SECRET", "")
    session_ttl_s: int = _setting("JOBYARD_SESSION_TTL_S", 12 * 3600, _positive_int)
    log_format: str = _setting("JOBYARD_LOG_FORMAT", "text", _choice(*LOG_FORMATS))
    heartbeat_s: float = _setting("JOBYARD_HEARTBEAT_S", 10.0, _positive_float)
    worker_timeout_s: float = _setting("JOBYARD_WORKER_TIMEOUT_S", 30.0, _positive_float)
    max_requeues: int = _setting("JOBYARD_MAX_REQUEUES", 3, _non_negative_int)
    assign_timeout_s: float = _setting("JOBYARD_ASSIGN_TIMEOUT_S", 60.0, _positive_float)
    deadline_grace_s: float = _setting("JOBYARD_DEADLINE_GRACE_S", 30.0, _positive_float)
    retry_backoff_s: float = _setting("JOBYARD_RETRY_BACKOFF_S", 1.0, _positive_float)
    retry_backoff_max_s: float = _setting("JOBYARD_RETRY_BACKOFF_MAX_S", 300.0, _positive_float)
    retention_s: float = _setting("JOBYARD_RETENTION_S", 7 * 86400.0, _positive_float)
    worker_retention_s: float = _setting("JOBYARD_WORKER_RETENTION_S", 3600.0, _positive_float)
    max_workers: int = _setting("JOBYARD_MAX_WORKERS", 10_000, _positive_int)
    public_metrics: bool = _setting("JOBYARD_PUBLIC_METRICS", False, _bool)
    rate_limit: str = _setting("JOBYARD_RATE_LIMIT", "200/second;6000/minute", _rate_limits)
    worker_rate_limit: str = _setting("JOBYARD_WORKER_RATE_LIMIT", "500/second", _rate_limits)
    placement: str = _setting("JOBYARD_PLACEMENT", "binpack", _choice("binpack", "spread"))
    starvation_s: float = _setting("JOBYARD_STARVATION_S", 300.0, _positive_float)
    max_job_cpu: float = _setting("JOBYARD_MAX_JOB_CPU", 64.0, _positive_float)
    max_job_memory_mb: int = _setting("JOBYARD_MAX_JOB_MEMORY_MB", 262144, _positive_int)
    max_output_bytes: int = _setting("JOBYARD_MAX_OUTPUT_BYTES", 10 * 1024 * 1024, _positive_int)
    max_request_bytes: int = _setting("JOBYARD_MAX_REQUEST_BYTES", 1024 * 1024, _positive_int)
    executor: str = _setting("JOBYARD_EXECUTOR", "docker", _choice("docker", "process"))
    default_image: str = _setting("JOBYARD_DEFAULT_IMAGE", "jobyard/busybox:latest", _image)
    allowed_images: tuple[str, ...] = _setting("JOBYARD_ALLOWED_IMAGES", (), _image_list)
    allow_network: bool = _setting("JOBYARD_ALLOW_NETWORK", False, _bool)
    container_user: str = _setting("JOBYARD_CONTAINER_USER", "65534:65534")
    readonly_rootfs: bool = _setting("JOBYARD_READONLY_ROOTFS", True, _bool)
    pids_limit: int = _setting("JOBYARD_PIDS_LIMIT", 256, _positive_int)
    agent_state_dir: str = _setting("JOBYARD_AGENT_STATE_DIR", ".jobyard/agent")
    worker_cpu: float | None = _setting("JOBYARD_WORKER_CPU", None, _optional_float)
    worker_memory_mb: int | None = _setting("JOBYARD_WORKER_MEMORY_MB", None, _optional_int)
    worker_gpus: int = _setting("JOBYARD_WORKER_GPUS", 0, _non_negative_int)
    reserve_cpu: float = _setting("JOBYARD_RESERVE_CPU", 0.0, float)
    reserve_memory_mb: int = _setting("JOBYARD_RESERVE_MEMORY_MB", 256, _non_negative_int)
    max_parallel_jobs: int = _setting("JOBYARD_MAX_PARALLEL_JOBS", 4, _positive_int)
    worker_labels: dict[str, str] = _setting("JOBYARD_WORKER_LABELS", {}, _labels)
    kill_grace_s: float = _setting("JOBYARD_KILL_GRACE_S", 5.0, _positive_float)
    agent_spool_mb: int = _setting("JOBYARD_AGENT_SPOOL_MB", 256, _non_negative_int)

    def __post_init__(self) -> None:
        if self.retry_backoff_max_s < self.retry_backoff_s:
            raise ConfigError(
                f"JOBYARD_RETRY_BACKOFF_MAX_S={self.retry_backoff_max_s:g}: must be at least "
                f"JOBYARD_RETRY_BACKOFF_S ({self.retry_backoff_s:g})"
            )

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Config":
        """Read every JOBYARD_* variable; keyword overrides win (tests and `jobyard up`)."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for setting in fields(cls):
            name = setting.metadata["env"]
            if name in env:
                try:
                    values[setting.name] = setting.metadata["parse"](env[name])
                except ValueError as exc:
                    raise ConfigError(f"{name}={env[name]!r}: {exc}") from None
        values.update(overrides)
        return cls(**values)
