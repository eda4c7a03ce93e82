"""Which API errors are transient (shared.client.is_transient), the Retry-After an error
carries over real HTTP, and shared.retry: the backoff's steps and the one retry loop."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from shared.client import ApiClient, ApiError, ApiUnreachable, is_transient
from shared.retry import Backoff, GaveUp, retry


@pytest.mark.parametrize("status", [0, 408, 429, 500, 502, 503, 504])
def test_unreachable_timeouts_rate_limits_and_server_failures_are_transient(status: int) -> None:
    assert is_transient(ApiError(status, "x", "y"))


@pytest.mark.parametrize("status", [400, 401, 403, 404, 409, 410, 413, 422])
def test_other_client_errors_are_final(status: int) -> None:
    assert not is_transient(ApiError(status, "x", "y"))


def test_only_errors_of_the_client_are_classified() -> None:
    assert is_transient(ApiUnreachable("connection refused"))
    assert not is_transient(ValueError("a bug"))


class _Answers(BaseHTTPRequestHandler):
    """GET /<status>?retry_after=<header>: that status, with that Retry-After if given."""

    def do_GET(self) -> None:
        path, _, query = self.path.partition("?retry_after=")
        self.send_response(int(path.strip("/")))
        if query:
            self.send_header("Retry-After", query.replace("%20", " "))
        body = b'{"error": {"code": "slow_down", "message": "too many requests"}}'
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        pass


@pytest.fixture
def client() -> Iterator[ApiClient]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Answers)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    api = ApiClient(f"http://127.0.0.1:{server.server_address[1]}")
    try:
        yield api
    finally:
        api.close()
        server.shutdown()
        server.server_close()


def error_of(client: ApiClient, path: str) -> ApiError:
    with pytest.raises(ApiError) as raised:
        client.request("GET", path)
    return raised.value


def test_an_error_carries_the_retry_after_the_server_asked_for(client: ApiClient) -> None:
    error = error_of(client, "/429?retry_after=3")
    assert (error.status, error.code, error.retry_after_s) == (429, "slow_down", 3.0)
    assert error_of(client, "/503").retry_after_s is None
    # The HTTP-date form is left to the caller's own backoff.
    assert error_of(client, "/503?retry_after=Wed,%2021%20Oct%202015").retry_after_s is None


def test_backoff_doubles_up_to_its_cap_with_at_most_half_taken_off() -> None:
    backoff = Backoff(1.0, 5.0)
    delays = [backoff.next() for _ in range(6)]
    for delay, step in zip(delays, [1, 2, 4, 5, 5, 5], strict=True):
        assert step / 2 <= delay <= step
    backoff.reset()
    assert 0.5 <= backoff.next() <= 1.0


def test_backoff_jitters_so_clients_that_failed_together_spread_out() -> None:
    assert len({Backoff(1.0, 5.0).next() for _ in range(20)}) > 1


class Script:
    """A call that raises the given errors in turn, then answers "ok"; it counts its calls."""

    def __init__(self, *errors: Exception) -> None:
        self.errors = list(errors)
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.errors:
            raise self.errors.pop(0)
        return "ok"


class Waits:
    """retry()'s wait: records each delay, gives up after `give_up_after` waits."""

    def __init__(self, give_up_after: int = 1000) -> None:
        self.delays: list[float] = []
        self.give_up_after = give_up_after

    def __call__(self, delay: float) -> bool:
        self.delays.append(delay)
        return len(self.delays) >= self.give_up_after


def test_retry_rides_out_transient_errors_with_growing_waits() -> None:
    call = Script(
        ApiUnreachable("down"), ApiError(503, "unavailable", "redis"), ApiError(502, "x", "y")
    )
    waits = Waits()
    retried: list[tuple[int, float]] = []

    answer = retry(
        call,
        waits,
        backoff=Backoff(1.0, 10.0),
        on_retry=lambda exc, delay: retried.append((exc.status, delay)),
    )

    assert (answer, call.calls) == ("ok", 4)
    assert [status for status, _ in retried] == [0, 503, 502]
    assert [delay for _, delay in retried] == waits.delays
    for delay, step in zip(waits.delays, [1, 2, 4], strict=True):
        assert step / 2 <= delay <= step


def test_retry_raises_a_final_answer_at_once() -> None:
    call = Script(ApiError(409, "stale_attempt", "not current"))
    waits = Waits()

    with pytest.raises(ApiError) as raised:
        retry(call, waits)

    assert raised.value.status == 409
    assert (call.calls, waits.delays) == (1, [])


def test_retry_lets_other_exceptions_through() -> None:
    with pytest.raises(ValueError):
        retry(Script(ValueError("a bug")), Waits())


def test_retry_gives_up_when_the_wait_says_so() -> None:
    last = ApiUnreachable("still down")
    call = Script(ApiUnreachable("down"), last, ApiUnreachable("never tried"))

    with pytest.raises(GaveUp) as raised:
        retry(call, Waits(give_up_after=2))

    assert raised.value.error is last
    assert call.calls == 2


def test_retry_waits_at_least_what_the_server_asked_for() -> None:
    call = Script(ApiError(429, "slow_down", "too many", retry_after_s=7.0))
    waits = Waits()

    retry(call, waits, backoff=Backoff(0.01, 0.05))

    assert waits.delays == [7.0]
