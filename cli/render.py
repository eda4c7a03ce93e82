"""Plain-text rendering for the client commands: tables, ages, a job as readable lines."""

import shlex
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from typing import Any

from shared import clock


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns separated by two spaces; the last column is not padded."""
    columns = zip(headers, *rows, strict=False)
    widths = [max(len(str(cell)) for cell in column) for column in columns]
    lines = []
    for row in [headers, *rows]:
        cells = [str(cell).ljust(width) for cell, width in zip(row, widths, strict=False)]
        lines.append("  ".join(cells).rstrip())
    return "\n".join(lines)


def parse_time(value: str | None) -> datetime | None:
    if not value:
        return None
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def age(value: str | None) -> str:
    """'2026-11-23T10:00:00Z' -> '3m ago' (relative to now), '-' when unknown."""
    moment = parse_time(value)
    if moment is None:
        return "-"
    seconds = max(0, int(clock.now() - moment.timestamp()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size:
            return f"{seconds // size}{unit} ago"
    return f"{seconds}s ago"


def duration(start: str | None, end: str | None) -> str | None:
    began, ended = parse_time(start), parse_time(end)
    if began is None or ended is None:
        return None
    return f"{(ended - began).total_seconds():.1f} s"


def number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, int | float) else "-"


def resources(spec: Mapping[str, Any] | None) -> str:
    spec = spec or {}
    text = f"{number(spec.get('cpu'))} CPU, {number(spec.get('memory_mb'))} MB"
    if spec.get("gpus"):
        text += f", {spec['gpus']} GPU"
    return text


def command_line(command: Any) -> str:
    if isinstance(command, list):
        return shlex.join(str(part) for part in command)
    return str(command or "")


def outcome(job: Mapping[str, Any]) -> str:
    """'FAILED (exit code 2)', 'FAILED (oom, exit code 137)', 'CANCELLED (cancelled)', 'RUNNING'."""
    reason = job.get("reason")
    details = [str(reason)] if reason and reason != "exit_code" else []
    if job.get("exit_code") is not None:
        details.append(f"exit code {job['exit_code']}")
    state = str(job.get("state") or "?")
    return f"{state} ({', '.join(details)})" if details else state


def job_lines(job: Mapping[str, Any]) -> list[tuple[str, str]]:
    fields: list[tuple[str, Any]] = [
        ("id", job.get("id")),
        ("name", job.get("name")),
        ("state", outcome(job)),
        ("pending", job.get("pending_reason")),
        ("error", job.get("error")),
        ("attempt", job.get("attempt")),
        ("worker", job.get("worker_id")),
        ("image", job.get("image")),
        ("command", command_line(job.get("command"))),
        ("resources", resources(job.get("resources"))),
        ("labels", ", ".join(f"{k}={v}" for k, v in (job.get("labels") or {}).items())),
        ("created", job.get("created_at")),
        ("queued", job.get("queued_at")),
        ("assigned", job.get("assigned_at")),
        ("started", job.get("started_at")),
        ("finished", job.get("finished_at")),
        ("duration", duration(job.get("started_at"), job.get("finished_at"))),
        ("output", "truncated" if job.get("output_truncated") else None),
    ]
    return [(label, str(value)) for label, value in fields if value not in (None, "")]


def job_text(job: Mapping[str, Any]) -> str:
    return "\n".join(f"{label + ':':<11}{value}" for label, value in job_lines(job))

