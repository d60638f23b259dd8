"""HTTP plumbing of the estimator: ``/metrics`` and ``/healthz``."""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from estimator.queue_api import MAX_BODY_BYTES, QueueApi

log = logging.getLogger("joulecast.estimator")


class EstimatorServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        health: Callable[[], tuple[bool, dict]],
        telemetry_path: str = "/metrics",
        queue_api: QueueApi | None = None,
    ) -> None:
        self.queue_api = queue_api
        self.registry = registry
        self.health = health
        self.telemetry_path = telemetry_path
        super().__init__(address, _Handler)

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(target=self.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        t.start()
        return t


class _Handler(BaseHTTPRequestHandler):
    server: EstimatorServer
    timeout = 10
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002
        log.debug(format, *args)

    def _send(self, status: int, body: bytes, ctype: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _api(self) -> None:
        if self.server.queue_api is None:
            self._send(
                404,
                b'{"error": "no queue: start the estimator with --queue.dir"}',
                "application/json",
            )
            return
        body = b""
        if self.command == "POST":
            try:
                length = int(self.headers.get("Content-Length", "0"))
            except ValueError:
                self._send(400, b'{"error": "invalid Content-Length"}', "application/json")
                return
            if length > MAX_BODY_BYTES or length < 0:
                self.close_connection = True
                self._send(
                    413,
                    json.dumps({"error": f"body larger than {MAX_BODY_BYTES} bytes"}).encode(),
                    "application/json",
                )
                return
            body = self.rfile.read(length)
        status, payload = self.server.queue_api.handle(self.command, self.path, self.headers, body)
        self._send(status, json.dumps(payload).encode(), "application/json")

    def do_GET(self) -> None:  # noqa: N802
        try:
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/"):
                self._api()
            elif self.command not in ("GET", "HEAD"):
                self._send(405, b'{"error": "method not allowed"}', "application/json")
            elif path == self.server.telemetry_path:
                encoder, ctype = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(self.server.registry), ctype)
            elif path == "/healthz":
                ok, detail = self.server.health()
                self._send(
                    200 if ok else 503,
                    json.dumps({"status": "ok" if ok else "stale", **detail}).encode(),
                    "application/json",
                )
            else:
                self._send(404, b'{"error": "not found"}', "application/json")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:
            log.exception("request failed")
            self._send(500, b'{"error": "internal error"}', "application/json")

    do_HEAD = do_POST = do_DELETE = do_PUT = do_GET
