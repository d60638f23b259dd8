"""HTTP plumbing: ``/metrics``, ``/healthz`` and the marker API on one port."""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from prometheus_client import CollectorRegistry
from prometheus_client.exposition import choose_encoder

from exporter.api import MAX_BODY_BYTES, ApiResponse, MarkerApi
from exporter.collectors.exporter_self import ApiStats

log = logging.getLogger("joulecast.exporter")

LANDING = """<html><head><title>joulecast exporter</title></head><body>
<h1>joulecast exporter</h1><p><a href="{path}">Metrics</a> &middot;
<a href="/api/v1/jobs">Jobs</a> &middot; <a href="/healthz">Health</a></p></body></html>"""


class ExporterServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self,
        address: tuple[str, int],
        registry: CollectorRegistry,
        api: MarkerApi,
        stats: ApiStats,
        healthy: Callable[[], tuple[bool, str]],
        telemetry_path: str = "/metrics",
    ) -> None:
        self.registry = registry
        self.api = api
        self.stats = stats
        self.healthy = healthy
        self.telemetry_path = telemetry_path
        super().__init__(address, _Handler)

    def serve_in_thread(self) -> threading.Thread:
        t = threading.Thread(
            target=self.serve_forever,
            kwargs={"poll_interval": 0.1},
            name="joulecast-http",
            daemon=True,
        )
        t.start()
        return t


class _Handler(BaseHTTPRequestHandler):
    server: ExporterServer
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

    def _send_json(self, resp: ApiResponse) -> None:
        self.server.stats.count(self.command, resp.route, resp.status)
        self._send(resp.status, json.dumps(resp.body).encode(), "application/json")

    def _read_body(self) -> bytes | None:
        if self.headers.get("Transfer-Encoding", "").lower() == "chunked":
            self._send_json(
                ApiResponse(
                    411, {"error": "chunked bodies are not accepted; send Content-Length"}, "other"
                )
            )
            return None
        raw = self.headers.get("Content-Length")
        if raw is None:
            return b""
        try:
            length = int(raw)
        except ValueError:
            self._send_json(ApiResponse(400, {"error": "invalid Content-Length"}, "other"))
            return None
        if length < 0:
            self._send_json(ApiResponse(400, {"error": "invalid Content-Length"}, "other"))
            return None
        if length > MAX_BODY_BYTES:
            self.close_connection = True
            self._send_json(
                ApiResponse(413, {"error": f"body larger than {MAX_BODY_BYTES} bytes"}, "other")
            )
            return None
        return self.rfile.read(length)

    def _dispatch(self) -> None:
        try:
            path = self.path.split("?", 1)[0]
            if path.startswith("/api/"):
                body = self._read_body() if self.command in ("POST", "PUT", "PATCH") else b""
                if body is None:
                    return
                self._send_json(self.server.api.handle(self.command, self.path, self.headers, body))
            elif self.command not in ("GET", "HEAD"):
                self._send(405, b'{"error": "method not allowed"}', "application/json")
            elif path == self.server.telemetry_path:
                encoder, content_type = choose_encoder(self.headers.get("Accept", ""))
                self._send(200, encoder(self.server.registry), content_type)
            elif path == "/healthz":
                ok, why = self.server.healthy()
                self._send(
                    200 if ok else 503,
                    json.dumps({"status": "ok" if ok else "unhealthy", "detail": why}).encode(),
                    "application/json",
                )
            elif path == "/":
                self._send(
                    200, LANDING.format(path=self.server.telemetry_path).encode(), "text/html"
                )
            else:
                self._send(404, b'{"error": "not found"}', "application/json")
        except (BrokenPipeError, ConnectionResetError):
            pass
        except Exception:  # never a crash: log it, answer 500
            log.exception("request %s %s failed", self.command, self.path[:200])
            with contextlib.suppress(OSError):
                self._send(500, b'{"error": "internal error"}', "application/json")

    do_GET = do_HEAD = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch


def sampler_health(
    last_sample: Callable[[], float], max_age_s: float
) -> Callable[[], tuple[bool, str]]:
    def check() -> tuple[bool, str]:
        age = time.time() - last_sample()
        return (age <= max_age_s, f"last GPU sample {age:.1f}s ago")

    return check
