"""Where a scheduling pass spends its time: a stand-in for `store.scheduling` that times
every call by phase, so `schedule_once` runs unchanged. The commits (and their lease checks)
run in the loop's commit thread while the main thread places, so their time overlaps the rest.
"""

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

# Which store call belongs to which phase; a call not listed here counts as "other".
PHASES = {
    "queued_jobs": "read",
    "live_workers": "read",
    "commit": "commit",  # in the commit thread, overlapping the placing
    "set_pending_reasons": "pending",
    "hold_lease": "lease",
}


class TimedScheduling:
    """Delegates every attribute to the real SchedulingStore, timing the calls."""

    def __init__(self, real: Any) -> None:
        self._real = real
        self.seconds: defaultdict[str, float] = defaultdict(float)
        self.calls: defaultdict[str, int] = defaultdict(int)

    def reset(self) -> None:
        self.seconds.clear()
        self.calls.clear()

    def store_seconds(self) -> float:
        return sum(self.seconds.values())

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._real, name)
        if not callable(attribute):
            return attribute
        return self._timed(PHASES.get(name, "other"), attribute)

    def _timed(self, phase: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.calls[phase] += 1

        return timed
