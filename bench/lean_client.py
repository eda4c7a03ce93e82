"""A lean JSON-over-HTTP client for the load generator: one keep-alive http.client
connection per instance. The benchmark's own side must stay off the 2 cores it shares with
the servers it measures: `requests` (under shared.client.ApiClient) costs 1.3 to 1.7 ms of
CPU per call here, http.client 0.2 to 0.5 ms."""

import http.client
import json
from typing import Any
from urllib.parse import urlsplit


class LeanError(Exception):
    def __init__(self, status: int, body: str) -> None:
        super().__init__(f"HTTP {status}: {body[:200]}")
        self.status = status


class LeanClient:
    def __init__(self, base_url: str, token: str, timeout_s: float = 10.0) -> None:
        parts = urlsplit(base_url)
        self._host, self._port = parts.hostname or "127.0.0.1", parts.port or 80
        self._timeout_s = timeout_s
        self._headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        self._conn: http.client.HTTPConnection | None = None

    def call(self, method: str, path: str, body: Any = None) -> Any:
        """Send one request; the decoded JSON answer, or None for 204. Reconnects once when
        the kept-alive connection was closed by the server."""
        payload = None if body is None else json.dumps(body)
        try:
            return self._send(method, path, payload)
        except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
            self.close()
            return self._send(method, path, payload)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def _send(self, method: str, path: str, payload: str | None) -> Any:
        if self._conn is None:
            self._conn = http.client.HTTPConnection(self._host, self._port, self._timeout_s)
        self._conn.request(method, path, body=payload, headers=self._headers)
        response = self._conn.getresponse()
        data = response.read()
        if response.status == 204:
            return None
        if response.status >= 300:
            raise LeanError(response.status, data.decode(errors="replace"))
        return json.loads(data)
