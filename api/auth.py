"""Bearer tokens: the admin and join tokens from configuration; people's and workers' tokens
from the store.

Configured tokens are compared in constant time; stored ones are looked up by their sha256,
so the raw token is never kept, and remembered for TOKEN_CACHE_S (api/token_cache.py).
"""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from api.errors import Forbidden, Unauthorized
from api.extensions import services
from shared.schemas.tokens import ADMIN_NAME, JOIN_NAME

F = TypeVar("F", bound=Callable[..., Any])


@dataclass(frozen=True)
class Principal:
    name: str
    role: str  # admin | user | worker | join
    worker_id: str | None = None

    @property
    def is_admin(self) -> bool:
        return self.role == "admin"


def _equal(presented: str, configured: str) -> bool:
    return bool(configured) and hmac.compare_digest(presented.encode(), configured.encode())


def presented_token() -> str:
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("send Authorization: Bearer <token>")
    return token.strip()


def authenticate() -> Principal:
    token = presented_token()
    config = services().config
    if _equal(token, config.admin_token):
        return Principal(ADMIN_NAME, "admin")
    if _equal(token, config.worker_join_token):
        return Principal(JOIN_NAME, "join")
    record = services().tokens.get(token)
    if record is None:
        raise Unauthorized("unknown or revoked token")
    return Principal(record["name"], record["role"], record.get("worker_id"))


def current() -> Principal:
    principal: Principal = g.principal
    return principal


def require(*roles: str) -> Callable[[F], F]:
    """Let through only callers whose token has one of `roles`."""

    def decorate(view: F) -> F:
        @wraps(view)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            principal = authenticate()
            if principal.role not in roles:
                raise Forbidden(f"a {principal.role} token cannot do this")
            g.principal = principal
            return view(*args, **kwargs)

        return wrapper  # type: ignore[return-value]

    return decorate


def require_own_worker(worker_id: str) -> None:
    principal = current()
    if principal.role == "worker" and principal.worker_id != worker_id:
        raise Forbidden("a worker may only speak for itself")
