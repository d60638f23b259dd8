"""The shared HTTP server: a failing handler answers 500 and the server keeps serving."""

from __future__ import annotations

from joulecast.httpserver import ServiceServer
from tests.conftest import http


def test_failing_api_is_a_500_not_a_crash():
    seen = []

    def api(method, path, headers, body):
        raise RuntimeError("bug")

    srv = ServiceServer(
        ("127.0.0.1", 0),
        metrics=lambda accept: (b"m 1\n", "text/plain"),
        health=lambda: (False, {"status": "down"}),
        api=api,
        observe=lambda *a: seen.append(a),
    )
    srv.serve_in_thread()
    url = f"http://127.0.0.1:{srv.server_address[1]}"
    try:
        assert http("POST", url + "/api/x", {"a": 1})[0] == 500
        assert http("GET", url + "/healthz") == (503, {"status": "down"})
        assert http("POST", url + "/api/x", raw=b"x" * 70_000)[0] == 413
        assert seen == [("POST", "other", 413)]
        assert http("GET", url + "/nothing")[0] == 404
    finally:
        srv.shutdown()
        srv.server_close()
