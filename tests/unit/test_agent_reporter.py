"""The agent's reporter: a report alone goes through its per-job call; reports made while a
call is out go together in one updates call, each caller hearing its own answer (or its own
refusal); a failure of the whole call reaches every caller; one worker's reports per call."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest

from shared.client import ApiError, ApiUnreachable
from tests.helpers import wait_until
from tests.unit.test_agent_loop import JOIN_TOKEN, FakeApi
from worker_agent.updates import Report, Reporter


class HeldApi(FakeApi):
    """The first call waits for `release`, so that the next reports queue behind it."""

    def __init__(self) -> None:
        super().__init__()
        self.release = threading.Event()
        self.first_call_out = threading.Event()
        self.senders: list[tuple[str, str]] = []  # (call, the thread that made it)
        self._held = False

    def _enter(self, name: str, *args: Any) -> None:
        self.senders.append((name, threading.current_thread().name))
        if not self._held:
            self._held = True
            self.first_call_out.set()
            assert self.release.wait(10)
        super()._enter(name, *args)


def queued_behind_a_held_call(
    api: HeldApi, reporter: Reporter, calls: list[Callable[[], Any]]
) -> list[Any]:
    """Runs `calls` while the first of them is held; their answers, or the errors raised."""
    with ThreadPoolExecutor(len(calls)) as pool:
        first = pool.submit(calls[0])
        assert api.first_call_out.wait(10)
        rest = [pool.submit(call) for call in calls[1:]]
        wait_until(lambda: len(reporter._queued) == len(calls) - 1)
        api.release.set()
        futures = [first, *rest]
        return [f.exception() or f.result() for f in futures]


def test_a_report_alone_goes_through_its_per_job_call() -> None:
    api = FakeApi()
    reporter = Reporter(api)  # type: ignore[arg-type]
    assert reporter.start("w-1", "j1", 1) == {"state": "RUNNING", "version": 3}
    assert reporter.result("w-1", "j1", 1, {"exit_code": 0})["state"] == "COMPLETED"
    assert api.names() == ["start", "result"]


def test_reports_made_meanwhile_go_in_one_call_each_answered_on_its_own() -> None:
    api = HeldApi()
    api.errors["result"] = [ApiError(409, "stale_attempt", "not current")]
    reporter = Reporter(api)  # type: ignore[arg-type]
    answers = queued_behind_a_held_call(api, reporter, [
        lambda: reporter.start("w-1", "j0", 1),
        lambda: reporter.start("w-1", "j1", 1),
        lambda: reporter.result("w-1", "j2", 1, {"exit_code": 0}),
        lambda: reporter.start("w-1", "j3", 2),
    ])  # fmt: skip

    assert answers[0] == {"state": "RUNNING", "version": 3}
    assert (answers[1]["status"], answers[1]["state"]) == (200, "RUNNING")
    assert isinstance(answers[2], ApiError)
    assert (answers[2].status, answers[2].code) == (409, "stale_attempt")
    assert answers[3]["id"] == "j3" and answers[3]["attempt"] == 2
    # The first alone, the three queued behind it in one call, in the order they came.
    assert [name for name in api.names() if name not in ("start", "result")] == ["updates"]
    assert api.calls_of("updates") == [(JOIN_TOKEN, ("w-1", 3))]
    assert [args for _, args in api.calls_of("start")] == [("j0", 1), ("j1", 1), ("j3", 2)]


def test_a_failed_call_reaches_every_report_in_it_as_its_own_error() -> None:
    api = HeldApi()
    api.errors["updates"] = [ApiUnreachable("connection refused")]
    reporter = Reporter(api)  # type: ignore[arg-type]
    answers = queued_behind_a_held_call(api, reporter, [
        lambda: reporter.start("w-1", "j0", 1),
        lambda: reporter.start("w-1", "j1", 1),
        lambda: reporter.start("w-1", "j2", 1),
    ])  # fmt: skip

    assert answers[0]["state"] == "RUNNING"
    errors = answers[1:]
    assert all(isinstance(e, ApiError) and e.status == 0 for e in errors)
    assert errors[0] is not errors[1]
    # Nothing stays queued: the next report goes out alone.
    assert reporter.start("w-1", "j1", 1)["state"] == "RUNNING"


def test_each_call_carries_one_workers_reports() -> None:
    api = HeldApi()
    reporter = Reporter(api)  # type: ignore[arg-type]
    queued_behind_a_held_call(api, reporter, [
        lambda: reporter.start("w-1", "j0", 1),
        lambda: reporter.start("w-1", "j1", 1),
        lambda: reporter.start("w-2", "j2", 1),
        lambda: reporter.start("w-1", "j3", 1),
    ])  # fmt: skip

    # w-1's two queued reports together, then w-2's alone through its per-job call.
    assert api.calls_of("updates") == [(JOIN_TOKEN, ("w-1", 2))]
    assert [args for _, args in api.calls_of("start")] == [
        ("j0", 1), ("j1", 1), ("j3", 1), ("j2", 1),
    ]  # fmt: skip


def test_a_sender_sends_no_more_once_its_own_report_is_answered() -> None:
    api = HeldApi()
    reporter = Reporter(api)  # type: ignore[arg-type]
    queued_behind_a_held_call(api, reporter, [
        lambda: reporter.start("w-1", "j0", 1),
        lambda: reporter.start("w-1", "j1", 1),
        lambda: reporter.start("w-1", "j2", 1),
    ])  # fmt: skip

    # The first caller sent its own report; one of those waiting sent the other two.
    (first, first_sender), (batch, batch_sender) = api.senders[:2]
    assert (first, batch) == ("start", "updates")
    assert first_sender != batch_sender


@pytest.mark.parametrize("body", [None, {"exit_code": 3}])
def test_an_item_says_what_it_reports(body: dict[str, Any] | None) -> None:
    item = Report("w-1", "j1", 2, body).item()
    expected = {"start": True} if body is None else {"result": body}
    assert item == {"id": "j1", "attempt": 2, **expected}
