"""The shared HTTP server: a failing handler answers 500 and the server keeps serving; odd
request lines, deadlines, gzip negotiation, pipelining and the connection cap."""

from __future__ import annotations

import gzip
import json
import time

import pytest

from joulecast.serving.limits import ServerLimits
from joulecast.serving.server import ServiceServer
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


def _raw(port: int, data: bytes, wait: float = 2.0) -> bytes:
    import socket

    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(data)
        s.settimeout(wait)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out


@pytest.fixture
def server():
    srv = ServiceServer(
        ("127.0.0.1", 0),
        metrics=lambda accept: (b"m 1\n" * 1000, "text/plain; version=0.0.4"),
        health=lambda: (True, {"status": "ok"}),
        limits=ServerLimits(read_timeout_s=1.0, idle_timeout_s=1.0),
    )
    srv.serve_in_thread()
    yield srv
    srv.shutdown()
    srv.server_close()


@pytest.mark.parametrize(
    ("line", "status"),
    [
        (b"GET /metrics\r\n\r\n", 400),  # HTTP/0.9
        (b"GET /metrics HTTP/2.0\r\nHost: x\r\n\r\n", 505),
        (b"GET /metrics FOO/1.1\r\nHost: x\r\n\r\n", 400),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03" + b"\x00" * 40, 400),  # TLS to plain
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000 + b"\r\n\r\n", 431),
        (b"GET / HTTP/1.1\r\nHost: x\r\n" + b"X-Long: " + b"a" * 20000, 431),  # unfinished
    ],
)
def test_odd_request_lines_get_a_json_answer_and_a_close(server, line, status):
    answer = _raw(server.server_address[1], line)
    head, _, body = answer.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 %d " % status), answer[:200]
    assert b"connection: close" in head.lower()
    assert json.loads(body)["error"]


def test_a_request_not_whole_by_the_deadline_is_408(server):
    answer = _raw(server.server_address[1], b"GET /metrics HTTP/1.1\r\nHost: x\r\n", wait=3)
    assert answer.startswith(b"HTTP/1.1 408 ")


def test_gzip_follows_its_q_value_and_every_answer_varies_on_accept_encoding(server):
    import http.client

    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    for accept, gzipped in [
        ("gzip", True),
        ("gzip;q=0", False),
        ("identity, gzip;q=0.5", True),
        ("*", True),
        ("*;q=0", False),
        ("br, *;q=0.1, gzip;q=0", False),
        ("", False),
    ]:
        conn.request("GET", "/metrics", headers={"Accept-Encoding": accept})
        resp = conn.getresponse()
        body = resp.read()
        assert resp.getheader("Vary") == "Accept-Encoding"
        assert (resp.getheader("Content-Encoding") == "gzip") is gzipped, accept
        assert (gzip.decompress(body) if gzipped else body).startswith(b"m 1\n")


def test_keep_alive_serves_pipelined_requests_in_order(server):
    two = b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\nGET /nothing HTTP/1.1\r\nHost: x\r\n\r\n"
    answer = _raw(server.server_address[1], two)
    assert answer.count(b"HTTP/1.1 ") == 2
    assert answer.index(b"HTTP/1.1 200") < answer.index(b"HTTP/1.1 404")


def test_past_the_connection_cap_the_longest_idle_connection_makes_room():
    import socket

    srv = ServiceServer(
        ("127.0.0.1", 0),
        metrics=lambda accept: (b"m 1\n", "text/plain"),
        health=lambda: (True, {"status": "ok"}),
        limits=ServerLimits(max_connections=10),
    )
    srv.serve_in_thread()
    try:
        idle = [socket.create_connection(("127.0.0.1", srv.server_address[1])) for _ in range(10)]
        for s in idle:
            s.sendall(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")  # never finished
        time.sleep(0.3)
        for _ in range(5):  # each new client is served; an old slow one is closed instead
            assert http("GET", f"http://127.0.0.1:{srv.server_address[1]}/healthz")[0] == 200
        assert srv.stats.closed["evicted"] == 1  # the first made room; then it was free again
        assert srv.stats.open_connections <= 10
        for s in idle:
            s.close()
    finally:
        srv.shutdown()
        srv.server_close()
