"""Results not yet delivered, kept as files in the agent's state directory: written before
the first delivery attempt and removed once the API has answered, so a result survives an
outage of the control plane and a crash or restart of the agent itself."""

import contextlib
import json
import logging
import os
from collections.abc import Callable
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Any

from shared.client import STALE_ATTEMPT, ApiError
from shared.retry import Backoff, GaveUp, retry
from worker_agent.logfmt import log_event
from worker_agent.updates import Reporter

log = logging.getLogger(__name__)


class Outcome(Enum):
    DONE = "done"  # the API took it
    REFUSED = "refused"  # the API answered no (409: the attempt is not ours any more)
    ABANDONED = "abandoned"  # we stopped asking: the attempt went stale or the agent stops


@dataclass(frozen=True)
class PendingResult:
    job_id: str
    attempt: int
    worker_id: str
    # The worker's own token: after a restart the agent is a new worker, and only the
    # worker that ran the attempt may report it.
    token: str
    body: dict[str, Any]

    @property
    def file_name(self) -> str:
        # Hex keeps any job id a safe, reversible file name.
        return f"{self.job_id.encode().hex()}.{self.attempt}.json"


class ResultOutbox:
    def __init__(self, directory: str | Path) -> None:
        self.directory = Path(directory)

    def put(self, result: PendingResult) -> None:
        """Write durably (it holds a token: readable by this user only)."""
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        path = self.directory / result.file_name
        temporary = path.with_suffix(".tmp")
        fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as out:
            json.dump(result.__dict__, out)
            out.flush()
            os.fsync(out.fileno())
        temporary.replace(path)

    def remove(self, result: PendingResult) -> None:
        with contextlib.suppress(FileNotFoundError):
            (self.directory / result.file_name).unlink()

    def pending(self) -> list[PendingResult]:
        """Every result kept, oldest first; unreadable files are logged and removed."""
        if not self.directory.is_dir():
            return []
        paths = sorted(self.directory.glob("*.json"), key=lambda path: path.stat().st_mtime)
        kept = []
        for path in paths:
            try:
                kept.append(PendingResult(**json.loads(path.read_text())))
            except (OSError, ValueError, TypeError) as exc:
                log_event(log, "result_file_unreadable", logging.ERROR, path=path, error=exc)
                path.unlink(missing_ok=True)
        return kept

    def deliver(
        self,
        reporter: Reporter,
        result: PendingResult,
        wait: Callable[[float], bool],
        backoff: Backoff,
    ) -> Outcome:
        """Post the result until the API answers (`wait` as for retry()); its file goes once
        the API has taken or refused it, and stays (for the next start) if we give up first."""
        fields = {"job": result.job_id, "attempt": result.attempt, "worker": result.worker_id}

        def failed(exc: ApiError, delay: float) -> None:
            log_event(log, "result_failed", logging.WARNING, error=exc, retry_s=delay, **fields)

        try:
            retry(
                lambda: reporter.result(
                    result.worker_id, result.job_id, result.attempt, result.body
                ),
                wait,
                backoff=backoff,
                on_retry=failed,
            )
        except GaveUp:
            return Outcome.ABANDONED
        except ApiError as exc:
            level = logging.WARNING if exc.status in STALE_ATTEMPT else logging.ERROR
            log_event(log, "result_refused", level, status=exc.status, error=exc, **fields)
            self.remove(result)
            return Outcome.REFUSED
        self.remove(result)
        return Outcome.DONE
