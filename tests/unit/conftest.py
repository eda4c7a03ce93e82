"""Unit tests run the real Lua scripts on fakeredis (with lupa) under a controlled clock."""

from collections.abc import Iterator

import fakeredis
import pytest

from shared.store import Store
from tests.store_support import ManualClock


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
def store(clock: ManualClock) -> Iterator[Store]:
    yield Store(fakeredis.FakeRedis(decode_responses=True), "t:", clock)
