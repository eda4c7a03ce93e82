"""The one clock every process reads, so tests can control time."""

import time


def now() -> float:
    """Seconds since the epoch, as a float."""
    return time.time()


def monotonic() -> float:
    return time.monotonic()
