"""The dashboard's session cookie: a signed, timed value carrying the sha256 of the token
that logged in, never the token itself.

The signature proves the API issued the value; the hash is looked up on every request like a
presented token's, so revoking the token (or rotating the admin token) ends its sessions.
The secret is JOBYARD_SESSION_SECRET, or else derived from the admin token: every API
process of one deployment reads the same configuration, so any of them accepts the cookie.
"""

import hashlib
import hmac

from flask import request
from itsdangerous import BadSignature, URLSafeTimedSerializer

from shared.config import Config

COOKIE = "jobyard_session"
SALT = "jobyard session"
# Unsafe requests authenticated by the cookie must carry this header. SameSite=Strict keeps
# the cookie off other sites' requests already; a header no cross-site form can set is the
# second line (the OWASP "custom request header" defence).
CSRF_HEADER = "X-Jobyard-CSRF"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})


def _serializer(config: Config) -> URLSafeTimedSerializer | None:
    """None when there is nothing to sign with (no secret and no admin token)."""
    secret = config.session_secret
    if not secret and config.admin_token:
        secret = hmac.new(config.admin_token.encode(), SALT.encode(), hashlib.sha256).hexdigest()
    return URLSafeTimedSerializer(secret, salt=SALT) if secret else None


def can_sign(config: Config) -> bool:
    return _serializer(config) is not None


def encode(config: Config, digest: str) -> str:
    serializer = _serializer(config)
    if serializer is None:
        raise RuntimeError("no session secret: set JOBYARD_SESSION_SECRET or an admin token")
    value: str = serializer.dumps({"t": digest})
    return value


def presented_digest(config: Config) -> str | None:
    """The token hash of this request's session cookie, when it has a valid, unexpired one."""
    value = request.cookies.get(COOKIE)
    serializer = _serializer(config)
    if not value or serializer is None:
        return None
    try:
        payload = serializer.loads(value, max_age=config.session_ttl_s)
    except BadSignature:  # a SignatureExpired too
        return None
    digest = payload.get("t") if isinstance(payload, dict) else None
    return digest if isinstance(digest, str) else None
