"""Fixtures for every test: a real redis-server on a free port, and a clean client for it;
and the marks (redis, docker, e2e) that every test gets from the fixtures it uses."""

import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from cli.redis_server import RedisServer
from tests.helpers import free_port, require_binary

# A test that uses one of these fixtures, directly or through another fixture, gets the
# mark: `-m "not redis"` then leaves out every test that needs redis-server. A `pytestmark`
# in a conftest would mark nothing, and one written in each test file is soon forgotten.
MARKS_BY_FIXTURE = {
    "redis_server_binary": "redis",
    "docker_client": "docker",
    "cluster": "e2e",
    "make_cluster": "e2e",
    "api_process": "e2e",
    "browser": "browser",
}


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by mark
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        used = set(getattr(item, "fixturenames", ()))
        for fixture, mark in MARKS_BY_FIXTURE.items():
            if fixture in used and item.get_closest_marker(mark) is None:
                item.add_marker(mark)


@pytest.fixture(scope="session")
def redis_server_binary() -> str:
    """The redis-server binary: every test that starts a redis-server asks for it (and so
    carries the redis mark); skips, or fails under JOBYARD_REQUIRE_DOCKER=1, without it."""
    return require_binary("redis-server", "redis-server")


@pytest.fixture(scope="session")
def redis_url(redis_server_binary: str) -> Iterator[str]:
    """A throwaway redis-server (no persistence) for the whole session: redis://127.0.0.1:PORT/0."""
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
