"""Where client commands find the API URL and token: environment first, then
./.jobyard/credentials, whose token only ever goes to the file's own API URL."""

import stat
from collections.abc import Callable
from pathlib import Path

from click.testing import Result

from cli.credentials import client_environment, read_credentials, write_credentials
from tests.cli.fakeapi import FakeApi

FILE_URL = "http://127.0.0.1:9999"


def test_file_fills_in_what_the_environment_lacks() -> None:
    stored = {"JOBYARD_API_URL": FILE_URL, "JOBYARD_TOKEN": "file-token"}
    merged = client_environment({}, stored)
    assert merged["JOBYARD_API_URL"] == FILE_URL
    assert merged["JOBYARD_TOKEN"] == "file-token"


def test_environment_wins_over_the_file() -> None:
    stored = {"JOBYARD_API_URL": FILE_URL, "JOBYARD_TOKEN": "file-token"}
    merged = client_environment({"JOBYARD_TOKEN": "env-token"}, stored)
    assert merged["JOBYARD_TOKEN"] == "env-token"
    assert merged["JOBYARD_API_URL"] == FILE_URL


def test_file_token_is_not_sent_to_another_server() -> None:
    stored = {"JOBYARD_API_URL": FILE_URL, "JOBYARD_TOKEN": "file-token"}
    merged = client_environment({"JOBYARD_API_URL": "https://jobs.example.com"}, stored)
    assert merged["JOBYARD_API_URL"] == "https://jobs.example.com"
    assert "JOBYARD_TOKEN" not in merged


def test_file_token_is_used_when_the_environment_names_the_same_server() -> None:
    stored = {"JOBYARD_API_URL": FILE_URL, "JOBYARD_TOKEN": "file-token"}
    merged = client_environment({"JOBYARD_API_URL": FILE_URL + "/"}, stored)
    assert merged["JOBYARD_TOKEN"] == "file-token"


def test_no_file_and_no_environment_leaves_the_defaults() -> None:
    assert client_environment({}, read_credentials(Path("does-not-exist"))) == {}


def test_written_file_is_private_and_reads_back(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    values = {"JOBYARD_API_URL": FILE_URL, "JOBYARD_TOKEN": "a b'c$d"}
    write_credentials(values, path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_credentials(path) == values
    write_credentials({"JOBYARD_TOKEN": "second"}, path)
    assert read_credentials(path) == {"JOBYARD_TOKEN": "second"}


def test_reader_skips_comments_and_accepts_export(tmp_path: Path) -> None:
    path = tmp_path / "credentials"
    path.write_text("# written by hand\n\nexport JOBYARD_TOKEN=t1\nnonsense\nJOBYARD_API_URL='u'\n")
    assert read_credentials(path) == {"JOBYARD_TOKEN": "t1", "JOBYARD_API_URL": "u"}


def bearer_sent(
    fake_api: FakeApi, jobyard: Callable[..., Result], env: dict[str, str]
) -> str | None:
    fake_api.answer("GET", "/api/v1/jobs", {"jobs": [], "next_cursor": None, "counts": {}})
    result = jobyard("jobs", env=env)
    assert result.exit_code == 0, result.output
    header: str | None = fake_api.sent("GET", "/api/v1/jobs")[-1].headers.get("Authorization")
    return header


def test_commands_use_the_file_in_the_working_directory(
    fake_api: FakeApi, jobyard: Callable[..., Result], clean_environment: Path
) -> None:
    (clean_environment / ".jobyard").mkdir()
    write_credentials(
        {"JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "file-token"},
        clean_environment / ".jobyard" / "credentials",
    )
    assert bearer_sent(fake_api, jobyard, {}) == "Bearer file-token"
    from_env = bearer_sent(fake_api, jobyard, {"JOBYARD_TOKEN": "env-token"})
    assert from_env == "Bearer env-token"


def test_environment_alone_is_enough(fake_api: FakeApi, jobyard: Callable[..., Result]) -> None:
    env = {"JOBYARD_API_URL": fake_api.url, "JOBYARD_TOKEN": "env-token"}
    assert bearer_sent(fake_api, jobyard, env) == "Bearer env-token"
