"""What a real `jobyard api` answers before Flask sees a request, and what only a real HTTP
server shows: gunicorn's own refusals (an over-long request line, over-large headers) and a
405 in the API's error shape, JSON with their statuses, never an HTML page."""

import http.client
import json
from typing import Any
from urllib.parse import urlsplit

import pytest

from cli.gunicorn_app import MAX_HEADER_FIELD_BYTES, MAX_HEADER_FIELDS, MAX_REQUEST_LINE
from shared.schemas.errors import ErrorSchema
from tests.e2e.cluster import ADMIN_TOKEN, Cluster

AUTH = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def ask(
    api: Cluster, method: str, path: str, headers: dict[str, str], body: str | None = None
) -> tuple[int, http.client.HTTPMessage, bytes]:
    address = urlsplit(api.api_url)
    connection = http.client.HTTPConnection(address.hostname, address.port, timeout=10)
    try:
        connection.request(method, path, body=body, headers=headers)
        response = connection.getresponse()
        return response.status, response.headers, response.read()
    finally:
        connection.close()


def error_of(headers: http.client.HTTPMessage, body: bytes) -> dict[str, Any]:
    assert headers.get_content_type() == "application/json", body[:300]
    document = json.loads(body)
    assert ErrorSchema().validate(document) == {}, document
    error: dict[str, Any] = document["error"]
    return error


CASES = {
    "request line one past the limit": (
        "GET", "/api/v1/jobs?x=" + "a" * MAX_REQUEST_LINE, {}, 414, "uri_too_long",
    ),
    "a header past the field limit": (
        "GET", "/api/v1/jobs", {"X-Big": "b" * (MAX_HEADER_FIELD_BYTES + 1)}, 431,
        "headers_too_large",
    ),
    "more headers than allowed": (
        "GET", "/api/v1/jobs", {f"X-H{n}": "v" for n in range(MAX_HEADER_FIELDS + 1)}, 431,
        "headers_too_large",
    ),
}  # fmt: skip


@pytest.mark.parametrize("case", CASES.values(), ids=CASES.keys())
def test_gunicorn_refusals_are_json_with_their_status(
    api_process: Cluster, case: tuple[str, str, dict[str, str], int, str]
) -> None:
    method, path, headers, status, code = case
    got, answer_headers, body = ask(api_process, method, path, {**AUTH, **headers})
    assert got == status, body[:300]
    assert error_of(answer_headers, body)["code"] == code
    api_process.check_alive()


def test_just_under_the_limits_reaches_the_api(api_process: Cluster) -> None:
    # The request line is "GET <path> HTTP/1.1": the path may take what the rest leaves.
    path = "/api/v1/jobs?x=" + "a" * (MAX_REQUEST_LINE - len("GET /api/v1/jobs?x= HTTP/1.1"))
    big = {"X-Big": "b" * (MAX_HEADER_FIELD_BYTES - len("X-Big: ") - 2)}
    status, _, body = ask(api_process, "GET", path, {**AUTH, **big})
    assert status == 200, body[:300]


def test_a_405_is_json_and_says_what_is_allowed(api_process: Cluster) -> None:
    status, headers, body = ask(api_process, "PUT", "/api/v1/jobs", AUTH, "{}")
    assert status == 405
    assert error_of(headers, body)["code"] == "method_not_allowed"
    assert {"GET", "POST"} <= set(headers["Allow"].split(", "))


def test_a_body_that_is_not_json_is_415_and_deep_json_400(api_process: Cluster) -> None:
    status, headers, body = ask(
        api_process, "POST", "/api/v1/jobs", {**AUTH, "Content-Type": "text/plain"},
        '{"command": ["true"]}',
    )  # fmt: skip
    assert status == 415 and error_of(headers, body)["code"] == "unsupported_media_type"
    deep = '{"command": ' + "[" * 5000 + "]" * 5000 + "}"
    status, headers, body = ask(
        api_process, "POST", "/api/v1/jobs", {**AUTH, "Content-Type": "application/json"}, deep
    )
    assert status == 400 and error_of(headers, body)["code"] == "bad_request"
