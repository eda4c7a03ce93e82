"""HTTP/1.1 to one server over kept-alive http.client connections, for ApiClient.

The standard library's client instead of requests: importing requests costs about 70 ms
(a third of `jobyard submit --follow -- true`'s own time) and each call 1.3 to 1.7 ms of
CPU, http.client 0.2 to 0.5 ms. A connection serves one request at a time, so a thread
takes an idle one (or opens one) for each request and gives it back when the answer has
been read: the agent's heartbeat, long-poll and attempts each get their own.
"""

import http.client
import select
import socket
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, replace
from urllib.parse import quote, urlencode, urlsplit

# What a failed exchange raises: the connection is then closed, never reused.
TRANSPORT_ERRORS = (OSError, http.client.HTTPException)
STREAM_CHUNK_BYTES = 64 * 1024
# What a request target keeps unencoded, as requests' requote_uri does: the delimiters
# (a caller's own query string included) and '%', so what is encoded already stays.
PATH_SAFE = "!#$%&'()*+,/:;=?@[]~"


@dataclass(frozen=True)
class Response:
    status: int
    headers: Mapping[str, str]  # names in lower case
    body: bytes

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300

    @property
    def text(self) -> str:
        return self.body.decode("utf-8", errors="replace")


class Connections:
    """Idle kept-alive connections to the server of `base_url`, one per concurrent caller."""

    def __init__(self, base_url: str) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"not an http(s) URL: {base_url!r}")
        self._https = parts.scheme == "https"
        self._host = parts.hostname
        self._port = parts.port
        self._prefix = parts.path.rstrip("/")  # an API mounted under a path
        self._idle: list[http.client.HTTPConnection] = []
        self._lock = threading.Lock()

    def url(self, path: str, params: Mapping[str, object] | None = None) -> str:
        """The request target: the prefix, the path and the query (None values left out,
        a list as repeated keys)."""
        query = {key: value for key, value in (params or {}).items() if value is not None}
        # An id with non-ASCII characters goes as UTF-8, percent-encoded, as requests sends
        # it (http.client sends only ASCII); what is encoded already stays as it is.
        target = quote(self._prefix + path, safe=PATH_SAFE)
        return target + (f"?{urlencode(query, doseq=True)}" if query else "")

    def exchange(
        self,
        method: str,
        target: str,
        body: bytes | None,
        headers: Mapping[str, str],
        timeout_s: float,
    ) -> Response:
        """Send one request and read its whole answer; TRANSPORT_ERRORS when that fails."""
        conn = self._take(timeout_s)
        try:
            conn.request(method, target, body=body, headers=dict(headers))
            response = conn.getresponse()
            answer = Response(response.status, _headers(response), response.read())
        except BaseException:
            conn.close()
            raise
        if response.will_close:
            conn.close()
        else:
            self._give(conn)
        return answer

    def stream(
        self,
        target: str,
        headers: Mapping[str, str],
        connect_timeout_s: float,
        read_timeout_s: float,
    ) -> tuple[Response, Iterator[bytes]]:
        """GET a streamed answer on a connection of its own: the status and headers (with
        the whole body when not 2xx), and the chunks of a 2xx body as they arrive. Each wait
        for a chunk lasts up to `read_timeout_s`; the connection closes with the iterator."""
        conn = self._open(connect_timeout_s)
        try:
            conn.request("GET", target, headers=dict(headers))
            response = conn.getresponse()
            head = Response(response.status, _headers(response), b"")
            if not head.ok:
                refused = replace(head, body=response.read())
                conn.close()  # its own connection: nothing else would close it
                return refused, iter(())
            if conn.sock is not None:
                conn.sock.settimeout(read_timeout_s)
        except BaseException:
            conn.close()
            raise
        return head, _chunks(conn, response)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    def _take(self, timeout_s: float) -> http.client.HTTPConnection:
        while True:
            with self._lock:
                conn = self._idle.pop() if self._idle else None
            if conn is None:
                return self._open(timeout_s)
            if conn.sock is None or _dropped(conn.sock):
                # The server closed it while it sat idle (its keep-alive timeout, a
                # restart): sending on it would fail, or worse, half succeed.
                conn.close()
                continue
            conn.timeout = timeout_s
            conn.sock.settimeout(timeout_s)
            return conn

    def _give(self, conn: http.client.HTTPConnection) -> None:
        with self._lock:
            self._idle.append(conn)

    def _open(self, timeout_s: float) -> http.client.HTTPConnection:
        if self._https:
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout_s)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout_s)


def _chunks(
    conn: http.client.HTTPConnection, response: http.client.HTTPResponse
) -> Iterator[bytes]:
    try:
        while chunk := response.read1(STREAM_CHUNK_BYTES):
            yield chunk
    finally:
        conn.close()


def _headers(response: http.client.HTTPResponse) -> dict[str, str]:
    return {name.lower(): value for name, value in response.getheaders()}


def _dropped(sock: socket.socket) -> bool:
    """Whether an idle connection's socket has something to read: an idle HTTP connection
    only ever does when the server has closed it (as urllib3 checks before reusing one)."""
    poller = select.poll()
    try:
        poller.register(sock, select.POLLIN)
        return bool(poller.poll(0))
    except (OSError, ValueError):
        return True
