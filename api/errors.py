"""Every failure becomes {"error": {"code", "message", "details"}} with a fitting status:
never an HTML page, never a 500 for bad input, 503 when Redis cannot be reached."""

import logging
from collections.abc import Callable
from http import HTTPStatus
from typing import Any, TypeVar

import redis
from flask import Flask, Response, jsonify
from flask_smorest import Api, Blueprint
from werkzeug.exceptions import HTTPException

from api.metrics import REDIS_ERRORS
from shared.schemas.errors import ErrorSchema
from shared.store.errors import (
    InvalidState,
    NameTaken,
    NotFound,
    NotYourAttempt,
    StaleAttempt,
    WorkerLimit,
)
from shared.store.workers import WorkerLost

log = logging.getLogger("jobyard.api")

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    410: "gone",
    413: "too_large",
    414: "uri_too_long",
    415: "unsupported_media_type",
    417: "expectation_failed",
    422: "invalid",
    431: "headers_too_large",
    500: "internal",
    501: "not_implemented",
    503: "unavailable",
}


F = TypeVar("F", bound=Callable[..., Any])


class JobyardApi(Api):
    """flask-smorest's Api with our error shape: every error response of the OpenAPI
    document (each status's response component and the default one) refers to it."""

    ERROR_SCHEMA = ErrorSchema


def documents_errors(blp: Blueprint, *statuses: int) -> Callable[[F], F]:
    """Declares in the OpenAPI document the error statuses a view answers with, each one
    the status's response component (so with ErrorSchema)."""

    def decorate(view: F) -> F:
        for status in statuses:
            view = blp.alt_response(status, response=HTTPStatus(status).name)(view)
        return view

    return decorate


class ApiError(Exception):
    status = 400
    code = "bad_request"

    def __init__(self, message: str, details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.details = details


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class JobNotFound(ApiError):
    status, code = 404, "not_found"


class Invalid(ApiError):
    status, code = 422, "invalid"


def error_body(code: str, message: str, details: Any = None) -> dict[str, Any]:
    """The error shape; also what gunicorn's own answers carry (cli/gunicorn_app.py)."""
    return {"error": {"code": code, "message": message, "details": details}}


def error_response(status: int, code: str, message: str, details: Any = None) -> Response:
    response = jsonify(error_body(code, message, details))
    response.status_code = status
    if status == 401:
        response.headers["WWW-Authenticate"] = "Bearer"
    return response


def _api_error(exc: ApiError) -> Response:
    return error_response(exc.status, exc.code, exc.message, exc.details)


def _http_error(exc: HTTPException) -> Response:
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    details = data.get("messages")
    message = exc.description or exc.name
    if status == 422 and details:
        message = "the request has invalid values"
    elif status == 400 and details:
        message = "the request body is not valid JSON"
    response = error_response(status, HTTP_CODES.get(status, "http_error"), message, details)
    # What werkzeug's own page would have said besides its HTML: Allow on a 405, say.
    for name, value in exc.get_headers():
        if name.lower() != "content-type":
            response.headers[name] = value
    return response


def _redis_down(exc: redis.RedisError) -> Response:
    log.warning("event=redis_unavailable error=%r", str(exc))
    REDIS_ERRORS.inc()
    return error_response(503, "unavailable", "the job store (Redis) is unreachable; retry later")


def _unexpected(exc: Exception) -> Response:
    log.exception("event=unhandled_error")
    return error_response(500, "internal", "internal error; see the api log")


# The store's refusals of a worker's call about an attempt, as the per-job endpoints answer
# them and each item of POST /workers/{id}/updates does: (status, code).
ATTEMPT_REFUSALS: dict[type[Exception], tuple[int, str]] = {
    NotFound: (404, "not_found"),
    StaleAttempt: (409, "stale_attempt"),
    NotYourAttempt: (403, "forbidden"),  # a StaleAttempt too: the most derived class wins
}


def attempt_refusal(exc: Exception) -> tuple[int, str]:
    """The (status, code) of a refusal in ATTEMPT_REFUSALS, by its most derived class."""
    for cls in type(exc).__mro__:
        if cls in ATTEMPT_REFUSALS:
            return ATTEMPT_REFUSALS[cls]
    raise TypeError(f"not a refusal of an attempt: {exc!r}")


def _refused_attempt(exc: Exception) -> Response:
    status, code = attempt_refusal(exc)
    return error_response(status, code, str(exc))


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(ApiError, _api_error)
    app.register_error_handler(HTTPException, _http_error)
    # Flask picks the handler of the most derived class, as attempt_refusal does.
    for refusal in ATTEMPT_REFUSALS:
        app.register_error_handler(refusal, _refused_attempt)
    app.register_error_handler(
        InvalidState,
        lambda exc: error_response(409, "invalid_state", str(exc), {"state": exc.state}),
    )
    # 503, which agents retry: the cap frees up as workers leave or pass their retention.
    app.register_error_handler(
        WorkerLimit,
        lambda exc: error_response(503, "worker_limit", str(exc), {"max_workers": exc.limit}),
    )
    app.register_error_handler(NameTaken, lambda exc: error_response(409, "name_taken", str(exc)))
    app.register_error_handler(
        WorkerLost,
        lambda exc: error_response(
            410, "worker_lost", "this worker was declared lost; register anew"
        ),
    )
    app.register_error_handler(redis.ConnectionError, _redis_down)
    app.register_error_handler(redis.TimeoutError, _redis_down)
    app.register_error_handler(redis.BusyLoadingError, _redis_down)
    app.register_error_handler(Exception, _unexpected)
