"""Helpers any test may import (`from tests.helpers import wait_until, free_port`)."""

import os
import shutil
import threading
import time
from collections.abc import Callable
from typing import TypeVar

import pytest

from cli.ports import free_port

__all__ = ["Captured", "free_port", "require_binary", "services_required", "wait_until"]

T = TypeVar("T")


def wait_until(
    predicate: Callable[[], T],
    timeout: float = 10.0,
    interval: float = 0.05,
    message: str | Callable[[], str] = "",
) -> T:
    """Poll predicate until it returns something truthy (returned); AssertionError on timeout,
    with `message` (called then, when it is a function: logs as they are at the end)."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            text = message() if callable(message) else message
            raise AssertionError(text or f"condition not met within {timeout:g} s")
        time.sleep(interval)  # the poll interval: every wait on a condition comes here


def services_required() -> bool:
    """CI (JOBYARD_REQUIRE_DOCKER=1) installs every service, so a missing one is a failure."""
    return os.environ.get("JOBYARD_REQUIRE_DOCKER") == "1"


def require_binary(name: str, package: str) -> str:
    """The binary's path; skips the test when it is absent (fails when services are required)."""
    path = shutil.which(name)
    if path is None:
        reason = f"{name} is not installed (apt-get install {package})"
        if services_required():
            pytest.fail(reason + " but JOBYARD_REQUIRE_DOCKER=1", pytrace=False)
        pytest.skip(reason)
    return path


class Captured:
    """An OutputSink that keeps every piece, in order."""

    def __init__(self) -> None:
        self.pieces: list[tuple[str, bytes, float]] = []
        self._lock = threading.Lock()

    def __call__(self, stream: str, data: bytes, at: float) -> None:
        with self._lock:
            self.pieces.append((stream, data, at))

    def text(self, stream: str) -> str:
        with self._lock:
            return b"".join(d for s, d, _ in self.pieces if s == stream).decode()
