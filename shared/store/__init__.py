"""The Redis store: the single source of truth for jobs, workers and tokens.

`Store` bundles one client, its registered scripts and the key builder; the parts are
`jobs`, `workers`, `tokens`, `scheduling`, `streams`, `history` and `metrics`. Only the api and
scheduler use it.
"""

from collections.abc import Callable

import redis
from redis.backoff import ExponentialBackoff
from redis.retry import Retry

from shared import clock as default_clock
from shared.store.history import HistoryStore
from shared.store.jobs import JobStore
from shared.store.keys import Keys
from shared.store.metrics import MetricsStore
from shared.store.scheduling import SchedulingStore
from shared.store.scripts import Scripts
from shared.store.streams import StreamStore
from shared.store.tokens import TokenStore
from shared.store.workers import WorkerStore

# A read that takes longer means Redis is in trouble; blocking reads wait in shorter slices
# (see WorkerStore.pop_assigned) so they never reach it.
SOCKET_TIMEOUT_S = 5.0


class Store:
    def __init__(
        self,
        client: redis.Redis,
        prefix: str = "jy:",
        clock: Callable[[], float] = default_clock.now,
    ) -> None:
        self.redis = client
        self.keys = Keys(prefix)
        scripts = Scripts(client)
        self.jobs = JobStore(client, self.keys, scripts, clock)
        self.workers = WorkerStore(client, self.keys, scripts, clock)
        self.tokens = TokenStore(client, self.keys, scripts, clock)
        self.scheduling = SchedulingStore(client, self.keys, scripts, clock)
        self.streams = StreamStore(client, self.keys)
        self.history = HistoryStore(client, self.keys, scripts, clock)
        self.metrics = MetricsStore(client, self.keys, scripts, clock)


def connect(redis_url: str) -> redis.Redis:
    """A client that decodes replies to str, checks idle connections before use, and gives
    up on an unreachable Redis within about a second, so callers can answer 503 promptly."""
    return redis.Redis.from_url(
        redis_url,
        decode_responses=True,
        socket_connect_timeout=0.5,
        socket_timeout=SOCKET_TIMEOUT_S,
        health_check_interval=30,
        retry=Retry(ExponentialBackoff(cap=0.2, base=0.02), retries=2),
    )
