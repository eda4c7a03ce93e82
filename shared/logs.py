"""How the long-running processes log: one line per event on stderr, which `jobyard up`,
systemd and Docker collect. JOBYARD_LOG_FORMAT picks the line: `text` (the default, the
message as written: `event=worker_lost worker=w1 jobs=...`) or `json`, one object per line
for log shippers, with the message's key=value pairs as its fields.
"""

import ast
import json
import logging
import re
from datetime import UTC, datetime
from typing import Any

LOG_FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
# key=value, the value bare or quoted as %r quotes it ('...' or "...").
PAIR = re.compile(r"""(\w+)=('(?:[^'\\]|\\.)*'|"(?:[^"\\]|\\.)*"|\S*)""")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "at": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            **message_fields(record.getMessage()),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, default=str)


def message_fields(message: str) -> dict[str, str]:
    """A message of key=value pairs as a dict; any other message as {"message": ...}."""
    pairs = list(PAIR.finditer(message))
    rest = PAIR.sub("", message).strip()
    if not pairs or rest:
        return {"message": message}
    return {match[1]: _unquoted(match[2]) for match in pairs}


def _unquoted(value: str) -> str:
    """A value written with %r back to its text; a bare one as it is."""
    if len(value) >= 2 and value[0] == value[-1] and value[0] in "'\"":
        try:
            text = ast.literal_eval(value)
        except (ValueError, SyntaxError):
            return value
        return text if isinstance(text, str) else value
    return value


def formatter(log_format: str) -> logging.Formatter:
    return JsonFormatter() if log_format == "json" else logging.Formatter(TEXT_FORMAT)


def configure(log_format: str) -> None:
    """Every record of the process to stderr, at INFO and above, in `log_format`."""
    handler = logging.StreamHandler()
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)


def gunicorn_logconfig(log_format: str) -> dict[str, Any] | None:
    """gunicorn's logconfig_dict for `log_format`: None keeps gunicorn's own text lines;
    for json, its lines and the app's go through JsonFormatter."""
    if log_format != "json":
        return None
    handler = {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stderr"}
    quiet = {"level": "INFO", "handlers": ["stderr"], "propagate": False}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {"json": {"()": JsonFormatter}},
        "handlers": {"stderr": handler},
        "root": {"level": "INFO", "handlers": ["stderr"]},
        "loggers": {"gunicorn.error": quiet, "gunicorn.access": quiet},
    }
