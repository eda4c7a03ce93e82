"""Tokens: only their sha256 is stored; a lookup maps a presented token to its record.

People's tokens (users and admins) are created and revoked here, each under a name that
becomes the `owner` of the jobs it submits; worker tokens are written by worker
registration (register.lua) and die with their worker.
"""

import hashlib
import json
from typing import Any

from shared.store.errors import NameTaken, NotFound
from shared.store.scripts import StorePart


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore(StorePart):
    def lookup(self, token: str) -> dict[str, Any] | None:
        """The record {name, role, worker_id?} of a stored token, or None."""
        return self.lookup_hash(token_hash(token))

    def lookup_hash(self, digest: str) -> dict[str, Any] | None:
        """The same, by the token's sha256 (hex)."""
        raw = self.redis.hget(self.keys.tokens, digest)
        return json.loads(raw) if raw else None

    def create(self, name: str, role: str, token: str) -> dict[str, Any]:
        """Store a person's token under `name`; NameTaken when another token holds it.
        Returns its record {name, role, created_at}."""
        record = {"name": name, "role": role, "created_at": self.clock()}
        status = self.scripts.run(
            "token_create",
            [self.keys.token_names, self.keys.tokens],
            [name, token_hash(token), json.dumps(record)],
        )
        if status == "taken":
            raise NameTaken(f"a token named {name} exists: revoke it first, or pick another")
        return record

    def revoke(self, name: str) -> str:
        """Revoke the person's token named `name`. Returns its hash (to drop it from a
        token cache); NotFound when no token has that name."""
        keys = [self.keys.token_names, self.keys.tokens, self.keys.token_last_used]
        reply: str = self.scripts.run("token_revoke", keys, [name])
        if reply == "not_found":
            raise NotFound(f"no token named {name}")
        return reply

    def used(self, digest: str, record: dict[str, Any]) -> None:
        """Record that a token was used now: a person's only (a worker's last heartbeat
        says the same), and only while its name still holds it (token_used.lua)."""
        if record.get("role") == "worker":
            return
        self.scripts.run(
            "token_used",
            [self.keys.token_names, self.keys.token_last_used],
            [record["name"], digest, self.clock()],
        )

    def people(self) -> list[dict[str, Any]]:
        """Every person's token, by name: {name, role, created_at, last_used_at}, never the
        token or its hash."""
        names = self.redis.hgetall(self.keys.token_names)
        if not names:
            return []
        ordered = sorted(names)
        pipe = self.redis.pipeline(transaction=True)
        pipe.hmget(self.keys.tokens, [names[name] for name in ordered])
        pipe.hmget(self.keys.token_last_used, ordered)
        records, last_used = pipe.execute()
        return [
            {
                "name": name,
                "role": record["role"],
                "created_at": record["created_at"],
                "last_used_at": float(used) if used else None,
            }
            for name, raw, used in zip(ordered, records, last_used, strict=True)
            # A token revoked between the two reads is left out.
            if raw and (record := json.loads(raw))
        ]
