"""Hostile clients for the flood benchmark and tests (bench/http_flood.py,
tests/joulecast/serving/test_floods.py), run in a process of their own so that their work does
not slow the scraper that measures: loopback only, every loop bounded by ``--duration``.

    python bench/floodclient.py slow  HOST PORT --n 2000 [--tls] --duration 12
    python bench/floodclient.py guess HOST PORT --threads 64 --duration 10

``slow`` opens N connections, sends half a request head on each and then one more byte
every second (slowloris); ``guess`` sends requests with wrong passwords as fast as it can.
Both print ``ready`` once the flood is up, and a JSON summary at the end.
"""

from __future__ import annotations

import argparse
import base64
import http.client
import json
import resource
import selectors
import socket
import ssl
import sys
import threading
import time

LOOPBACK = ("127.0.0.1", "::1", "localhost")


def _client_tls() -> ssl.SSLContext:
    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def slow(host: str, port: int, n: int, tls: bool, duration: float) -> dict:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(soft, n + 256)), hard))
    ctx = _client_tls() if tls else None
    socks: list[socket.socket] = []
    refused = 0
    for _ in range(n):
        try:
            s = socket.create_connection((host, port), timeout=10)
            if ctx is not None:
                s = ctx.wrap_socket(s)
            s.sendall(b"GET /metrics HTTP/1.1\r\nHost: x\r\n")
            s.setblocking(False)
            socks.append(s)
        except OSError:
            refused += 1
    print("ready", flush=True)
    sel = selectors.DefaultSelector()
    for s in socks:
        sel.register(s, selectors.EVENT_READ)
    opened = time.monotonic()
    closed_after: list[float] = []
    live = set(socks)
    end = opened + duration
    next_trickle = opened + 1.0
    while time.monotonic() < end and live:
        for key, _ in sel.select(timeout=0.2):
            s = key.fileobj
            try:
                data = s.recv(4096)  # type: ignore[union-attr]
            except (ssl.SSLWantReadError, BlockingIOError):
                continue
            except OSError:
                data = b""
            if not data or b"HTTP/1.1" in data:
                sel.unregister(s)
                live.discard(s)  # type: ignore[arg-type]
                closed_after.append(time.monotonic() - opened)
        if time.monotonic() >= next_trickle:
            next_trickle += 1.0
            for s in list(live):
                try:
                    s.send(b"X")
                except (ssl.SSLWantWriteError, BlockingIOError):
                    pass
                except OSError:
                    sel.unregister(s)
                    live.discard(s)
                    closed_after.append(time.monotonic() - opened)
    for s in socks:
        s.close()
    return {
        "opened": len(socks),
        "refused": refused,
        "closed_by_server": len(closed_after),
        "last_closed_after_s": max(closed_after, default=None),
    }


def guess(host: str, port: int, threads: int, tls: bool, duration: float, user: str) -> dict:
    statuses: dict[int, int] = {}
    lock = threading.Lock()
    end = time.monotonic() + duration
    bad = "Basic " + base64.b64encode(f"{user}:wrong-password".encode()).decode()

    def worker() -> None:
        conn = None
        while time.monotonic() < end:
            try:
                if conn is None:
                    conn = (
                        http.client.HTTPSConnection(host, port, timeout=10, context=_client_tls())
                        if tls
                        else http.client.HTTPConnection(host, port, timeout=10)
                    )
                conn.request("GET", "/metrics", headers={"Authorization": bad})
                resp = conn.getresponse()
                resp.read()
                status = resp.status
                if resp.getheader("Connection", "").lower() == "close":
                    conn.close()
                    conn = None
            except OSError:
                status = 0
                conn = None
            with lock:
                statuses[status] = statuses.get(status, 0) + 1

    pool = [threading.Thread(target=worker, daemon=True) for _ in range(threads)]
    for t in pool:
        t.start()
    print("ready", flush=True)
    for t in pool:
        t.join(duration + 15)
    return {"statuses": {str(k): v for k, v in sorted(statuses.items())}}


def main() -> int:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["slow", "guess"])
    p.add_argument("host")
    p.add_argument("port", type=int)
    p.add_argument("--n", type=int, default=2000)
    p.add_argument("--threads", type=int, default=64)
    p.add_argument("--tls", action="store_true")
    p.add_argument("--user", default="prometheus")
    p.add_argument("--duration", type=float, default=10.0)
    a = p.parse_args()
    if a.host not in LOOPBACK:
        print("loopback only", file=sys.stderr)
        return 2
    duration = min(a.duration, 60.0)
    if a.mode == "slow":
        out = slow(a.host, a.port, a.n, a.tls, duration)
    else:
        out = guess(a.host, a.port, a.threads, a.tls, duration, a.user)
    print(json.dumps(out), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
