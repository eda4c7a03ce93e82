"""The pool's last hour, a minute at a time: how many jobs finished in each terminal state and
how deep the queue was, for the dashboard's charts.

The Lua scripts count every entry into a terminal state in one hash (lib.lua's transition),
a total that only grows; once a minute the scheduler, and any API process asked for the
history, samples it into a stream capped at HISTORY_MINUTES entries (history_sample.lua).
A minute's figure is the difference between two samples, so the history survives a
restart of any process, and costs nothing per job beyond one HINCRBY.
"""

import itertools
from dataclasses import dataclass

from shared.states import TERMINAL_STATE_NAMES, JobState
from shared.store.scripts import StorePart

HISTORY_MINUTES = 60
MINUTE_S = 60


@dataclass(frozen=True)
class Sample:
    at: float  # the start of the minute it was taken in (epoch seconds)
    totals: dict[str, int]  # terminal state -> entries into it, ever
    queue_depth: int


class HistoryStore(StorePart):
    def sample(self) -> bool:
        """Record this minute's sample unless it has one; True when this call recorded it."""
        minute = int(self.clock() // MINUTE_S) * MINUTE_S
        keys = [*self.keys.common(), self.keys.history]
        return bool(self.scripts.run("history_sample", keys, [minute, HISTORY_MINUTES]))

    def minutes(self) -> list[dict[str, object]]:
        """The last hour as points, oldest first: each says how many jobs finished, by state,
        since the sample before it, and the queue depth at its time. The last point is now:
        the minute so far, from the live totals. At most HISTORY_MINUTES points: the oldest
        sample kept only starts the count."""
        self.sample()
        since_ms = int((self.clock() - HISTORY_MINUTES * MINUTE_S) * 1000)
        pipe = self.redis.pipeline(transaction=False)
        pipe.xrange(self.keys.history, min=f"{since_ms}-0", max="+")
        pipe.hmget(self.keys.finished_totals, *TERMINAL_STATE_NAMES)
        pipe.zcard(self.keys.state(JobState.QUEUED))
        entries, totals, queued = pipe.execute()
        samples = [self._sample(entry_id, fields) for entry_id, fields in entries]
        live = self._totals(dict(zip(TERMINAL_STATE_NAMES, totals, strict=True)))
        samples.append(Sample(self.clock(), live, int(queued or 0)))
        return [_point(before, after) for before, after in itertools.pairwise(samples)]

    def _totals(self, fields: dict[str, str | None]) -> dict[str, int]:
        return {state: int(fields.get(state) or 0) for state in TERMINAL_STATE_NAMES}

    def _sample(self, entry_id: str, fields: dict[str, str]) -> Sample:
        at = int(entry_id.split("-", 1)[0]) / 1000
        return Sample(at, self._totals(dict(fields)), int(fields.get("queue_depth", 0)))


def _point(before: Sample, after: Sample) -> dict[str, object]:
    # A total never falls, unless Redis lost the hash (a restart without persistence): then
    # that minute shows 0 rather than a negative count.
    finished = {state: max(0, n - before.totals.get(state, 0)) for state, n in after.totals.items()}
    return {"at": after.at, "finished": finished, "queue_depth": after.queue_depth}
