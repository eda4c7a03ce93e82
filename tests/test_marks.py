"""Every test that needs redis-server, a Docker daemon or the e2e processes carries the mark
for it, so `-m "not redis"` (or docker, e2e) leaves out exactly those and runs without them."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import MARKS_BY_FIXTURE
from tests.mark_audit import AUDIT_FILE

ROOT = Path(__file__).resolve().parents[1]
MARKS = sorted(set(MARKS_BY_FIXTURE.values()))
Selected = dict[str, dict[str, list[str]]]


def pytest_in_subprocess(
    *args: str, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """pytest on this checkout's tests, in a fresh interpreter (as `make test` runs it)."""
    pythonpath = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
    return subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", *args],
        cwd=ROOT,
        env={**os.environ, "PYTHONPATH": pythonpath, **(env or {})},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def collect(tmp_path: Path, *args: str) -> Selected:
    """The tests of the whole suite that `pytest --collect-only ARGS` selects."""
    audit = tmp_path / "selected.json"
    done = pytest_in_subprocess(
        "--collect-only", "-q", "-p", "tests.mark_audit", *args, env={AUDIT_FILE: str(audit)}
    )
    assert done.returncode == 0, done.stdout + done.stderr
    selected: Selected = json.loads(audit.read_text())
    return selected


def needs(test: dict[str, list[str]], mark: str) -> bool:
    return any(MARKS_BY_FIXTURE[f] == mark for f in test["fixtures"] if f in MARKS_BY_FIXTURE)


@pytest.fixture(scope="module")
def whole_suite(tmp_path_factory: pytest.TempPathFactory) -> Selected:
    return collect(tmp_path_factory.mktemp("suite"))


def test_every_test_using_a_service_fixture_carries_its_mark(whole_suite: Selected) -> None:
    for mark in MARKS:
        users = [nodeid for nodeid, test in whole_suite.items() if needs(test, mark)]
        assert users, f"no test uses a fixture that implies {mark}: the audit would be blind"
        unmarked = [nodeid for nodeid in users if mark not in whole_suite[nodeid]["marks"]]
        assert unmarked == [], f"tests that need {mark} but lack the mark: {unmarked}"


@pytest.mark.parametrize("mark", MARKS)
def test_not_mark_selects_exactly_the_tests_that_do_not_need_it(
    mark: str, whole_suite: Selected, tmp_path: Path
) -> None:
    selected = collect(tmp_path, "-m", f"not {mark}")
    assert [nodeid for nodeid, test in selected.items() if needs(test, mark)] == []
    expected = {nodeid for nodeid, test in whole_suite.items() if mark not in test["marks"]}
    assert set(selected) == expected


def without_redis_server(tmp_path: Path) -> dict[str, str]:
    """First on PATH, a redis-server that only records that it was called (and fails)."""
    stubs = tmp_path / "bin"
    stubs.mkdir()
    stub = stubs / "redis-server"
    stub.write_text(f"#!/bin/sh\ntouch {tmp_path / 'redis-server-called'}\nexit 1\n")
    stub.chmod(0o755)
    return {"PATH": f"{stubs}{os.pathsep}{os.environ['PATH']}"}


def without_docker(tmp_path: Path) -> dict[str, str]:
    return {"DOCKER_HOST": f"unix://{tmp_path / 'no-docker.sock'}"}


# Files where the mark comes from a fixture alone (test_placement_loop's came from nowhere
# while its conftest held the pytestmark), files that mix tests with and without the
# service, and a file without it, so that something runs.
WITHOUT_SERVICE = {
    "redis": (
        without_redis_server,
        [
            "tests/integration/test_placement_loop.py",
            "tests/cli/test_cli_redis.py",
            "tests/cli/test_cli_up.py",
            "tests/e2e/test_crashes.py",
        ],
    ),
    "docker": (
        without_docker,
        [
            "tests/docker/test_docker_executor.py",
            "tests/e2e/test_soak.py",
            "tests/e2e/test_cluster_teardown.py",
            "tests/unit/test_backfill.py",
        ],
    ),
}


@pytest.mark.parametrize("mark", sorted(WITHOUT_SERVICE))
def test_not_mark_runs_without_the_service(mark: str, tmp_path: Path) -> None:
    """With the services required (JOBYARD_REQUIRE_DOCKER=1), a test that needed the one
    taken away and was not left out by `-m "not MARK"` fails instead of skipping."""
    take_away, files = WITHOUT_SERVICE[mark]
    env = {**take_away(tmp_path), "JOBYARD_REQUIRE_DOCKER": "1"}
    done = pytest_in_subprocess("-q", "-m", f"not {mark}", *files, env=env)
    summary = done.stdout.strip().splitlines()[-1]
    assert done.returncode == 0, done.stdout + done.stderr
    assert " passed" in summary and " deselected" in summary, summary
    assert "skipped" not in summary and "failed" not in summary, summary
    assert not (tmp_path / "redis-server-called").exists(), "a test left in started Redis"
