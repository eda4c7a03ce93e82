"""The redis-server that `jobyard up` starts is durable (AOF, fsync always) and stops cleanly;
the shared `redis_url` / `redis_client` fixtures work."""

from pathlib import Path

import pytest
import redis

from cli.ports import port_is_free
from cli.redis_server import RedisServer
from tests.helpers import free_port


@pytest.mark.usefixtures("redis_server_binary")
def test_embedded_redis_runs_with_aof_always_and_stops(tmp_path: Path) -> None:
    server = RedisServer(tmp_path / "redis", free_port())
    server.start()
    try:
        client = redis.Redis.from_url(server.url, decode_responses=True)
        assert client.config_get("appendonly") == {"appendonly": "yes"}
        assert client.config_get("appendfsync") == {"appendfsync": "always"}
        assert client.config_get("save") == {"save": ""}
        assert client.config_get("dir") == {"dir": str(tmp_path / "redis")}
        assert client.set("k", "v")
        client.close()
    finally:
        server.stop()
    assert server.process is not None and server.process.returncode is not None
    assert port_is_free("127.0.0.1", server.port)
    assert (tmp_path / "redis" / "appendonlydir").is_dir()


def test_redis_fixture_gives_a_flushed_database(redis_client: "redis.Redis[bytes]") -> None:
    assert redis_client.dbsize() == 0
    redis_client.set("left-behind", "1")


def test_redis_fixture_flushes_between_tests(redis_client: "redis.Redis[bytes]") -> None:
    assert redis_client.get("left-behind") is None
    assert redis_client.config_get("appendonly") == {"appendonly": "no"}
