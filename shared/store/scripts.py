"""Loads the Lua scripts in lua/ once per Redis client, each with lib.lua prepended."""

from collections.abc import Callable
from importlib.resources import files
from typing import Any

import redis

from shared.store.keys import Keys

SCRIPT_NAMES = (
    "submit",
    "assign",
    "pending",
    "start",
    "result",
    "cancel",
    "retry",
    "register",
    "heartbeat",
    "drain",
    "deregister",
    "lost",
    "lease",
    "expire",
    "reap",
    "promote",
    "delete",
    "output",
    "snapshot",
)


def _source(name: str) -> str:
    return files("shared.store").joinpath("lua", f"{name}.lua").read_text()


class Scripts:
    """One registered script per name; `run` sends EVALSHA and reloads after a Redis restart."""

    def __init__(self, client: redis.Redis) -> None:
        lib = _source("lib")
        self._scripts = {
            name: client.register_script(lib + "\n" + _source(name)) for name in SCRIPT_NAMES
        }

    def run(self, name: str, keys: list[str], args: list[Any], client: Any = None) -> Any:
        return self._scripts[name](keys=keys, args=args, client=client)


class StorePart:
    """What every part of the store holds: the client, the key builder, the registered
    scripts and the clock that stamps every change."""

    def __init__(
        self, client: redis.Redis, keys: Keys, scripts: Scripts, clock: Callable[[], float]
    ) -> None:
        self.redis = client
        self.keys = keys
        self.scripts = scripts
        self.clock = clock
