"""The host as the agent reports it: allocatable capacity at registration and live metrics
in heartbeats, both from psutil."""

import os
from typing import Any

import psutil

from shared.config import Config

MIB = 1024 * 1024


def detect_capacity(config: Config) -> dict[str, Any]:
    """Logical CPUs and total memory minus the configured reserve, unless overridden.

    Raises ValueError when the reserve leaves nothing to offer, since a worker that can
    hold no job would only confuse placement.
    """
    cpu = config.worker_cpu
    if cpu is None:
        cpu = round((psutil.cpu_count(logical=True) or 1) - config.reserve_cpu, 3)
    memory_mb = config.worker_memory_mb
    if memory_mb is None:
        memory_mb = psutil.virtual_memory().total // MIB - config.reserve_memory_mb
    if cpu <= 0 or memory_mb <= 0:
        raise ValueError(
            f"this worker would offer {cpu:g} CPU and {memory_mb} MB: lower "
            "JOBYARD_RESERVE_CPU / JOBYARD_RESERVE_MEMORY_MB or set JOBYARD_WORKER_CPU / "
            "JOBYARD_WORKER_MEMORY_MB"
        )
    return {"cpu": float(cpu), "memory_mb": int(memory_mb), "gpus": config.worker_gpus}


def host_metrics() -> dict[str, Any]:
    """CPU use since the previous call, memory in MiB and the 1-minute load average."""
    memory = psutil.virtual_memory()
    return {
        "cpu_percent": psutil.cpu_percent(interval=None),
        "memory_used_mb": (memory.total - memory.available) // MIB,
        "memory_total_mb": memory.total // MIB,
        "load1": round(os.getloadavg()[0], 2),
    }
