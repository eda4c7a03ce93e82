"""Bearer tokens: the admin and join tokens from configuration; people's and workers' tokens
from the store. A request without an Authorization header may instead show the dashboard's
session cookie (api/session_cookie.py), which stands for the person's token.

Configured tokens are compared in constant time; stored ones are looked up by their sha256,
so the raw token is never kept, and remembered for TOKEN_CACHE_S (api/token_cache.py).
"""

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps
from typing import Any, TypeVar

from flask import g, request

from api import session_cookie
from api.errors import Forbidden, Unauthorized
from api.extensions import services
from shared.identities import ADMIN_NAME, JOIN_NAME, PERSON_ROLES
from shared.store.tokens import token_hash

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
    return identify()[0]


def identify() -> tuple[Principal, str]:
    """Who is calling, and the sha256 of the credential they showed (the rate limits' key):
    the Authorization header's token, or else the dashboard's session cookie."""
    config = services().config
    if "Authorization" not in request.headers:
        digest = session_cookie.presented_digest(config)
        if digest is not None:
            return _session_principal(digest), digest
    token = presented_token()
    if _equal(token, config.admin_token):
        return Principal(ADMIN_NAME, "admin"), token_hash(token)
    if _equal(token, config.worker_join_token):
        return Principal(JOIN_NAME, "join"), token_hash(token)
    record = services().tokens.get(token)
    if record is None:
        raise Unauthorized("unknown or revoked token")
    return Principal(record["name"], record["role"], record.get("worker_id")), token_hash(token)


def person_for_digest(digest: str) -> Principal | None:
    """The admin or user whose token has this sha256; None for any other (a worker's or the
    join token cannot hold a session)."""
    config = services().config
    if config.admin_token and _equal(digest, token_hash(config.admin_token)):
        return Principal(ADMIN_NAME, "admin")
    record = services().tokens.get_digest(digest)
    if record is None or record["role"] not in PERSON_ROLES:
        return None
    return Principal(record["name"], record["role"])


def _session_principal(digest: str) -> Principal:
    principal = person_for_digest(digest)
    if principal is None:
        raise Unauthorized("the session has ended (its token was revoked): log in again")
    if request.method not in session_cookie.SAFE_METHODS and (
        request.headers.get(session_cookie.CSRF_HEADER) != "1"
    ):
        raise Forbidden(
            f"a request made with the session cookie must send {session_cookie.CSRF_HEADER}: 1"
        )
    return principal


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
