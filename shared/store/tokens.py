"""Tokens: only their sha256 is stored; a lookup maps a presented token to its record."""

import hashlib
import json
from typing import Any

import redis

from shared.store.keys import Keys


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    def __init__(self, client: redis.Redis, keys: Keys) -> None:
        self.redis = client
        self.keys = keys

    def lookup(self, token: str) -> dict[str, Any] | None:
        """The record {name, role, worker_id?} of a stored token, or None."""
        return self.lookup_hash(token_hash(token))

    def lookup_hash(self, digest: str) -> dict[str, Any] | None:
        """The same, by the token's sha256 (hex)."""
        raw = self.redis.hget(self.keys.tokens, digest)
        return json.loads(raw) if raw else None
