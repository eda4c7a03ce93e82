"""What /metrics reports that no index holds, kept by the Lua scripts in one hash
(Keys.metrics): latency histograms observed by the transitions themselves, so that every
process's transitions count (the scheduler's placements, the API's starts and results) and
none is lost when a process restarts; and the output bytes stored.

The series and buckets are shared/latency.py's. A field "<series>\\t<n>" counts the
observations in the n-th bucket (1-based; one past the last is +Inf), "<series>\\tsum" adds
up their seconds.
"""

from dataclasses import dataclass

from shared.latency import LATENCY_BUCKETS_S, LATENCY_SERIES
from shared.store.scripts import StorePart


@dataclass(frozen=True)
class Histogram:
    """Counts per bucket (not cumulative; the last is +Inf) and the sum, in seconds."""

    counts: tuple[int, ...]
    sum_s: float

    @property
    def count(self) -> int:
        return sum(self.counts)

    def cumulative(self) -> list[tuple[str, int]]:
        """Prometheus's buckets: (le, observations at most le), +Inf last."""
        bounds = [*(repr(b) for b in LATENCY_BUCKETS_S), "+Inf"]
        total, buckets = 0, []
        for bound, n in zip(bounds, self.counts, strict=True):
            total += n
            buckets.append((bound, total))
        return buckets


@dataclass(frozen=True)
class StoredMetrics:
    latency: dict[str, Histogram]
    output_bytes: int


class MetricsStore(StorePart):
    def read(self) -> StoredMetrics:
        fields = self.redis.hgetall(self.keys.metrics)
        latency = {series: _histogram(fields, series) for series in LATENCY_SERIES}
        return StoredMetrics(latency, max(0, int(fields.get("output_bytes", 0))))


def _histogram(fields: dict[str, str], series: str) -> Histogram:
    counts = tuple(
        int(fields.get(f"{series}\t{n}", 0)) for n in range(1, len(LATENCY_BUCKETS_S) + 2)
    )
    return Histogram(counts, float(fields.get(f"{series}\tsum", 0.0)))
