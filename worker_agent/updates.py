"""The agent's reports of its attempts (a start, a result), sent together when there are
several: each caller waits for its own answer, as from the per-job call, while one of them
sends what was queued meanwhile in one POST /workers/{id}/updates. Alone, a report goes
through its per-job endpoint, so a quiet agent pays nothing for the batching
and a busy one pays one request for many jobs."""

import threading
from collections.abc import Mapping
from concurrent.futures import Future
from dataclasses import dataclass, field
from typing import Any

from shared.batches import MAX_BATCH
from shared.client import ApiClient, ApiError


@dataclass(eq=False)  # each report is its own: compared by identity
class Report:
    worker_id: str
    job_id: str
    attempt: int
    result: Mapping[str, Any] | None = None  # None: the attempt started
    answer: "Future[Any]" = field(default_factory=Future)

    def item(self) -> dict[str, Any]:
        """The report as an item of the updates call."""
        item: dict[str, Any] = {"id": self.job_id, "attempt": self.attempt}
        if self.result is None:
            return {**item, "start": True}
        return {**item, "result": dict(self.result)}


class Reporter:
    def __init__(self, client: ApiClient) -> None:
        self.client = client
        self._changed = threading.Condition()  # a report queued or answered, or a sender gone
        self._queued: list[Report] = []
        self._sending = False

    def start(self, worker_id: str, job_id: str, attempt: int) -> Any:
        """What POST .../start answers; its ApiError on a refusal or a failure."""
        return self._send(Report(worker_id, job_id, attempt))

    def result(self, worker_id: str, job_id: str, attempt: int, body: Mapping[str, Any]) -> Any:
        """What POST .../result answers; its ApiError on a refusal or a failure."""
        return self._send(Report(worker_id, job_id, attempt, body))

    def _send(self, report: Report) -> Any:
        """Wait for the answer; while no one else sends, send what is queued. A sender stops
        once its own report is answered (its attempt must not wait on others'), and a
        waiting caller takes over."""
        with self._changed:
            self._queued.append(report)
            while not report.answer.done() and self._sending:
                self._changed.wait()
            leading = not report.answer.done()
            self._sending = self._sending or leading
        if leading:
            try:
                while not report.answer.done():
                    self._send_batch()
            finally:
                with self._changed:
                    self._sending = False
                    self._changed.notify_all()
        return report.answer.result()

    def _send_batch(self) -> None:
        """One call: the first queued report's worker's reports (a re-registered agent may
        still hold an older worker's), in the order they came."""
        with self._changed:
            worker_id = self._queued[0].worker_id
            batch = [r for r in self._queued if r.worker_id == worker_id][:MAX_BATCH]
            taken = set(batch)
            self._queued = [r for r in self._queued if r not in taken]
        try:
            self._deliver(worker_id, batch)
        except Exception as exc:  # every caller hears of it, and may retry its own
            for report in batch:
                if not report.answer.done():
                    report.answer.set_exception(_copy(exc))
        with self._changed:
            self._changed.notify_all()

    def _deliver(self, worker_id: str, batch: list[Report]) -> None:
        if len(batch) == 1:
            (report,) = batch
            report.answer.set_result(self._per_job(report))
            return
        answers = self.client.updates(worker_id, [report.item() for report in batch])
        for report, answer in zip(batch, answers, strict=True):
            if answer["status"] == 200:
                report.answer.set_result(answer)
            else:
                error = ApiError(answer["status"], answer.get("code") or "refused", answer["error"])
                report.answer.set_exception(error)

    def _per_job(self, report: Report) -> Any:
        if report.result is None:
            return self.client.start(report.job_id, report.attempt)
        return self.client.result(report.job_id, report.attempt, report.result)


def _copy(exc: Exception) -> Exception:
    """Each waiting caller raises an error of its own (a traceback is one per raise)."""
    if isinstance(exc, ApiError):
        return ApiError(exc.status, exc.code, exc.message, exc.details, exc.retry_after_s)
    return RuntimeError(f"reporting failed: {exc!r}")
