"""Fixtures for every test: a real redis-server on a free port, and a clean client for it."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cli.redis_server import RedisServer
from tests.helpers import free_port, require_binary


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """A throwaway redis-server (no persistence) for the whole session: redis://127.0.0.1:PORT/0."""
    require_binary("redis-server", "redis-server")
    with tempfile.TemporaryDirectory(prefix="jobyard-redis-") as data_dir:
        server = RedisServer(Path(data_dir), free_port(), durable=False)
        server.start()
        try:
            yield server.url
        finally:
            server.stop()


@pytest.fixture
def redis_client(redis_url: str) -> Iterator["redis.Redis[bytes]"]:
    """A client on the session's Redis, with the database flushed before the test."""
    client: redis.Redis[bytes] = redis.Redis.from_url(redis_url)
    client.flushdb()
    try:
        yield client
    finally:
        client.close()
