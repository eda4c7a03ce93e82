"""shared/transport.py against a real HTTP/1.1 server on loopback: connections are kept
alive and reused, each concurrent caller gets its own, one the server closed while idle is
never sent on, and a stream reads its chunks as they come."""

import http.server
import json
import socket
import threading
from collections.abc import Iterator

import pytest

from shared.client import ApiClient, ApiError, ApiUnreachable, stream_events
from shared.transport import Connections
from tests.helpers import free_port


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive unless a side closes

    def do_GET(self) -> None:
        server: Server = self.server  # type: ignore[assignment]
        server.requests.append((self.path, self.client_address[1]))
        if self.path.startswith("/slow"):
            server.release.wait(5)
        if self.path == "/stream":
            self._stream()
            return
        if self.path == "/missing":
            self._send(404, {"error": {"code": "not_found", "message": "no such job"}})
            return
        self._send(200, {"path": self.path})

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        self._send(200, {"got": json.loads(self.rfile.read(length))})

    def _send(self, status: int, body: object) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _stream(self) -> None:
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        events = (b"id: 1\ndata: one\n\n", b"id: 2\ndata: two\n\n", b"event: end\ndata: {}\n\n")
        for event in events:
            self.wfile.write(b"%x\r\n%s\r\n" % (len(event), event))
            self.wfile.flush()
        self.wfile.write(b"0\r\n\r\n")
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:
        pass


class Server(http.server.ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, port: int) -> None:
        super().__init__(("127.0.0.1", port), Handler)
        self.requests: list[tuple[str, int]] = []  # path, the client's port (its connection)
        self.release = threading.Event()


@pytest.fixture
def server() -> Iterator[Server]:
    server = Server(free_port())
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.release.set()
    server.shutdown()
    server.server_close()


def url(server: Server) -> str:
    return f"http://127.0.0.1:{server.server_address[1]}"


def test_one_caller_reuses_one_connection(server: Server) -> None:
    client = ApiClient(url(server), "t")
    assert client.request("GET", "/a", params={"x": 1, "skip": None, "many": [1, 2]}) == {
        "path": "/a?x=1&many=1&many=2"
    }
    assert client.request("POST", "/b", json={"k": "v"}) == {"got": {"k": "v"}}
    assert client.request("GET", "/c") == {"path": "/c"}
    assert len({port for _, port in server.requests}) == 1


def test_concurrent_callers_each_get_a_connection(server: Server) -> None:
    client = ApiClient(url(server), "t")
    slow = threading.Thread(target=client.request, args=("GET", "/slow"))
    slow.start()
    try:
        assert client.request("GET", "/fast") == {"path": "/fast"}  # not behind the slow one
    finally:
        server.release.set()
        slow.join(5)
    assert len({port for _, port in server.requests}) == 2


def test_a_connection_the_server_closed_while_idle_is_not_used(server: Server) -> None:
    connections = Connections(url(server))
    assert connections.exchange("GET", "/a", None, {}, 5).status == 200
    # The server ends the kept-alive connection (its keep-alive timeout, a restart).
    [idle] = connections._idle
    assert idle.sock is not None
    idle.sock.shutdown(socket.SHUT_RD)  # what the client sees of a server's close: EOF
    assert connections.exchange("GET", "/b", None, {}, 5).status == 200
    assert len({port for _, port in server.requests}) == 2


def test_an_error_answer_carries_the_status_and_code(server: Server) -> None:
    with pytest.raises(ApiError) as raised:
        ApiClient(url(server), "t").request("GET", "/missing")
    assert (raised.value.status, raised.value.code, raised.value.message) == (
        404,
        "not_found",
        "no such job",
    )


def test_nothing_listening_is_unreachable() -> None:
    with pytest.raises(ApiUnreachable):
        ApiClient(f"http://127.0.0.1:{free_port()}", "t", timeout_s=2).request("GET", "/")


def test_a_stream_yields_its_events_as_they_come(server: Server) -> None:
    events = list(stream_events(ApiClient(url(server), "t"), "/stream"))
    assert [(e.event, e.data, e.last_id) for e in events] == [
        ("message", "one", "1"),
        ("message", "two", "2"),
        ("end", "{}", "2"),
    ]


def test_a_path_with_non_ascii_characters_goes_percent_encoded(server: Server) -> None:
    client = ApiClient(url(server), "t")
    assert client.request("GET", "/api/v1/workers/wõrker 1/x%41") == {
        "path": "/api/v1/workers/w%C3%B5rker%201/x%41"
    }


def test_a_path_prefix_and_a_bad_url() -> None:
    assert Connections("http://h:1/under/").url("/api/v1/jobs") == "/under/api/v1/jobs"
    with pytest.raises(ValueError):
        Connections("ftp://h/")
