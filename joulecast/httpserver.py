"""The small HTTP server the exporter and the estimator share (standard library only).

One port serves ``/metrics`` (rendered by a callable, so this module needs no
prometheus_client), ``/healthz`` (200 or 503 with a JSON body), an optional landing page,
and a JSON API under ``/api/``. Request bodies are bounded (413), chunked bodies refused
(411), a stalled client is dropped after 10 s, and an unexpected error answers 500 and is
logged: a request never takes the server down.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
from collections.abc import Callable, Mapping
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("joulecast.http")

MAX_BODY_BYTES = 64 * 1024

#: (method, path, headers, body) -> (status, JSON body, route label for accounting)
ApiHandler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, Any], str]]


class ServiceServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    request_queue_size = 1024  # listen backlog: bursts of simultaneous epoch ends and scrapes

    def __init__(
        self,
        address: tuple[str, int],
        *,
        metrics: Callable[[str], tuple[bytes, str]],
        health: Callable[[], tuple[bool, dict[str, Any]]],
        api: ApiHandler | None = None,
        telemetry_path: str = "/metrics",
        landing: str | None = None,
        observe: Callable[[str, str, int], None] | None = None,
        no_api_message: str = "no such endpoint",
    ) -> None:
        self.metrics = metrics  # Accept header -> (body, content type)
        self.health = health
        self.api = api
        self.telemetry_path = telemetry_path
        self.landing = landing
        self.observe = observe  # (method, route, status) of every API reply
        self.no_api_message = no_api_message
        super().__init__(address, _Handler)

    def serve_in_thread(self, name: str = "joulecast-http") -> threading.Thread:
        t = threading.Thread(
            target=self.serve_forever, kwargs={"poll_interval": 0.1}, name=name, daemon=True
        )
        t.start()
        return t


class _Handler(BaseHTTPRequestHandler):
    server: ServiceServer
    timeout = 10  # a client that stalls mid-request is dropped
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def _send(self, status: int, body: bytes, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _send_api(self, status: int, body: dict[str, Any], route: str) -> None:
        if self.server.observe is not None:
            self.server.observe(self.command, route, status)
        self._send(status, json.dumps(body).encode(), "application/json")

    def _read_body(self) -> bytes | None:
        """The request body, or None after answering a 4xx for a bad one."""
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_api(
                411, {"error": "chunked bodies are not accepted; send Content-Length"}, "other"
            )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            length = -1
        if length < 0:
            self._send_api(400, {"error": "invalid Content-Length"}, "other")
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_api(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"}, "other")
            return None
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/"):
                if self.server.api is None:
                    self._send_api(404, {"error": self.server.no_api_message}, "other")
                    return
                body = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
                if body is None:
                    return
                self._send_api(*self.server.api(self.command, self.path, self.headers, body))
            elif self.command not in ("GET", "HEAD"):
                self._send(405, b'{"error": "method not allowed"}', "application/json")
            elif path == self.server.telemetry_path:
                self._send(200, *self.server.metrics(self.headers.get("Accept", "")))
            elif path == "/healthz":
                ok, detail = self.server.health()
                self._send(200 if ok else 503, json.dumps(detail).encode(), "application/json")
            elif path == "/" and self.server.landing is not None:
                self._send(200, self.server.landing.encode(), "text/html")
            else:
                self._send(404, b'{"error": "not found"}', "application/json")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # never a crash: log it, answer 500
            log.exception("request %s %s failed", self.command, self.path[:200])
            with contextlib.suppress(OSError):
                self._send(500, b'{"error": "internal error"}', "application/json")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch
