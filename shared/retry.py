"""Retrying calls to the API: capped exponential backoff with jitter, and `retry`, the one
loop every retried call of the agent and of `jobyard logs -f` goes through. Which errors
are worth a retry is the client's rule (`shared.client.is_transient`)."""

import random
from collections.abc import Callable
from typing import TypeVar

from shared.client import ApiError, is_transient

T = TypeVar("T")

FIRST_S = 0.5
MAX_S = 5.0


class Backoff:
    """The waits between tries: each step doubles up to `max_s`, and each wait is the step
    less up to half of it at random, so that clients which failed together (an outage) do
    not all come back in the same instant."""

    def __init__(self, first_s: float = FIRST_S, max_s: float = MAX_S) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._step = first_s

    def next(self) -> float:
        step = self._step
        self._step = min(self._step * 2, self.max_s)
        return step * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._step = self.first_s


class GaveUp(Exception):
    """retry() stopped before the call got through; `error` is the last transient error."""

    def __init__(self, error: ApiError) -> None:
        super().__init__(f"gave up retrying: {error}")
        self.error = error


def retry(
    call: Callable[[], T],
    wait: Callable[[float], bool],
    *,
    backoff: Backoff | None = None,
    on_retry: Callable[[ApiError, float], None] | None = None,
) -> T:
    """Call until it returns, and return what it returns.

    After a transient error, `on_retry(error, delay)` is told, then `wait(delay)` waits out
    the next step of the backoff (at least the server's Retry-After) and says whether to
    give up instead (GaveUp). Any other error, a final answer of the API included, is raised
    at once. A fresh backoff unless one is given (a caller that resets it on progress)."""
    backoff = backoff or Backoff()
    while True:
        try:
            return call()
        except ApiError as exc:
            if not is_transient(exc):
                raise
            delay = max(backoff.next(), exc.retry_after_s or 0.0)
            if on_retry is not None:
                on_retry(exc, delay)
            if wait(delay):
                raise GaveUp(exc) from exc
