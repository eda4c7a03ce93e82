"""The HTTP client for jobyard's API, used by the worker agent, the CLI and the tests.

Every non-2xx answer becomes an ApiError carrying the status and the error code from the
JSON error body, so callers branch on `exc.status` (409 stale attempt, 410 lost, ...).
`is_transient` is the one rule for which errors are worth retrying unchanged.
"""

import json as jsonlib
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from shared.transport import TRANSPORT_ERRORS, Connections, Response


class ApiError(Exception):
    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        details: Any = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.code = code
        self.message = message
        self.details = details
        # How long the server asked us to wait before trying again (its Retry-After).
        self.retry_after_s = retry_after_s


class ApiUnreachable(ApiError):
    """The API could not be reached at all (connection refused, reset, timed out)."""

    def __init__(self, message: str) -> None:
        super().__init__(0, "unreachable", message)


# Unreachable (0), a request the server timed out (408), rate limited (429) and, below,
# every 5xx (the server or a proxy in front of it failed): the same request may pass later.
# Any other 4xx is an answer (bad input, not found, conflict, gone) no repeat can change.
TRANSIENT_STATUSES = frozenset({0, 408, 429})
# Answers to a worker about one of its attempts meaning it is not the worker's any more
# (unknown, never its own, superseded, the worker lost): the job must die and its output
# is moot.
STALE_ATTEMPT = frozenset({403, 404, 409, 410})
# Answers meaning the worker's identity is gone (token refused, declared lost): join anew.
WORKER_LOST = frozenset({401, 410})


def is_transient(exc: BaseException) -> bool:
    """Whether the call that raised `exc` is worth retrying unchanged."""
    if not isinstance(exc, ApiError):
        return False
    return exc.status in TRANSIENT_STATUSES or 500 <= exc.status <= 599


REQUEST_TIMEOUT_S = 10.0  # a request's default wait for its answer


class ApiClient:
    def __init__(
        self, base_url: str, token: str = "", timeout_s: float = REQUEST_TIMEOUT_S
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        self.timeout_s = timeout_s
        self.connections = Connections(self.base_url)

    def close(self) -> None:
        """Close the kept-alive connections (a gunicorn stopping gracefully waits for them)."""
        self.connections.close()

    def request(
        self,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        headers: Mapping[str, str] | None = None,
        timeout_s: float | None = None,
    ) -> Any:
        """Send one request; returns the decoded JSON body, or None for 204."""
        all_headers = self.auth_headers()
        body = None
        if json is not None:
            body = jsonlib.dumps(json).encode()
            all_headers["Content-Type"] = "application/json"
        all_headers.update(headers or {})
        target = self.connections.url(path, params)
        try:
            response = self.connections.exchange(
                method, target, body, all_headers, timeout_s or self.timeout_s
            )
        except TRANSPORT_ERRORS as exc:
            raise ApiUnreachable(f"{method} {self.base_url}{path}: {exc!r}") from exc
        if not response.ok:
            raise _error_of(response)
        if response.status == 204:
            return None
        return _json_of(response)

    def auth_headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"} if self.token else {}

    # Users

    def submit(self, spec: Mapping[str, Any], idempotency_key: str | None = None) -> Any:
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        return self.request("POST", "/api/v1/jobs", json=dict(spec), headers=headers)

    def submit_batch(
        self, specs: Iterable[Mapping[str, Any]], idempotency_key: str | None = None
    ) -> Any:
        """Submit many jobs in one request; the answer's `jobs` are in the same order."""
        headers = {"Idempotency-Key": idempotency_key} if idempotency_key else None
        body = {"jobs": [dict(spec) for spec in specs]}
        return self.request("POST", "/api/v1/jobs/batch", json=body, headers=headers)

    def job(self, job_id: str) -> Any:
        return self.request("GET", f"/api/v1/jobs/{job_id}")

    def jobs(self, **filters: Any) -> Any:
        return self.request("GET", "/api/v1/jobs", params=filters)

    def events(self, job_id: str) -> Any:
        return self.request("GET", f"/api/v1/jobs/{job_id}/events")

    def output(self, job_id: str, offset: int = 0) -> Any:
        return self.request("GET", f"/api/v1/jobs/{job_id}/output", params={"offset": offset})

    def cancel(self, job_id: str) -> Any:
        return self.request("POST", f"/api/v1/jobs/{job_id}/cancel")

    def delete_job(self, job_id: str) -> None:
        self.request("DELETE", f"/api/v1/jobs/{job_id}")

    def workers(self) -> Any:
        return self.request("GET", "/api/v1/workers")

    def stats(self) -> Any:
        return self.request("GET", "/api/v1/stats")

    # Workers

    def register(self, body: Mapping[str, Any]) -> Any:
        return self.request("POST", "/api/v1/workers/register", json=dict(body))

    def heartbeat(
        self, worker_id: str, metrics: Mapping[str, Any], running: Iterable[Mapping[str, Any]]
    ) -> Any:
        body = {"metrics": dict(metrics), "running": list(running)}
        return self.request("POST", f"/api/v1/workers/{worker_id}/heartbeat", json=body)

    def assignments(self, worker_id: str, wait_s: float) -> list[dict[str, Any]]:
        body = self.request(
            "GET",
            f"/api/v1/workers/{worker_id}/assignments",
            params={"wait": wait_s},
            timeout_s=wait_s + 10,
        )
        return body["jobs"] if body else []

    def drain(self, worker_id: str) -> Any:
        return self.request("POST", f"/api/v1/workers/{worker_id}/drain", json={})

    def deregister(self, worker_id: str) -> Any:
        return self.request("DELETE", f"/api/v1/workers/{worker_id}")

    def start(self, job_id: str, attempt: int) -> Any:
        return self.request("POST", f"/api/v1/jobs/{job_id}/attempts/{attempt}/start", json={})

    def post_output(self, job_id: str, attempt: int, chunks: list[Mapping[str, Any]]) -> Any:
        return self.request(
            "POST", f"/api/v1/jobs/{job_id}/attempts/{attempt}/output", json={"chunks": chunks}
        )

    def result(self, job_id: str, attempt: int, body: Mapping[str, Any]) -> Any:
        return self.request(
            "POST", f"/api/v1/jobs/{job_id}/attempts/{attempt}/result", json=dict(body)
        )

    def updates(self, worker_id: str, items: list[Mapping[str, Any]]) -> list[dict[str, Any]]:
        """Many starts (`{"id", "attempt", "start": true}`) and results (`{"id", "attempt",
        "result": {...}}`) in one call; the answers, in order, each with its own `status`."""
        body = {"updates": [dict(item) for item in items]}
        answer = self.request("POST", f"/api/v1/workers/{worker_id}/updates", json=body)
        return list(answer["updates"])


# Server-sent events (the SSE endpoints: a job's output, the change feed)

# A stream sends a comment every 15 s; three missed ones mean the connection is dead.
SSE_READ_TIMEOUT_S = 45.0


@dataclass(frozen=True)
class ServerEvent:
    data: str
    event: str = "message"
    # The last id the server set, as EventSource keeps it: the id to resume after.
    last_id: str | None = None


def stream_events(
    client: ApiClient,
    path: str,
    *,
    last_event_id: str | None = None,
    read_timeout_s: float = SSE_READ_TIMEOUT_S,
) -> Iterator[ServerEvent]:
    """Open one text/event-stream of the API, then iterate its events until the server ends
    it. An error answer raises ApiError here; a connection that fails, here or while
    iterating, raises ApiUnreachable, so the caller can reconnect with the last id it got."""
    headers = {"Accept": "text/event-stream", **client.auth_headers()}
    if last_event_id:
        headers["Last-Event-ID"] = last_event_id
    target = client.connections.url(path)
    try:
        head, chunks = client.connections.stream(target, headers, client.timeout_s, read_timeout_s)
    except TRANSPORT_ERRORS as exc:
        raise ApiUnreachable(f"GET {client.base_url}{path}: {exc!r}") from exc
    if not head.ok:
        raise _error_of(head)
    return _events_of(chunks)


def _events_of(chunks: Iterator[bytes]) -> Iterator[ServerEvent]:
    try:
        yield from parse_events(lines_of(chunks))
    except TRANSPORT_ERRORS as exc:
        raise ApiUnreachable(f"the event stream broke: {exc!r}") from exc


def parse_events(lines: Iterable[str], last_id: str | None = None) -> Iterator[ServerEvent]:
    """Events from the lines of an event stream, by the rules of the SSE specification:
    `field: value` lines, comments starting with ':', a blank line ending each event."""
    data: list[str] = []
    event = ""
    for line in lines:
        if not line:
            if data:
                yield ServerEvent("\n".join(data), event or "message", last_id)
            data, event = [], ""
            continue
        name, _, value = line.partition(":")
        value = value.removeprefix(" ")
        if name == "data":
            data.append(value)
        elif name == "event":
            event = value
        elif name == "id" and "\0" not in value:
            last_id = value
        # Comments (empty name), retry and unknown fields: nothing to do here.


def lines_of(chunks: Iterable[bytes]) -> Iterator[str]:
    """Lines of a byte stream however it is cut into chunks, without their line ends."""
    pending = bytearray()
    for chunk in chunks:
        start = 0
        while (end := chunk.find(b"\n", start)) >= 0:
            pending += chunk[start:end]
            yield pending.rstrip(b"\r").decode("utf-8", errors="replace")
            pending.clear()
            start = end + 1
        pending += chunk[start:]


def _json_of(response: Response) -> Any:
    try:
        return jsonlib.loads(response.body)
    except ValueError:
        return None


def _error_of(response: Response) -> ApiError:
    """The ApiError of a non-2xx answer, from its JSON error body when it has one."""
    body = _json_of(response)
    error = body.get("error", {}) if isinstance(body, dict) else {}
    return ApiError(
        response.status,
        error.get("code", "http_error"),
        error.get("message", response.text[:200]),
        error.get("details"),
        _retry_after_s(response.headers.get("retry-after")),
    )


def _retry_after_s(header: str | None) -> float | None:
    """Retry-After in seconds; the HTTP-date form is ignored (our API never sends it), and
    then the caller's own backoff decides."""
    if header is None or not header.strip().isdigit():
        return None
    return float(header.strip())
