"""ProcessExecutor: exit codes, separate streams, environment and working directory, timeout,
cancel (SIGTERM then SIGKILL), bad commands, leftovers, orphans of a crashed agent, and the
GPUs a job may see."""

import json
import os
import signal
import subprocess
import threading
import time
from pathlib import Path
from typing import Any

import psutil
import pytest

from shared.config import Config
from tests.helpers import Captured, wait_until
from worker_agent.executors.base import ExecResult, JobRun
from worker_agent.executors.process import ProcessExecutor, job_identity


def make_job(command: list[str], **overrides: Any) -> JobRun:
    fields: dict[str, Any] = {
        "job_id": "job-1",
        "attempt": 1,
        "worker_id": "w-process",
        "image": "ignored",
        "command": command,
        "env": {},
        "cpu": 1.0,
        "memory_mb": 512,
        "timeout_s": None,
        "network": False,
    }
    fields.update(overrides)
    return JobRun(**fields)


@pytest.fixture
def executor(tmp_path: Path) -> ProcessExecutor:
    return ProcessExecutor(Config.from_env({}, agent_state_dir=str(tmp_path), kill_grace_s=1.0))


def run_in_thread(
    executor: ProcessExecutor, job: JobRun, sink: Captured, cancel: threading.Event
) -> tuple[threading.Thread, list[ExecResult]]:
    results: list[ExecResult] = []
    thread = threading.Thread(target=lambda: results.append(executor.run(job, sink, cancel)))
    thread.start()
    return thread, results


def test_exit_code_and_separate_streams(executor: ProcessExecutor) -> None:
    sink = Captured()
    job = make_job(["sh", "-c", "echo out; echo err >&2; exit 3"])

    result = executor.run(job, sink, threading.Event())

    assert (result.exit_code, result.reason, result.error) == (3, None, None)
    assert sink.text("stdout") == "out\n"
    assert sink.text("stderr") == "err\n"
    assert result.metrics["duration_s"] >= 0
    assert result.metrics["cpu_s"] is not None


def test_minimal_environment_and_a_fresh_working_directory_removed_after(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    sink = Captured()
    job = make_job(
        ["sh", "-c", 'echo "$PATH|$GREETING|$(pwd)|$(ls -A | wc -l)"'],
        env={"GREETING": "hi"},
        job_id="job/with odd chars",
        attempt=2,
    )

    result = executor.run(job, sink, threading.Event())

    path, greeting, cwd, entries = sink.text("stdout").strip().split("|")
    assert result.exit_code == 0
    assert path == "/usr/local/bin:/usr/bin:/bin"
    assert greeting == "hi"
    assert Path(cwd).parent == tmp_path / "work"
    assert entries.strip() == "0"
    assert not Path(cwd).exists()


def test_unknown_command_is_an_error(executor: ProcessExecutor) -> None:
    result = executor.run(make_job(["no-such-command-xyz"]), Captured(), threading.Event())

    assert (result.exit_code, result.reason) == (None, "error")
    assert result.error is not None and "no-such-command-xyz" in result.error


def test_timeout_kills_the_process_group(executor: ProcessExecutor) -> None:
    started = time.monotonic()

    result = executor.run(make_job(["sleep", "30"], timeout_s=0.5), Captured(), threading.Event())

    assert result.reason == "timeout"
    assert result.exit_code == 128 + signal.SIGTERM
    assert time.monotonic() - started < 3


def test_cancel_sends_sigterm_to_the_group(executor: ProcessExecutor) -> None:
    sink = Captured()
    cancel = threading.Event()
    script = "trap 'echo bye; exit 5' TERM; echo ready; while true; do sleep 0.05; done"
    thread, results = run_in_thread(executor, make_job(["sh", "-c", script]), sink, cancel)
    wait_until(lambda: "ready" in sink.text("stdout"))

    cancel.set()
    thread.join(timeout=5)

    assert (results[0].exit_code, results[0].reason) == (5, "cancelled")
    assert sink.text("stdout") == "ready\nbye\n"


def test_cancel_kills_a_job_that_ignores_sigterm_after_the_grace(
    executor: ProcessExecutor,
) -> None:
    sink = Captured()
    cancel = threading.Event()
    script = "trap '' TERM; echo ready; while true; do sleep 0.05; done"
    thread, results = run_in_thread(executor, make_job(["sh", "-c", script]), sink, cancel)
    wait_until(lambda: "ready" in sink.text("stdout"))

    cancelled_at = time.monotonic()
    cancel.set()
    thread.join(timeout=5)

    assert (results[0].exit_code, results[0].reason) == (128 + signal.SIGKILL, "cancelled")
    assert 0.9 < time.monotonic() - cancelled_at < 2.5  # kill_grace_s is 1 s here


def test_processes_left_behind_die_with_the_job(executor: ProcessExecutor) -> None:
    sink = Captured()

    result = executor.run(make_job(["sh", "-c", "sleep 60 & echo $!"]), sink, threading.Event())

    pid = int(sink.text("stdout"))
    assert result.exit_code == 0
    wait_until(lambda: not psutil.pid_exists(pid) or psutil.Process(pid).status() == "zombie")


def test_memory_limit_caps_the_address_space(executor: ProcessExecutor) -> None:
    sink = Captured()
    # dd, not this interpreter: an agent running as root runs the job as nobody, who may not
    # reach an interpreter installed under /root.
    job = make_job(["dd", "if=/dev/zero", "of=/dev/null", "bs=400M", "count=1"], memory_mb=200)

    result = executor.run(job, sink, threading.Event())

    assert result.exit_code == 1
    assert "memory exhausted" in sink.text("stderr")


def test_remove_orphans_kills_recorded_groups_of_the_given_workers_only(
    executor: ProcessExecutor, tmp_path: Path
) -> None:
    # What a crashed agent leaves: live process groups and their records.
    procs = {
        worker: subprocess.Popen(["sleep", "60"], start_new_session=True)
        for worker in ("w-old", "w-other")
    }
    records = tmp_path / "procs"
    records.mkdir()
    for worker, proc in procs.items():
        record = {
            "worker_id": worker,
            "job": "j",
            "attempt": 1,
            "pgid": proc.pid,
            "create_time": psutil.Process(proc.pid).create_time(),
            "workdir": f"{worker}-1",
        }
        (records / f"{worker}-1.json").write_text(json.dumps(record))
    try:
        killed = executor.remove_orphans(["w-old"])

        assert killed == 1
        assert procs["w-old"].wait(timeout=5) == -signal.SIGKILL
        assert procs["w-other"].poll() is None
        assert sorted(p.name for p in records.iterdir()) == ["w-other-1.json"]
    finally:
        for proc in procs.values():
            proc.kill()
            proc.wait()


def test_remove_orphans_spares_a_reused_pid(executor: ProcessExecutor, tmp_path: Path) -> None:
    stranger = subprocess.Popen(["sleep", "60"], start_new_session=True)
    records = tmp_path / "procs"
    records.mkdir()
    record = {"worker_id": "w-old", "pgid": stranger.pid, "create_time": 12345.0, "workdir": "x"}
    (records / "x.json").write_text(json.dumps(record))
    try:
        assert executor.remove_orphans(["w-old"]) == 0
        assert stranger.poll() is None
    finally:
        stranger.kill()
        stranger.wait()


def test_the_agents_own_environment_is_not_passed_on(
    executor: ProcessExecutor, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SECRET_OF_THE_AGENT", "x")
    sink = Captured()

    executor.run(make_job(["sh", "-c", "env"]), sink, threading.Event())

    assert "SECRET_OF_THE_AGENT" not in sink.text("stdout")
    assert os.environ["SECRET_OF_THE_AGENT"] == "x"


VISIBLE = 'echo "${CUDA_VISIBLE_DEVICES-unset}|${NVIDIA_VISIBLE_DEVICES-unset}"'


def test_a_gpu_job_sees_only_its_own_devices_whatever_its_env_says(
    executor: ProcessExecutor,
) -> None:
    sink = Captured()
    job = make_job(["sh", "-c", VISIBLE], gpus=("1", "3"), env={"CUDA_VISIBLE_DEVICES": "0,1,2,3"})

    executor.run(job, sink, threading.Event())

    assert sink.text("stdout") == "1,3|1,3\n"


def test_a_job_without_gpus_sees_none_rather_than_all(executor: ProcessExecutor) -> None:
    sink = Captured()

    executor.run(make_job(["sh", "-c", VISIBLE]), sink, threading.Event())

    assert sink.text("stdout") == "|\n"  # set, and empty: CUDA then shows no device at all


AS_ROOT = pytest.mark.skipif(os.geteuid() != 0, reason="only root can switch users")
ID_PROBE = 'echo "$(id -u) $(id -g) $(id -G)"; touch mine && echo wrote; touch /x || echo denied'


@AS_ROOT
def test_an_agent_running_as_root_runs_the_job_as_nobody_in_a_directory_it_owns(
    executor: ProcessExecutor,
) -> None:
    sink = Captured()

    result = executor.run(make_job(["sh", "-c", ID_PROBE]), sink, threading.Event())

    assert result.exit_code == 0, sink.text("stderr")
    # No supplementary groups left over from root's: only its own group.
    assert sink.text("stdout").splitlines() == ["65534 65534 65534", "wrote", "denied"]
    assert not Path("/x").exists()


@AS_ROOT
@pytest.mark.parametrize(("user", "expected"), [("1234:2345", "1234 2345 2345"), ("0", "0 0 0")])
def test_the_operator_picks_the_jobs_user_root_included(
    tmp_path: Path, user: str, expected: str
) -> None:
    executor = ProcessExecutor(
        Config.from_env({}, agent_state_dir=str(tmp_path), container_user=user)
    )
    sink = Captured()

    result = executor.run(
        make_job(["sh", "-c", 'echo "$(id -u) $(id -g) $(id -G)"']), sink, threading.Event()
    )

    assert result.exit_code == 0, sink.text("stderr")
    assert sink.text("stdout").strip() == expected


@pytest.mark.parametrize(
    ("user", "identity"),
    [("65534:65534", (65534, 65534)), ("1000", (1000, 1000)), ("1000:50", (1000, 50)),
     ("app", (65534, 65534)), ("1000:staff", (65534, 65534)), ("", (65534, 65534))],
)  # fmt: skip
def test_the_jobs_identity_under_a_root_agent_comes_from_the_container_user(
    monkeypatch: pytest.MonkeyPatch, user: str, identity: tuple[int, int]
) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 0)
    assert job_identity(Config.from_env({}, container_user=user)) == identity


def test_an_agent_that_is_not_root_keeps_its_own_user(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(os, "geteuid", lambda: 1000)
    assert job_identity(Config.from_env({}, container_user="0:0")) is None
