"""Logging in to the dashboard: `/login` trades a token for a session cookie, `/logout` ends
it, and `page_principal()` says who is looking at a page.

The token travels once, in the login link `jobyard up` prints or in the login form; the
answer is a redirect, so the address bar never keeps it, and the cookie holds only its hash
(api/session_cookie.py).
"""

from typing import Any
from urllib.parse import urlsplit

from flask import Blueprint, Response, redirect, render_template, request
from werkzeug.wrappers import Response as BaseResponse

from api import session_cookie
from api.auth import Principal, person_for_digest
from api.errors import error_response
from api.extensions import services
from api.page_headers import PAGE_HEADERS
from shared.store.tokens import token_hash

blp = Blueprint("session", __name__)

MAX_TOKEN_CHARS = 1024  # longer than any token jobyard makes; a bigger one is not looked up
# No page of the login flow is cached, and none tells the next site where it came from: the
# login URL holds a token.
PRIVATE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}


@blp.get("/login")
def login_link() -> Any:
    token = request.args.get("token")
    if token is None:
        return _login_page(None, 200)
    return _log_in(token)


@blp.post("/login")
def login_form() -> Any:
    return _log_in(request.form.get("token", ""))


@blp.get("/logout")
def logout() -> BaseResponse:
    response = redirect("/login", code=303)
    response.delete_cookie(session_cookie.COOKIE, path="/", samesite="Strict", httponly=True)
    response.headers.update(PRIVATE_HEADERS)
    return response


def page_principal() -> Principal | None:
    """The person signed in to this browser, or None without a valid session."""
    digest = session_cookie.presented_digest(services().config)
    return person_for_digest(digest) if digest is not None else None


def _log_in(token: str) -> Any:
    config = services().config
    if not session_cookie.can_sign(config):
        return error_response(
            503, "unavailable", "no session secret: set JOBYARD_SESSION_SECRET or an admin token"
        )
    token = token.strip()
    digest = token_hash(token)
    # A worker's token and the join token are not a person's: person_for_digest says None.
    if not 0 < len(token) <= MAX_TOKEN_CHARS or person_for_digest(digest) is None:
        return _login_page("That token is unknown, revoked, or not a person's token.", 401)
    response = redirect(_local_path(request.values.get("next")), code=303)
    response.set_cookie(
        session_cookie.COOKIE,
        session_cookie.encode(config, digest),
        max_age=config.session_ttl_s,
        path="/",
        httponly=True,
        samesite="Strict",
        secure=request.is_secure,
    )
    response.headers.update(PRIVATE_HEADERS)
    return response


def _login_page(error: str | None, status: int) -> Response:
    page = render_template("login.html", error=error, next=_local_path(request.values.get("next")))
    headers = {**PAGE_HEADERS, **PRIVATE_HEADERS}
    if status == 401:
        headers["WWW-Authenticate"] = "Bearer"  # what a 401 must name (RFC 9110)
    return Response(page, status=status, headers=headers, mimetype="text/html")


def _local_path(asked: str | None) -> str:
    """Where to go after logging in: a path on this site only (no open redirect)."""
    if not asked or not asked.startswith("/") or asked.startswith(("//", "/\\")):
        return "/"
    parts = urlsplit(asked)
    if parts.scheme or parts.netloc or any(ord(c) < 32 for c in asked):
        return "/"
    return asked
