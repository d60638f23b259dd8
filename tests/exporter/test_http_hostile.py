"""The exporter's HTTP layer under hostile and bursty clients, on loopback only."""

from __future__ import annotations

import json
import socket
import threading
import time

import pytest

from tests.conftest import http

SMUGGLED = b"POST /api/v1/jobs/victim/finish HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}"


@pytest.fixture
def exp(make_exporter):
    e = make_exporter("--backend", "simulated")
    assert http("POST", e.url + "/api/v1/jobs", {"job_id": "victim", "epochs_planned": 5})[0] == 201
    return e


def address(exp) -> tuple[str, int]:
    host, port = exp.url.rsplit("//", 1)[1].split(":")
    return host, int(port)


def exchange(exp, raw: bytes, wait: float = 1.0) -> bytes:
    """Send raw bytes on one keep-alive connection; everything the server answered."""
    with socket.create_connection(address(exp), timeout=5) as s:
        s.sendall(raw)
        s.settimeout(wait)
        out = b""
        try:
            while chunk := s.recv(65536):
                out += chunk
        except TimeoutError:
            pass
    return out


@pytest.mark.parametrize(
    "head",
    [
        b"GET /healthz HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
        b"DELETE /api/v1/jobs/victim HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
        b"POST /metrics HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n%x\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 1_%d\r\n\r\n",
        b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\nContent-Length: 3\r\n\r\n",
    ],
)
def test_a_body_is_never_parsed_as_the_next_request(exp, head):
    raw = head % len(SMUGGLED) + SMUGGLED
    answer = exchange(exp, raw)
    assert answer.startswith(b"HTTP/1.1 ")
    assert answer.count(b"HTTP/1.1 ") == 1, answer  # one request, one answer
    assert http("GET", exp.url + "/api/v1/jobs/victim")[1]["state"] == "running"


def test_a_short_body_is_a_400_not_a_hang(exp):
    with socket.create_connection(address(exp), timeout=5) as s:
        s.sendall(b"POST /api/v1/jobs HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n\r\n{}")
        s.shutdown(socket.SHUT_WR)
        answer = b""
        while chunk := s.recv(65536):
            answer += chunk
    assert answer.startswith(b"HTTP/1.1 400")
    assert b"shorter than" in answer


@pytest.mark.parametrize(
    "body",
    [
        b"[" * 1000 + b"]" * 1000,
        b'{"job_id": "x", "epochs_planned": 1' + b"0" * 400 + b"}",
        b'{"job_id": "x", "epochs_planned": 5, "features": {"model_gflops": 1' + b"0" * 400 + b"}}",
    ],
)
def test_deep_json_and_huge_numbers_are_400(exp, body):
    status, answer = http("POST", exp.url + "/api/v1/jobs", raw=body)
    assert status == 400 and answer["error"]


@pytest.mark.parametrize("method", ["OPTIONS", "TRACE", "get", "BREW", "PUT"])
def test_every_method_gets_json(exp, method):
    answer = exchange(exp, f"{method} /api/v1/jobs HTTP/1.1\r\nHost: x\r\n\r\n".encode())
    head, _, body = answer.partition(b"\r\n\r\n")
    status = int(head.split()[1])
    assert 400 <= status < 500, answer
    assert b"application/json" in head
    assert json.loads(body)["error"]


def test_two_hundred_simultaneous_connections_are_all_answered(exp):
    n = 200
    results: list[float | None] = [None] * n
    barrier = threading.Barrier(n)

    def one(i: int) -> None:
        barrier.wait()
        started = time.monotonic()
        status, _ = http("GET", exp.url + "/healthz", timeout=10)
        if status == 200:
            results[i] = time.monotonic() - started

    threads = [threading.Thread(target=one, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    answered = [r for r in results if r is not None]
    assert len(answered) == n
    assert max(answered) < 2.0  # not seconds of SYN retries behind a listen queue of 5
