"""A scripted fake of the jobyard API over real HTTP, for the CLI tests.

It answers each (method, path) with the responses a test gives, in order (the last one
repeats): JSON bodies, or Raw ones such as event streams. It records every request, so a
test sees exactly what the CLI sent.
"""

import json
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit


@dataclass(frozen=True)
class Raw:
    """A body sent as is, with no Content-Length: the response ends when the connection
    closes, as a server-sent event stream that drops does."""

    body: bytes
    content_type: str = "text/event-stream"


@dataclass
class Recorded:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class FakeApi:
    url: str = ""
    routes: dict[tuple[str, str], list[tuple[int, Any]]] = field(default_factory=dict)
    requests: list[Recorded] = field(default_factory=list)

    def answer(self, method: str, path: str, *responses: Any, status: int = 200) -> None:
        """Script the answers to METHOD path: bodies, or (status, body) tuples."""
        self.routes[(method, path)] = [
            item if isinstance(item, tuple) else (status, item) for item in responses
        ]

    def next_response(self, method: str, path: str) -> tuple[int, Any]:
        queue = self.routes.get((method, path))
        if not queue:
            return 404, {"error": {"code": "not_found", "message": f"no route {method} {path}"}}
        return queue.pop(0) if len(queue) > 1 else queue[0]

    def sent(self, method: str, path: str) -> list[Recorded]:
        return [r for r in self.requests if (r.method, r.path) == (method, path)]


def handler_for(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def handle_any(self) -> None:
            parts = urlsplit(self.path)
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            api.requests.append(
                Recorded(
                    self.command,
                    parts.path,
                    parse_qs(parts.query),
                    dict(self.headers),
                    json.loads(raw) if raw else None,
                )
            )
            status, body = api.next_response(self.command, parts.path)
            self.send_response(status)
            if isinstance(body, Raw):
                self.send_header("Content-Type", body.content_type)
                self.end_headers()
                self.wfile.write(body.body)
                return
            data = json.dumps(body).encode()
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        do_GET = do_POST = do_DELETE = handle_any

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler


@contextmanager
def serving() -> Iterator[FakeApi]:
    api = FakeApi()
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_for(api))
    api.url = f"http://127.0.0.1:{server.server_address[1]}"
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield api
    finally:
        server.shutdown()
        server.server_close()
