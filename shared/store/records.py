"""Turns the flat Redis hashes of jobs and workers, and the entries of output streams, into
plain dicts for the wire."""

import json
from datetime import UTC, datetime
from typing import Any

from shared.resources import Resources

TIMESTAMPS = ("created_at", "queued_at", "assigned_at", "started_at", "finished_at")


def _float(value: str | None) -> float | None:
    return float(value) if value not in (None, "") else None


def _int(value: str | None) -> int | None:
    return int(value) if value not in (None, "") else None


def job_from_hash(h: dict[str, str]) -> dict[str, Any]:
    spec = json.loads(h["spec"])
    job: dict[str, Any] = {
        **spec,
        "id": h["id"],
        "owner": h["owner"],
        "state": h["state"],
        "reason": h.get("reason") or None,
        "exit_code": _int(h.get("exit_code")),
        "error": h.get("error") or None,
        "attempt": int(h["attempt"]),
        "worker_id": h.get("worker_id") or None,
        "version": int(h["version"]),
        "pending_reason": _retry_reason(h) or h.get("pending_reason") or None,
        "retries": int(h.get("retries") or 0),
        "max_retries": int(h.get("max_retries") or 0),
        "retry_at": _float(h.get("retry_at")),
        "cancel_requested": h.get("cancel_requested") == "1",
        "output_bytes": int(h.get("output_bytes", 0)),
        "output_truncated": h.get("output_truncated") == "1",
        "metrics": json.loads(h["metrics"]) if h.get("metrics") else None,
        "resources": Resources(int(h["cpu_m"]), int(h["memory_mb"]), int(h["gpus"])).to_wire(),
    }
    for name in TIMESTAMPS:
        job[name] = _float(h.get(name))
    return job


def _retry_reason(h: dict[str, str]) -> str | None:
    """While a job waits out its retry backoff: which retry, when, and after what."""
    if not h.get("retry_at"):
        return None
    at = datetime.fromtimestamp(float(h["retry_at"]), UTC).isoformat(timespec="seconds")
    after = h.get("reason") or "a failure"
    if h.get("exit_code"):
        after += f" {h['exit_code']}"
    return f"retry {h['retries']} of {h['max_retries']} at {at} after {after}"


def worker_from_hash(h: dict[str, str], running_jobs: list[str]) -> dict[str, Any]:
    capacity = Resources(int(h["cpu_m"]), int(h["memory_mb"]), int(h["gpus"]))
    reserved = Resources(int(h["res_cpu_m"]), int(h["res_memory_mb"]), int(h["res_gpus"]))
    return {
        "id": h["id"],
        "hostname": h["hostname"],
        "status": h["status"],
        "executor": h["executor"],
        # Workers registered before the field existed allow none, as their agents did.
        "allows_network": h.get("allows_network") == "1",
        "labels": json.loads(h["labels"]),
        "capacity": capacity.to_wire(),
        "max_parallel_jobs": int(h["slots"]),
        "reserved": {**reserved.to_wire(), "jobs": int(h["res_slots"])},
        "running_jobs": sorted(running_jobs),
        "metrics": json.loads(h["metrics"]),
        "registered_at": float(h["registered_at"]),
        "last_seen": float(h["last_seen"]),
    }


def chunk_from_entry(entry_id: str, fields: dict[str, str]) -> dict[str, Any]:
    """An output stream entry: its number (entry ids are N-0) is the chunk's offset."""
    return {
        "offset": int(entry_id.split("-")[0]),
        "stream": fields["stream"],
        "at": float(fields["at"]),
        "data": fields["data"],
    }
