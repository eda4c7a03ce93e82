"""The newer client commands and options against the scripted fake API: job files
(`submit --file`), `--json` on the commands that print a job, `delete`, `--watch`, and
shell completion."""

import json
import os
import signal
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import Result

from tests.cli.fakeapi import FakeApi
from tests.cli.test_cli_client import JOB
from tests.helpers import wait_until

JOB_FILE = """\
# a job file: the submission's fields
name: nightly
image: jobyard/busybox:latest
command: [sh, -c, "echo $GREETING"]
resources:
  cpu: 0.5
  memory_mb: 128
env:
  GREETING: hello
  KEEP: "1"
labels: {team: ml}
timeout_s: 60
"""


@pytest.fixture
def run(fake_api: FakeApi, jobyard: Callable[..., Result]) -> Callable[..., Result]:
    env = {"JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "t0k"}
    return lambda *args: jobyard(*args, env=env)


def write(name: str, text: str) -> Path:
    path = Path(name)
    path.write_text(text)
    return path


def test_a_job_file_is_the_submission_and_flags_override_it(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, JOB))
    write("job.yaml", JOB_FILE)
    assert run("submit", "-F", "job.yaml").exit_code == 0
    result = run(
        "submit", "--file", "job.yaml", "--cpu", "2", "--env", "GREETING=hi", "--name", "x",
        "--", "echo", "other",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    as_written, overridden = fake_api.sent("POST", "/api/v1/jobs")
    assert as_written.body == {
        "name": "nightly",
        "image": "jobyard/busybox:latest",
        "command": ["sh", "-c", "echo $GREETING"],
        "resources": {"cpu": 0.5, "memory_mb": 128},
        "env": {"GREETING": "hello", "KEEP": "1"},
        "labels": {"team": "ml"},
        "timeout_s": 60,
    }
    assert overridden.body == {
        **as_written.body,
        "name": "x",
        "command": ["echo", "other"],
        "resources": {"cpu": 2.0, "memory_mb": 128},
        "env": {"GREETING": "hi", "KEEP": "1"},
    }


def test_a_job_file_may_be_json(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, JOB))
    write("job.json", json.dumps({"command": ["true"], "priority": 5}))
    assert run("submit", "-F", "job.json").exit_code == 0
    (sent,) = fake_api.sent("POST", "/api/v1/jobs")
    assert sent.body == {"command": ["true"], "priority": 5}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (JOB_FILE.replace("  cpu: 0.5", "  cpu: -1"), "job.yaml:6: resources.cpu: "),
        (JOB_FILE.replace("timeout_s: 60", "timeout: 60"), "job.yaml:12: timeout: Unknown field"),
        (JOB_FILE.replace("  KEEP: \"1\"", "  KEEP: 1"), "job.yaml:10: env.KEEP"),
        ("command: [true]\nresources: {cpu: 1, disk: 9}\n", "job.yaml:2: resources.disk"),
        ("name: no command\n", "job.yaml:1: command: Missing data for required field"),
        ("command: [a\n", "job.yaml:2: not YAML or JSON"),
        ("- a list\n", "job.yaml: a job file is a mapping"),
    ],
)
def test_a_bad_job_file_names_the_field_and_the_line(
    fake_api: FakeApi, run: Callable[..., Result], text: str, message: str
) -> None:
    write("job.yaml", text)
    result = run("submit", "-F", "job.yaml")
    assert result.exit_code == 2, result.output
    assert message in result.stderr
    assert fake_api.sent("POST", "/api/v1/jobs") == []  # nothing was sent


def test_a_refusal_only_the_server_can_make_names_the_line_too(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    details = {"json": {"resources": {"cpu": ["at most 64 CPU (JOBYARD_MAX_JOB_CPU)"]}}}
    error = {"error": {"code": "invalid", "message": "the job is not valid", "details": details}}
    fake_api.answer("POST", "/api/v1/jobs", (422, error))
    write("job.yaml", JOB_FILE.replace("  cpu: 0.5", "  cpu: 100"))
    result = run("submit", "-F", "job.yaml")
    assert result.exit_code == 1
    assert "job.yaml:6: resources.cpu: at most 64 CPU (JOBYARD_MAX_JOB_CPU)" in result.stderr


def test_a_missing_job_file_is_a_clear_error(run: Callable[..., Result]) -> None:
    result = run("submit", "-F", "nope.yaml")
    assert result.exit_code == 2
    assert "nope.yaml: cannot read it" in result.stderr


def test_json_on_the_commands_that_print_a_job(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs", (201, JOB))
    fake_api.answer("POST", "/api/v1/jobs/j1/cancel", {**JOB, "state": "CANCELLED"})
    fake_api.answer("POST", "/api/v1/jobs/j1/retry", {**JOB, "state": "QUEUED", "attempt": 2})
    for args, state in [
        (("submit", "--json", "--", "true"), "RUNNING"),
        (("cancel", "--json", "j1"), "CANCELLED"),
        (("retry", "--json", "j1"), "QUEUED"),
    ]:
        result = run(*args)
        assert result.exit_code == 0, result.output
        assert json.loads(result.stdout)["state"] == state, args
    assert run("submit", "--json", "--follow", "--", "true").exit_code == 2


def test_submit_array_sends_one_batch_with_each_jobs_index(
    fake_api: FakeApi, run: Callable[..., Result]
) -> None:
    fake_api.answer("POST", "/api/v1/jobs/batch", (201, {"jobs": [JOB, JOB, JOB]}))
    result = run("submit", "--array", "3", "--env", "A=1", "--label", "team=ml", "--", "true")
    assert result.exit_code == 0, result.output
    array_id = result.stdout.strip()
    [sent] = fake_api.sent("POST", "/api/v1/jobs/batch")
    bodies = sent.body["jobs"]
    assert [b["env"] for b in bodies] == [
        {"A": "1", "JOBYARD_ARRAY_ID": array_id, "JOBYARD_ARRAY_INDEX": str(i)} for i in range(3)
    ]
    assert [b["labels"] for b in bodies] == [
        {"team": "ml", "array": array_id, "array_index": str(i)} for i in range(3)
    ]
    assert {tuple(b["command"]) for b in bodies} == {("true",)}
    # A resend of the same array (the command run again after a lost answer) is recognised.
    assert sent.headers["Idempotency-Key"] == array_id


@pytest.mark.parametrize(
    "args",
    [
        ("submit", "--array", "2", "--follow", "--", "true"),
        ("submit", "--array", "0", "--", "true"),
        ("submit", "--array", "1001", "--", "true"),
        ("cancel",),
        ("cancel", "--array", "a1", "j1"),
    ],
)
def test_array_usage_errors(run: Callable[..., Result], args: tuple[str, ...]) -> None:
    assert run(*args).exit_code == 2


def test_delete(fake_api: FakeApi, run: Callable[..., Result]) -> None:
    fake_api.answer("DELETE", "/api/v1/jobs/j1", (204, None))
    result = run("delete", "j1")
    assert result.exit_code == 0, result.output
    assert result.stdout == "j1: deleted\n"
    assert len(fake_api.sent("DELETE", "/api/v1/jobs/j1")) == 1


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_completion_prints_the_shells_script(run: Callable[..., Result], shell: str) -> None:
    result = run("completion", shell)
    assert result.exit_code == 0, result.output
    assert "_JOBYARD_COMPLETE" in result.stdout


def test_completion_completes_commands_and_choices(tmp_path: Path) -> None:
    env = {**os.environ, "_JOBYARD_COMPLETE": "bash_complete", "COMP_WORDS": "jobyard jo",
           "COMP_CWORD": "1"}  # fmt: skip
    done = subprocess.run(
        [sys.executable, "-m", "cli.main"], env=env, capture_output=True, text=True
    )
    assert "plain,jobs" in done.stdout.split()
    env.update(COMP_WORDS="jobyard jobs --state RU", COMP_CWORD="3")
    done = subprocess.run(
        [sys.executable, "-m", "cli.main"], env=env, capture_output=True, text=True
    )
    assert "plain,running" in done.stdout.lower().split()  # the choice is case-blind


@pytest.mark.parametrize(("command", "expected"), [("jobs", "j1"), ("workers", "box")])
def test_watch_redraws_until_ctrl_c(
    fake_api: FakeApi, tmp_path: Path, command: str, expected: str
) -> None:
    worker = {
        "id": "w1", "hostname": "box", "status": "alive", "max_parallel_jobs": 4,
        "capacity": {"cpu": 4, "memory_mb": 8192}, "reserved": {"cpu": 0, "memory_mb": 0},
        "running_jobs": [],
    }  # fmt: skip
    fake_api.answer("GET", "/api/v1/jobs", {"jobs": [JOB], "next_cursor": None, "counts": {}})
    fake_api.answer("GET", "/api/v1/workers", {"workers": [worker]})
    out = tmp_path / "out"
    env = {**os.environ, "JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "t0k"}
    with out.open("wb") as stdout:
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", command, "--watch", "0.2"],
            env=env,
            stdout=stdout,
            stderr=subprocess.STDOUT,
        )
    try:
        frames = lambda: out.read_text().count(f"jobyard {command}  every 0.2 s")  # noqa: E731
        wait_until(lambda: frames() >= 3, 20, message=lambda: out.read_text())
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    finally:
        if process.poll() is None:
            process.kill()
    assert expected in out.read_text()
    assert len(fake_api.sent("GET", f"/api/v1/{command}")) >= 3
