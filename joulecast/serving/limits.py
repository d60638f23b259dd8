"""How much the HTTP server lets any client hold: connections, time, bytes and threads.

The defaults fit one node's daemon: one or two Prometheus servers, a few dozen training
processes posting markers, an operator's curl. ``docs/security.md`` explains each.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from joulecast.serving.flags import add_flag, non_negative_float, positive_float, positive_int


@dataclass(frozen=True)
class ServerLimits:
    #: open connections; past it the one idle (or reading its request) longest is closed
    max_connections: int = 1024
    #: threads that run API requests (markers, queue); scrapes have their own two
    workers: int = 8
    #: API requests waiting for a worker, per worker, before 503
    queue_per_worker: int = 8
    #: the whole request (TLS handshake, request line, headers and body), from its first byte
    read_timeout_s: float = 10.0
    #: a keep-alive connection with no request started
    idle_timeout_s: float = 120.0
    #: writing one answer
    write_timeout_s: float = 30.0
    #: request line and headers together
    max_header_bytes: int = 16 * 1024
    #: a request body
    max_body_bytes: int = 64 * 1024
    #: bcrypt verifications that may run at once (each takes ~0.3 s of a core at cost 12)
    auth_concurrency: int = 1
    #: bcrypt verifications per second one client address may start (burst: 4 times this)
    auth_rate_per_client: float = 1.0
    #: verifications per second all clients together may start
    auth_rate_total: float = 4.0
    #: seconds a refused (401) or throttled (429) request waits for its answer
    auth_failure_delay_s: float = 1.0

    @property
    def scrape_workers(self) -> int:
        return 2


def add_limit_flags(p: argparse.ArgumentParser) -> None:
    d = ServerLimits()
    add_flag(
        p,
        "--web.max-connections",
        default=d.max_connections,
        type=positive_int,
        help="Open connections at most; past it the connection idle or reading longest is "
        "closed to make room",
    )
    add_flag(
        p,
        "--web.workers",
        default=d.workers,
        type=positive_int,
        help="Threads that answer API requests (scrapes and health checks have their own)",
    )
    add_flag(
        p,
        "--web.read-timeout",
        default=d.read_timeout_s,
        type=positive_float,
        help="Seconds a client has for a whole request: TLS handshake, headers and body",
    )
    add_flag(
        p,
        "--web.idle-timeout",
        default=d.idle_timeout_s,
        type=positive_float,
        help="Seconds a keep-alive connection may wait for its next request",
    )
    add_flag(
        p,
        "--web.auth.concurrency",
        default=d.auth_concurrency,
        type=positive_int,
        help="bcrypt password checks that may run at once",
    )
    add_flag(
        p,
        "--web.auth.rate-per-client",
        default=d.auth_rate_per_client,
        type=positive_float,
        help="bcrypt password checks per second one client address may start (429 past it)",
    )
    add_flag(
        p,
        "--web.auth.rate",
        default=d.auth_rate_total,
        type=positive_float,
        help="bcrypt password checks per second all clients together may start",
    )
    add_flag(
        p,
        "--web.auth.failure-delay",
        default=d.auth_failure_delay_s,
        type=non_negative_float,
        help="Seconds a refused or throttled request waits for its 401 or 429",
    )


def server_limits(args: argparse.Namespace) -> ServerLimits:
    return ServerLimits(
        max_connections=args.web_max_connections,
        workers=args.web_workers,
        read_timeout_s=args.web_read_timeout,
        idle_timeout_s=args.web_idle_timeout,
        auth_concurrency=args.web_auth_concurrency,
        auth_rate_per_client=args.web_auth_rate_per_client,
        auth_rate_total=args.web_auth_rate,
        auth_failure_delay_s=args.web_auth_failure_delay,
    )
