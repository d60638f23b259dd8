"""The small HTTP server the exporter and the estimator share (standard library only).

One port serves ``/metrics`` (rendered by a callable, so this module needs no
prometheus_client), ``/healthz`` (200 or 503 with a JSON body), an optional landing page,
and a JSON API under ``/api/``. Every request's body is read whole before it is answered,
with a strict ``Content-Length`` (digits only, one value) and a bound (413); chunked
bodies are refused (411); a body that stops short is 400 or 408; each of these closes the
connection, so no byte of a body is ever parsed as the next request. Every error is JSON,
also for unknown methods, and an unexpected error answers 500 without a traceback.
"""

from __future__ import annotations

import contextlib
import gzip
import json
import logging
import socket
import ssl
import threading
from collections.abc import Callable, Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

log = logging.getLogger("joulecast.http")

MAX_BODY_BYTES = 64 * 1024

#: (method, path, headers, body) -> (status, JSON body, route label for accounting)
ApiHandler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, Any], str]]

#: the Authorization header -> whether it is let in (basic auth of the web config file)
AuthCheck = Callable[[str | None], bool]

GZIP_MIN_BYTES = 1024


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
        tls: ssl.SSLContext | None = None,
        auth: AuthCheck | None = None,
        api_bearer: bool = False,
    ) -> None:
        self.metrics = metrics  # Accept header -> (body, content type)
        self.health = health
        self.api = api
        self.telemetry_path = telemetry_path
        self.landing = landing
        self.observe = observe  # (method, route, status) of every API reply
        self.no_api_message = no_api_message
        self.tls = tls
        self.auth = auth
        self.api_bearer = api_bearer  # the API's bearer token stands in for basic auth
        try:
            super().__init__(address, _Handler)
        except OSError as err:  # e.g. EADDRINUSE: say which address
            host, port = address
            raise OSError(
                err.errno, f"cannot listen on {host or '0.0.0.0'}:{port}: {err.strerror}"
            ) from None

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def get_request(self) -> tuple[socket.socket, Any]:
        sock, addr = super().get_request()
        if self.tls is not None:  # the handshake runs in the request's own thread
            sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        return sock, addr

    def handle_error(self, request: Any, client_address: Any) -> None:
        log.debug("connection from %s failed", client_address, exc_info=True)

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
    # headers and body leave in one segment: no Nagle / delayed-ACK stall on keep-alive
    disable_nagle_algorithm = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug("%s %s", self.address_string(), format % args)

    def setup(self) -> None:
        self._tls_failed = False
        if isinstance(self.request, ssl.SSLSocket):
            self.request.settimeout(self.timeout)
            try:
                self.request.do_handshake()
            except (ssl.SSLError, OSError) as err:  # plain HTTP, a refused client certificate
                log.debug("TLS handshake with %s failed: %s", self.client_address, err)
                self._tls_failed = True
        super().setup()

    def handle(self) -> None:
        if not self._tls_failed:
            super().handle()

    def send_error(self, code: int, message: str | None = None, explain: str | None = None) -> None:
        """Every error is JSON, also those http.server answers itself (a bad request line,
        an unknown method), and the connection is closed after it."""
        if code == HTTPStatus.NOT_IMPLEMENTED:  # a method with no handler, e.g. "get"
            code, message = 405, f"method {getattr(self, 'command', '')!r} is not allowed"
        self.close_connection = True
        body = json.dumps({"error": message or HTTPStatus(code).phrase}).encode()
        try:
            self.send_response(code)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header("Connection", "close")
            self._finish(body)
        except OSError:
            pass

    def _send(
        self,
        status: int,
        body: bytes,
        content_type: str,
        headers: Mapping[str, str] | None = None,
    ) -> None:
        self.send_response(status)
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.send_header("Content-Type", content_type)
        if len(body) >= GZIP_MIN_BYTES and "gzip" in self.headers.get("Accept-Encoding", ""):
            body = gzip.compress(body, compresslevel=1)
            self.send_header("Content-Encoding", "gzip")
        self.send_header("Content-Length", str(len(body)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self._finish(body)

    def _finish(self, body: bytes) -> None:
        """End the headers and write them with the body in one write (one segment for a
        small answer: no delayed-ACK stall on keep-alive connections)."""
        self._headers_buffer.append(b"\r\n")
        if self.command != "HEAD":
            self._headers_buffer.append(body)
        self.flush_headers()

    def _send_api(self, status: int, body: dict[str, Any], route: str) -> None:
        if self.server.observe is not None:
            self.server.observe(self.command, route, status)
        self._send(status, json.dumps(body).encode(), "application/json")

    def _refuse(self, status: int, message: str) -> None:
        self.close_connection = True  # what follows on this connection cannot be trusted
        self._send_api(status, {"error": message}, "other")

    def _read_body(self) -> bytes | None:
        """The whole request body, read before anything is answered (so no byte of it can
        be taken for the next request), or None after a 4xx that closes the connection."""
        if "Transfer-Encoding" in self.headers:
            self._refuse(411, "Transfer-Encoding is not accepted; send Content-Length")
            return None
        values = self.headers.get_all("Content-Length") or []
        if not values:
            return b""
        raw = values[0].strip()
        if len(set(v.strip() for v in values)) != 1 or not (raw.isascii() and raw.isdigit()):
            self._refuse(400, "invalid Content-Length")
            return None
        length = int(raw)
        if length > MAX_BODY_BYTES:
            self._refuse(413, f"body larger than {MAX_BODY_BYTES} bytes")
            return None
        try:
            body = self.rfile.read(length)
        except TimeoutError:
            self._refuse(408, f"the body did not arrive within {self.timeout} s")
            return None
        if len(body) < length:
            self._refuse(400, "body shorter than its Content-Length")
            return None
        return body

    def _dispatch(self) -> None:
        try:
            body = self._read_body()
            if body is None:
                return
            path = self.path.split("?", 1)[0]
            given = self.headers.get("Authorization")
            bearer = (
                self.server.api_bearer
                and path.startswith("/api/")
                and (given or "").startswith("Bearer ")
            )
            if self.server.auth is not None and not bearer and not self.server.auth(given):
                self._send(
                    401,
                    b'{"error": "missing or wrong basic auth credentials"}',
                    "application/json",
                    {"WWW-Authenticate": 'Basic realm="joulecast"'},
                )
                return
            if path.startswith("/api/"):
                if self.server.api is None:
                    self._send_api(404, {"error": self.server.no_api_message}, "other")
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
            self.close_connection = True
        except Exception:  # never a crash, never a traceback to the client: log it, answer 500
            log.exception("request %s %s failed", self.command, self.path[:200])
            self.close_connection = True
            with contextlib.suppress(OSError):
                self._send(500, b'{"error": "internal error"}', "application/json")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch
    do_OPTIONS = do_TRACE = do_CONNECT = _dispatch
