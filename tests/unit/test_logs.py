"""JOBYARD_LOG_FORMAT=json: one JSON object a line, the message's key=value pairs as its
fields; the default text lines as written."""

import json
import logging
import sys

import pytest

from shared.config import Config, ConfigError
from shared.logs import JsonFormatter, formatter, message_fields


def record(message: str, *args: object, exc: bool = False) -> logging.LogRecord:
    exc_info = None
    if exc:
        try:
            raise RuntimeError("boom")
        except RuntimeError:
            exc_info = sys.exc_info()
    level = logging.WARNING
    return logging.LogRecord("jobyard.reaper", level, __file__, 1, message, args, exc_info)


def test_a_key_value_message_becomes_fields() -> None:
    line = JsonFormatter().format(
        record("event=worker_lost worker=%s error=%r", "w1", "it's gone\n")
    )
    entry = json.loads(line)
    assert "\n" not in line
    assert entry.pop("at").endswith("+00:00")
    assert entry == {
        "level": "warning",
        "logger": "jobyard.reaper",
        "event": "worker_lost",
        "worker": "w1",
        "error": "it's gone\n",
    }


@pytest.mark.parametrize("message", ["Listening at: http://127.0.0.1:8080 (12)", "x=1 and more"])
def test_any_other_message_is_kept_whole(message: str) -> None:
    assert message_fields(message) == {"message": message}


def test_an_exception_goes_in_the_same_line() -> None:
    line = JsonFormatter().format(record("event=crash", exc=True))
    assert "RuntimeError: boom" in json.loads(line)["exception"]
    assert "\n" not in line


def test_the_setting_picks_the_format_and_refuses_others() -> None:
    assert Config.from_env({}).log_format == "text"
    config = Config.from_env({"JOBYARD_LOG_FORMAT": "json"})
    assert isinstance(formatter(config.log_format), JsonFormatter)
    assert not isinstance(formatter("text"), JsonFormatter)
    with pytest.raises(ConfigError, match="JOBYARD_LOG_FORMAT"):
        Config.from_env({"JOBYARD_LOG_FORMAT": "xml"})
