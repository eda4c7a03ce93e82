"""Rate limits per token (flask-limiter), counted in Redis so every API process shares them.

Each request counts once, when it arrives: a long-poll or a stream costs one request
however long it stays open. A worker's own endpoints (heartbeat, assignments, updates, an
attempt's start, output and result) have their own, larger budget, config.worker_rate_limit,
so that one runaway agent spends only its own; everything else counts against
config.rate_limit. The probes and /metrics are never limited: a scraper or a load balancer
must not be refused by the limit they help watch.
"""

import math
import time

from flask import Flask, Response, request
from flask_limiter import Limiter, RateLimitExceeded, RequestLimit

from api.auth import identify
from api.errors import Forbidden, Unauthorized, error_response
from api.extensions import services

EXEMPT = frozenset({"probes.healthz", "probes.readyz", "probes.metrics"})


def install(app: Flask) -> None:
    config, store = app.extensions["jobyard"].config, app.extensions["jobyard"].store
    limiter = Limiter(
        _identity,
        app=app,
        # One budget per identity across every endpoint (not one per route), hence an
        # application limit; which budget is decided per request.
        application_limits=[_budget],
        # The store's own connections: the same Redis, its short timeouts (a Redis down
        # costs a request half a second, not a hang), and a test's fakeredis too.
        storage_uri=config.redis_url,
        storage_options={
            "connection_pool": store.redis.connection_pool,
            "key_prefix": store.keys.rate_limits,  # the store's prefix (config.redis_prefix)
        },
        # Two counters a key (this window and the last), whatever the limit: a moving window
        # would keep one list entry per request, 6000 a token at the default.
        strategy="sliding-window-counter",
        application_limits_exempt_when=lambda: request.endpoint in EXEMPT,
        # Fail open: when Redis cannot be reached, every view that needs the store answers
        # 503 itself, while /healthz and the views that need no Redis keep working; a
        # limiter that refused too (or raised a 500) would only add a second failure.
        swallow_errors=True,
        # Our own Retry-After on a 429 only: the X-RateLimit headers on every response
        # would cost each one another Redis round trip.
        headers_enabled=False,
        on_breach=_refusal,
    )
    app.extensions["jobyard_limiter"] = limiter
    app.register_error_handler(RateLimitExceeded, _rate_limited)


def is_worker_endpoint() -> bool:
    """/api/v1/workers/<id>/... and /api/v1/jobs/<id>/attempts/...: an agent's calls."""
    rule = request.url_rule.rule if request.url_rule is not None else ""
    return rule.startswith("/api/v1/workers/<") or "/attempts/" in rule


def _budget() -> str:
    config = services().config
    return config.worker_rate_limit if is_worker_endpoint() else config.rate_limit


def _identity() -> str:
    """The hash of a token that authenticates (never the token itself); the remote address
    for a request without one or with a wrong one, so that inventing tokens buys no new
    budget."""
    try:
        _, digest = identify()
    except (Unauthorized, Forbidden):  # Forbidden: a session's unsafe request without CSRF
        return f"addr:{request.remote_addr or 'unknown'}"
    return f"token:{digest}"


def _refusal(limit: RequestLimit) -> Response:
    # reset_at is rounded up to the next second, which can make it a second past the window.
    window_s = limit.limit.get_expiry()
    retry_after = min(window_s, max(1, math.ceil(limit.reset_at - time.time())))
    response = error_response(
        429,
        "rate_limited",
        f"too many requests: the limit is {limit.limit}; retry after {retry_after} s",
        {"limit": str(limit.limit), "retry_after_s": retry_after},
    )
    response.headers["Retry-After"] = str(retry_after)
    return response


def _rate_limited(exc: RateLimitExceeded) -> Response:
    # on_breach always builds the response; the fallback keeps the shape if it ever did not.
    if isinstance(exc.response, Response):
        return exc.response
    return error_response(429, "rate_limited", "too many requests")
