"""Structured log lines for the agent: one `event=... key=value ...` line per event."""

import logging
from typing import Any


def _format(value: Any) -> str:
    text = "" if value is None else str(value)
    # Quote values a log parser would otherwise split; keep simple ones bare for grep.
    if not text or any(c in text for c in ' "=\n\t'):
        escaped = text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")
        return f'"{escaped}"'
    return text


def log_event(logger: logging.Logger, event: str, level: int = logging.INFO, **fields: Any) -> None:
    """Log `event` with its fields as key=value pairs, in the order given."""
    if not logger.isEnabledFor(level):
        return
    parts = [f"event={event}"] + [f"{key}={_format(value)}" for key, value in fields.items()]
    logger.log(level, " ".join(parts))
