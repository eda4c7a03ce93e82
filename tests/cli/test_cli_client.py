"""The client commands against a scripted fake API: what they send, what they print, and the
exit status of `submit --follow` / `logs -f`, which mirrors the job's exit code."""

import json
from collections.abc import Callable

import pytest
from click.testing import Result

from cli.follow import exit_status
from shared.client import ServerEvent, lines_of, parse_events
from shared.resources import DEFAULT_JOB_RESOURCES
from tests.cli.fakeapi import FakeApi, Raw

JOB = {
    "id": "j1",
    "name": "build",
    "state": "RUNNING",
    "reason": None,
    "exit_code": None,
    "attempt": 1,
    "worker_id": "w1",
    "version": 3,
    "created_at": "2026-11-23T10:00:00Z",
    "started_at": "2026-11-23T10:00:01Z",
    "finished_at": None,
    "pending_reason": None,
    "resources": {"cpu": 0.5, "memory_mb": 256, "gpus": 0},
    "image": "jobyard/busybox:latest",
    "command": ["sh", "-c", "echo hi"],
}


def chunk(offset: int, stream: str, data: str) -> dict[str, object]:
    return {"offset": offset, "stream": stream, "at": "2026-11-23T10:00:02Z", "data": data}


def output(chunks: list[dict[str, object]], next_offset: int, complete: bool) -> dict[str, object]:
    return {"chunks": chunks, "next_offset": next_offset, "complete": complete}


@pytest.fixture
def run(fake_api: FakeApi, jobyard: Callable[..., Result]) -> Callable[..., Result]:
    """`jobyard ARGS...` pointed at the fake API."""
    env = {"JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "t0k"}
    return lambda *args: jobyard(*args, env=env)


def test_submit_sends_the_wire_shape_and_prints_the_id(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, {**JOB, "state": "QUEUED"}))
    result = run(
        "submit", "--cpu", "1.5", "--memory", "128", "--timeout", "30", "--priority", "5",
        "--name", "build", "--image", "alpine", "--env", "A=1", "--env", "B=x=y",
        "--label", "team=ml", "--", "sh", "-c", "echo hi",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert result.stdout == "j1\n"
    (sent,) = fake_api.sent("POST", "/api/v1/jobs")
    assert sent.headers["Authorization"] == "Bearer t0k"
    assert sent.body == {
        "command": ["sh", "-c", "echo hi"],
        "resources": {"cpu": 1.5, "memory_mb": 128},
        "image": "alpine",
        "timeout_s": 30.0,
        "priority": 5,
        "name": "build",
        "env": {"A": "1", "B": "x=y"},
        "labels": {"team": "ml"},
    }


def test_submit_leaves_unset_options_to_the_server(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, JOB))
    assert run("submit", "ls", "-la").exit_code == 0
    assert run("submit", "--memory", "64", "ls").exit_code == 0
    first, second = fake_api.sent("POST", "/api/v1/jobs")
    # No resources of its own: the API's, DEFAULT_JOB_RESOURCES, apply (tests/integration/
    # test_openapi.py checks the API's and its document's defaults are those).
    assert first.body == {"command": ["ls", "-la"]}
    assert second.body == {"command": ["ls"], "resources": {"memory_mb": 64}}


def test_submit_help_shows_the_apis_resource_defaults(run: Callable[..., Result]) -> None:
    result = run("submit", "--help")
    assert result.exit_code == 0, result.output
    help_text = " ".join(result.output.split())
    default = DEFAULT_JOB_RESOURCES.to_wire()
    assert f"CPU cores the job needs [default: {default['cpu']:g}]" in help_text
    assert f"Memory limit in MB [default: {default['memory_mb']}]" in help_text


def test_submit_rejects_a_malformed_env_pair(run: Callable[..., Result]) -> None:
    result = run("submit", "--env", "NOEQUALS", "--", "true")
    assert result.exit_code == 2
    assert "KEY=VALUE" in result.stderr


def sse_chunk(offset: int, stream: str, data: str) -> str:
    return f"id: {offset}\ndata: {json.dumps(chunk(offset, stream, data))}\n\n"


def sse_end(**job: object) -> str:
    end = {"id": "j1", "reason": None, "exit_code": None, "error": None, **job}
    return f"event: end\ndata: {json.dumps(end)}\n\n"


def stream(*events: str) -> Raw:
    return Raw(("retry: 2000\n\n" + "".join(events)).encode())


STREAM = "/api/v1/jobs/j1/output/stream"


@pytest.fixture
def quick_reconnect(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("cli.follow.RECONNECT_PAUSE_S", 0.01)


def test_submit_follow_streams_and_exits_with_the_job_code(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, JOB))
    fake_api.answer(
        "GET", STREAM,
        stream(
            sse_chunk(1, "stdout", "hello\n"),
            ": keep-alive\n\n",
            sse_chunk(2, "stderr", "oops\n"),
            sse_chunk(3, "stdout", "bye\n"),
            sse_end(state="FAILED", reason="exit_code", exit_code=3),
        ),
    )  # fmt: skip
    result = run("submit", "--follow", "--", "sh", "-c", "exit 3")
    assert result.exit_code == 3, result.output
    assert result.stdout == "hello\nbye\n"
    assert result.stderr == "job j1 submitted\noops\n"
    (sent,) = fake_api.sent("GET", STREAM)
    assert sent.headers["Authorization"] == "Bearer t0k"
    assert "Last-Event-ID" not in sent.headers


def test_logs_follow_of_a_cancelled_job_exits_1_with_its_state(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer(
        "GET",
        STREAM,
        stream(sse_chunk(1, "stdout", "x"), sse_end(state="CANCELLED", reason="cancelled")),
    )
    result = run("logs", "-f", "j1")
    assert result.exit_code == 1
    assert result.stdout == "x"
    assert "CANCELLED (cancelled)" in result.stderr


def test_follow_resumes_after_the_last_chunk_printed_when_the_stream_drops(
    fake_api: FakeApi, run: Callable[..., Result], quick_reconnect: None
) -> None:
    fake_api.answer(
        "GET", STREAM,
        stream(sse_chunk(1, "stdout", "one\n"), sse_chunk(2, "stdout", "two\n")),
        (503, {"error": {"code": "unavailable", "message": "the job store is unreachable"}}),
        stream(sse_chunk(3, "stdout", "three\n"), sse_end(state="COMPLETED", exit_code=0)),
    )  # fmt: skip
    result = run("logs", "-f", "j1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "one\ntwo\nthree\n"
    resumed = [r.headers.get("Last-Event-ID") for r in fake_api.sent("GET", STREAM)]
    assert resumed == [None, "2", "2"]


def test_follow_of_an_unknown_job_fails_at_once(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("GET", STREAM, (404, {"error": {"code": "not_found", "message": "no job j1"}}))
    result = run("logs", "-f", "j1")
    assert result.exit_code == 1
    assert result.stderr == "error: no job j1\n"
    assert len(fake_api.sent("GET", STREAM)) == 1


def test_follow_gives_up_on_a_stream_that_keeps_ending_early(
    fake_api: FakeApi,
    run: Callable[..., Result],
    quick_reconnect: None,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr("cli.follow.RECONNECT_S", 0.2)
    fake_api.answer("GET", STREAM, stream(": keep-alive\n\n"))
    result = run("logs", "-f", "j1")
    assert result.exit_code == 1
    assert "ended early" in result.stderr
    assert len(fake_api.sent("GET", STREAM)) > 1


def test_logs_without_follow_prints_what_is_there(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer(
        "GET", "/api/v1/jobs/j1/output",
        output([chunk(0, "stdout", "a\n")], 2, False),
        output([], 2, False),
    )  # fmt: skip
    result = run("logs", "j1")
    assert result.exit_code == 0
    assert result.stdout == "a\n"


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        ({"state": "COMPLETED", "exit_code": 0}, 0),
        ({"state": "FAILED", "reason": "exit_code", "exit_code": 2}, 2),
        ({"state": "FAILED", "reason": "exit_code", "exit_code": -9}, 137),
        ({"state": "FAILED", "reason": "exit_code", "exit_code": 256}, 1),
        ({"state": "FAILED", "reason": "oom", "exit_code": 137}, 137),
        ({"state": "FAILED", "reason": "error", "exit_code": None}, 1),
        ({"state": "FAILED", "reason": "timeout", "exit_code": 0}, 1),
    ],
)
def test_exit_status(job: dict[str, object], expected: int) -> None:
    assert exit_status(job) == expected


def test_api_error_prints_its_message_and_exits_1(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    error = {"error": {"code": "conflict", "message": "job j1 is already COMPLETED"}}
    fake_api.answer("POST", "/api/v1/jobs/j1/cancel", (409, error))
    result = run("cancel", "j1")
    assert result.exit_code == 1
    assert result.stderr == "error: job j1 is already COMPLETED\n"


def test_unreachable_api_says_what_to_do(jobyard: Callable[..., Result]) -> None:
    from tests.helpers import free_port

    result = jobyard("jobs", env={"JOBYARD_API_URL": f"http://127.0.0.1:{free_port()}"})
    assert result.exit_code == 1
    assert "cannot reach the jobyard API" in result.stderr
    assert "jobyard up" in result.stderr


def test_status_text_and_json(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer(
        "GET", "/api/v1/jobs/j1", {**JOB, "state": "FAILED", "reason": "oom", "exit_code": 137}
    )
    text = run("status", "j1")
    assert text.exit_code == 0
    assert "FAILED (oom, exit code 137)" in text.stdout
    assert "sh -c 'echo hi'" in text.stdout
    assert "0.5 CPU, 256 MB" in text.stdout
    raw = run("status", "--json", "j1")
    assert '"exit_code": 137' in raw.stdout


def test_cancel_and_retry(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer("POST", "/api/v1/jobs/j1/cancel", {**JOB, "state": "RUNNING"})
    fake_api.answer("POST", "/api/v1/jobs/j1/retry", {**JOB, "state": "QUEUED", "attempt": 2})
    assert run("cancel", "j1").stdout == "j1: cancel requested (RUNNING)\n"
    assert run("retry", "j1").stdout == "j1: QUEUED (attempt 2)\n"


def test_jobs_table(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    body = {"jobs": [JOB], "next_cursor": "c2", "counts": {"RUNNING": 1, "QUEUED": 0}}
    fake_api.answer("GET", "/api/v1/jobs", body)
    result = run("jobs", "--state", "running", "--limit", "5")
    assert result.exit_code == 0, result.output
    header, row = result.stdout.splitlines()[:2]
    assert header.split() == ["ID", "NAME", "STATE", "EXIT", "WORKER", "CREATED", "COMMAND"]
    assert row.split()[:5] == ["j1", "build", "RUNNING", "-", "w1"]
    assert "RUNNING 1" in result.stdout
    assert "jobyard jobs --cursor c2" in result.stdout
    (sent,) = fake_api.sent("GET", "/api/v1/jobs")
    assert sent.query == {"state": ["RUNNING"], "limit": ["5"]}


def test_workers_table(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    worker = {
        "id": "w1", "hostname": "box", "status": "alive", "max_parallel_jobs": 4,
        "capacity": {"cpu": 4, "memory_mb": 8192}, "reserved": {"cpu": 0.5, "memory_mb": 256},
        "running_jobs": ["j1"],
    }  # fmt: skip
    fake_api.answer("GET", "/api/v1/workers", {"workers": [worker]})
    result = run("workers")
    assert result.exit_code == 0, result.output
    row = result.stdout.splitlines()[1].split()
    assert row == ["w1", "box", "alive", "0.5/4", "256/8192", "1/4"]


def test_event_streams_are_parsed_by_the_sse_rules_however_the_bytes_are_cut() -> None:
    raw = [
        b"retry: 2000\r\n\r\n: keep-alive\n\nid: 7\nda",
        b'ta: {"a": 1}\n\nevent: end\ndata: x\ndata:y\n',
        b"\nid: 8\ndata: never ended",
    ]
    events = list(parse_events(lines_of(raw)))
    assert events == [ServerEvent('{"a": 1}', "message", "7"), ServerEvent("x\ny", "end", "7")]
