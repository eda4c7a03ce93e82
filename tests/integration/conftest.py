"""Integration tests: the store against a real redis-server (started by tests/conftest.py,
whose redis_url fixture gives each of these tests the redis mark)."""

from collections.abc import Iterator

import pytest

from shared.store import Store, connect
from tests.store_support import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(redis_url: str, clock: ManualClock) -> Iterator[Store]:
    client = connect(redis_url)
    client.flushdb()
    yield Store(client, "t:", clock)
    client.close()
