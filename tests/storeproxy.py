"""A stand-in for the query paths of the distributed stores (VictoriaMetrics cluster, Mimir,
Thanos are not packaged here), in front of a real Prometheus or VictoriaMetrics."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PREFIX = "/select/42/prometheus"  # VictoriaMetrics cluster's tenant path


class StoreProxy:
    """Forwards ``PREFIX/api/v1/...`` to Prometheus when the tenant header is right; over
    ``max_series`` series it answers Mimir's limit error; ``warn`` adds Thanos' warnings."""

    def __init__(self, upstream: str, tenant: str) -> None:
        self.upstream, self.tenant = upstream, tenant
        self.max_series: int | None = None
        self.warn = False
        self.refused = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not self.path.startswith(PREFIX + "/api/v1/"):
                    return self._send(404, {"status": "error", "error": "no such path"})
                if self.headers.get("X-Scope-OrgID") != outer.tenant:
                    return self._send(401, {"status": "error", "error": "no org id"})
                path = self.path[len(PREFIX) :]
                req = urllib.request.Request(outer.upstream + path, data=body, method="POST")
                req.add_header("Content-Type", "application/x-www-form-urlencoded")
                with urllib.request.urlopen(req, timeout=10) as resp:
                    answer = json.loads(resp.read())
                series = len(answer.get("data", {}).get("result", []))
                if outer.max_series is not None and series > outer.max_series:
                    outer.refused += 1
                    limit = f"the query hit the max number of series limit (limit: {outer.max_series} series)"
                    return self._send(
                        422, {"status": "error", "errorType": "execution", "error": limit}
                    )
                if outer.warn:
                    answer["warnings"] = ["store 10.0.0.7:10901 unavailable: partial response"]
                return self._send(200, answer)

            def _send(self, status: int, doc: dict):
                payload = json.dumps(doc).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
