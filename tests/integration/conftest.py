"""Integration tests: the store against a real redis-server (started by tests/conftest.py)."""

import pytest
import redis

from shared.store import Store
from tests.store_support import ManualClock

pytestmark = pytest.mark.redis


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(redis_client: redis.Redis, clock: ManualClock) -> Store:
    return Store(redis_client, "t:", clock)
