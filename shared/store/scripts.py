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

    def loaded(self, client: redis.Redis, *names: str) -> list[str]:
        """The SHA1 of each script, loading any Redis lacks (as after a restart), for callers
        that send EVALSHA themselves."""
        scripts = [self._scripts[name] for name in names]
        exist = client.script_exists(*(script.sha for script in scripts))
        for script, exists in zip(scripts, exist, strict=True):
            if not exists:
                client.script_load(script.script)
        return [script.sha for script in scripts]


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
