"""Where a scheduling pass spends its time: a stand-in for `store.scheduling` that times
every call by phase, so `schedule_once` runs unchanged and the rest of its time is placement.
The commit pipeline is timed per call too: sending a batch, and waiting for a reply (the
time placing did not hide Redis running the commits).
"""

import time
from collections import defaultdict
from collections.abc import Callable
from typing import Any

# Which store call belongs to which phase; a call not listed here counts as "other".
PHASES = {
    "queued_jobs": "read",
    "live_workers": "read",
    "set_pending_reasons": "pending",
}
PIPELINE_PHASES = {"send": "send", "receive": "wait"}


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

    def commit_pipeline(self, *args: Any) -> "TimedPipeline":
        return TimedPipeline(self._real.commit_pipeline(*args), self)

    def _timed(self, phase: str, call: Callable[..., Any]) -> Callable[..., Any]:
        def timed(*args: Any, **kwargs: Any) -> Any:
            start = time.perf_counter()
            try:
                return call(*args, **kwargs)
            finally:
                self.seconds[phase] += time.perf_counter() - start
                self.calls[phase] += 1

        return timed


class TimedPipeline:
    """A CommitPipeline whose send() and receive() are timed into the same phases."""

    def __init__(self, real: Any, timing: TimedScheduling) -> None:
        self._real = real
        self.send = timing._timed(PIPELINE_PHASES["send"], real.send)
        self.receive = timing._timed(PIPELINE_PHASES["receive"], real.receive)

    def __enter__(self) -> "TimedPipeline":
        self._real.__enter__()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._real.__exit__(*exc_info)
