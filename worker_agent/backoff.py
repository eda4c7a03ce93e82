"""Capped exponential backoff with jitter, for every call the agent retries: after an
outage, agents that all failed together must not all come back in the same instant."""

import random


class Backoff:
    def __init__(self, first_s: float, max_s: float) -> None:
        self.first_s = first_s
        self.max_s = max_s
        self._delay = first_s

    def next(self) -> float:
        """The next wait: the current step, less up to half of it at random; then double it."""
        delay = self._delay
        self._delay = min(self._delay * 2, self.max_s)
        return delay * random.uniform(0.5, 1.0)

    def reset(self) -> None:
        self._delay = self.first_s
