"""Fixtures for the CLI tests: a scripted fake API, a clean environment, `jobyard` in-process."""

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import main
from shared.config import Config
from tests.cli.fakeapi import FakeApi, serving


@pytest.fixture
def fake_api() -> Iterator[FakeApi]:
    with serving() as api:
        yield api


@pytest.fixture(autouse=True)
def clean_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """No JOBYARD_* setting from the developer's shell, and an empty working directory."""
    for setting in Config.__dataclass_fields__.values():
        monkeypatch.delenv(setting.metadata["env"], raising=False)
    work = tmp_path / "work"
    work.mkdir()
    monkeypatch.chdir(work)
    return work


@pytest.fixture
def jobyard() -> Callable[..., Result]:
    """Run `jobyard ARGS...` in-process; env adds environment variables for the run."""

    def run(*args: str, env: dict[str, str] | None = None) -> Result:
        return CliRunner(env=env).invoke(main, list(args))

    return run
