"""A filtered job list as a file, CSV or JSON, for the dashboard's download links.

The file is written while it is read, a page of EXPORT_PAGE jobs at a time, so an export
of 100,000 jobs holds one page in memory. A Redis failure after the first bytes can no
longer become a 503: the file ends short, and a CSV's last line says so.
"""

import csv
import io
import json
import logging
import shlex
from collections.abc import Iterator
from typing import Any

import redis

from api.auth import current
from shared.schemas.jobs import JobSchema
from shared.store.jobs import JobStore

log = logging.getLogger("jobyard.api")

EXPORT_PAGE = 500
CSV_COLUMNS = (
    "id", "name", "owner", "state", "reason", "exit_code", "error", "attempt", "priority",
    "cpu", "memory_mb", "gpus", "worker_id", "image", "command", "labels", "created_at",
    "started_at", "finished_at",
)  # fmt: skip
# A spreadsheet runs a cell that starts with one of these as a formula: a job's name or
# command is the submitter's text, so such a cell is written with a leading quote (OWASP's
# advice on CSV injection).
FORMULA_STARTS = ("=", "+", "-", "@", "\t", "\r")


def matching_jobs(jobs: JobStore, filters: dict[str, Any]) -> Iterator[dict[str, Any]]:
    """Every job the filters select, newest first, as the API shows it."""
    schema = JobSchema()
    cursor = None
    while True:
        page, cursor = jobs.query(limit=EXPORT_PAGE, cursor=cursor, **filters)
        for job in page:
            yield schema.dump(job)
        if cursor is None:
            return


def as_json(jobs: Iterator[dict[str, Any]]) -> Iterator[str]:
    """One JSON array, a job a line."""
    yield "["
    separator = "\n"
    try:
        for job in jobs:
            yield separator + json.dumps(job)
            separator = ",\n"
    except redis.RedisError as exc:
        log.warning("event=export_ended_by_redis_error error=%r", str(exc))
        return  # an unclosed array: a parser says the file is cut, rather than read it whole
    yield "\n]\n"


def as_csv(jobs: Iterator[dict[str, Any]]) -> Iterator[str]:
    yield _csv_line(CSV_COLUMNS)
    try:
        for job in jobs:
            yield _csv_line(_csv_row(job))
    except redis.RedisError as exc:
        log.warning("event=export_ended_by_redis_error error=%r", str(exc))
        yield _csv_line(["# cut short: the store could not be read; export again"])


def filename(filters: dict[str, Any], extension: str) -> str:
    who = "" if current().is_admin and not filters.get("owner") else f"-{current().name}"
    state = f"-{filters['state'].lower()}" if filters.get("state") else ""
    return f"jobs{who}{state}.{extension}"


def _csv_row(job: dict[str, Any]) -> list[Any]:
    resources = job.get("resources") or {}
    labels = ";".join(f"{k}={v}" for k, v in sorted((job.get("labels") or {}).items()))
    row = {
        **job,
        "cpu": resources.get("cpu"),
        "memory_mb": resources.get("memory_mb"),
        "gpus": resources.get("gpus"),
        "command": shlex.join(job.get("command") or []),
        "labels": labels,
    }
    return [_defused(row.get(column)) for column in CSV_COLUMNS]


def _defused(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(FORMULA_STARTS):
        return "'" + value
    return "" if value is None else value


def _csv_line(values: Any) -> str:
    out = io.StringIO()
    csv.writer(out).writerow(values)
    return out.getvalue()
