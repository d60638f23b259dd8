"""The HTTP server both daemons share: ``/metrics``, ``/healthz``, a landing page and a JSON
API under ``/api/``, with TLS and basic auth, holding up under floods of clients.

An asyncio event loop in one thread owns every connection (a connection costs a few
kilobytes, not a thread); ``http1.py`` reads each request whole under its deadline. Answers
are computed off the loop in bounded lanes of threads:

- *scrape*: the telemetry path, ``/healthz`` and ``/``, two threads of their own, so a
  flood of API requests or of password guesses cannot delay a scrape;
- *api*: ``ServerLimits.workers`` threads with a bounded queue (503 past it);
- *auth*: bcrypt, ``auth_concurrency`` threads behind :class:`~joulecast.serving.auth.Throttle`
  (429 past it). Pairs verified before are let in on the loop, without bcrypt.

Past ``max_connections`` the connection that has been idle or reading its request longest
is closed to make room, so slow clients can hold neither a slot nor a scrape. Every answer
is JSON (but ``/metrics`` and the landing page); an unexpected error is a 500 without
traceback. :meth:`ServiceServer.reload` swaps TLS and users for the next connections.
"""

from __future__ import annotations

import asyncio
import json
import logging
import socket
import ssl
import threading
from asyncio import sslproto
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from joulecast.serving.auth import Attempt, BasicAuth, Throttle
from joulecast.serving.http1 import (
    Answer,
    Connection,
    Refusal,
    Request,
    error_answer,
    json_answer,
)
from joulecast.serving.limits import ServerLimits

log = logging.getLogger("joulecast.http")

#: (method, path, headers, body) -> (status, JSON body, route label for accounting)
ApiHandler = Callable[[str, str, Mapping[str, str], bytes], tuple[int, dict[str, Any], str]]

#: asyncio gives every TLS connection a 256 KiB read buffer (``SSLProtocol.max_size``): 256 MiB
#: for 1,024 parked connections. Two TLS records' worth serves requests of a few KiB as well.
TLS_READ_BUFFER = 32 * 1024
if getattr(sslproto.SSLProtocol, "max_size", 0) > TLS_READ_BUFFER:
    sslproto.SSLProtocol.max_size = TLS_READ_BUFFER

UNAUTHORIZED = json_answer(
    401,
    {"error": "missing or wrong basic auth credentials"},
    (("WWW-Authenticate", 'Basic realm="joulecast"'),),
)


@dataclass
class ServerStats:
    """What the server counts about itself (read by ``daemon.ServerCollector``)."""

    open_connections: int = 0
    closed: dict[str, int] = field(default_factory=dict)  # reason -> count
    auth: dict[str, int] = field(default_factory=dict)  # ok, refused, throttled, cached
    busy: int = 0  # API requests answered 503 for want of a worker

    def count(self, table: dict[str, int], key: str) -> None:
        table[key] = table.get(key, 0) + 1


class _Lane:
    """A fixed pool of threads and a bounded queue in front of it."""

    def __init__(self, name: str, threads: int, queue: int) -> None:
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix=name)
        self._cap = threads + queue
        self._in = 0

    async def run(self, fn: Callable[..., Any], *args: Any) -> Any:
        if self._in >= self._cap:
            raise Refusal(503, "the server is busy; retry shortly")
        self._in += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, fn, *args)
        finally:
            self._in -= 1

    def close(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


@dataclass
class _Slot:
    conn: Connection
    since: float
    busy: bool = False  # a handler runs or an answer is being written


def _listen(address: tuple[str, int]) -> socket.socket:
    host, port = address
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        sock = socket.create_server((host, port), family=family, backlog=1024)
    except OSError as err:  # e.g. EADDRINUSE: say which address
        raise OSError(
            err.errno, f"cannot listen on {host or '0.0.0.0'}:{port}: {err.strerror}"
        ) from None
    sock.setblocking(False)
    return sock


class ServiceServer:
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
        auth: BasicAuth | None = None,
        api_bearer: bool = False,
        limits: ServerLimits | None = None,
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
        self.limits = limits or ServerLimits()
        self.stats = ServerStats()
        self._sock = _listen(address)
        self.server_address = self._sock.getsockname()[:2]
        self._slots: dict[int, _Slot] = {}
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stopped: asyncio.Event | None = None
        self._thread: threading.Thread | None = None
        lim = self.limits
        # every connection has at most one request in flight: max_connections bounds this queue
        self._scrape = _Lane("joulecast-scrape", lim.scrape_workers, lim.max_connections)
        self._api = _Lane("joulecast-api", lim.workers, lim.workers * lim.queue_per_worker)
        self._bcrypt = ThreadPoolExecutor(lim.auth_concurrency, thread_name_prefix="joulecast-auth")
        self._throttle = Throttle(
            concurrency=lim.auth_concurrency,
            rate_per_client=lim.auth_rate_per_client,
            rate_total=lim.auth_rate_total,
        )

    @property
    def scheme(self) -> str:
        return "https" if self.tls is not None else "http"

    def reload(self, tls: ssl.SSLContext | None, auth: BasicAuth | None) -> None:
        """New TLS context and users for connections and requests from now on."""
        if (tls is None) != (self.tls is None):
            log.warning(
                "turning TLS on or off takes a restart; keeping it %s",
                "on" if self.tls is not None else "off",
            )
        else:
            self.tls = tls
        self.auth = auth

    # -- lifecycle ------------------------------------------------------------------------

    def serve_in_thread(self, name: str = "joulecast-http") -> threading.Thread:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), name=name, daemon=True)
        self._thread.start()
        ready.wait(10)
        return self._thread

    def _run(self, ready: threading.Event) -> None:
        asyncio.run(self._serve(ready))

    async def _serve(self, ready: threading.Event) -> None:
        self._loop = asyncio.get_running_loop()
        self._stopped = asyncio.Event()
        server = await asyncio.start_server(
            self._connection, sock=self._sock, limit=self.limits.max_header_bytes
        )
        ready.set()
        async with server:
            await self._stopped.wait()
            server.close()
            for slot in list(self._slots.values()):
                slot.conn.writer.transport.abort()

    def shutdown(self) -> None:
        if self._loop is not None and self._stopped is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._stopped.set)
        if self._thread is not None:
            self._thread.join(5)
        for lane in (self._scrape, self._api):
            lane.close()
        self._bcrypt.shutdown(wait=False, cancel_futures=True)

    def server_close(self) -> None:
        self._sock.close()

    # -- connections ----------------------------------------------------------------------

    def _make_room(self) -> bool:
        """Close the connection idle or reading longest; False when every one is busy."""
        idle = [(s.since, k) for k, s in self._slots.items() if not s.busy]
        if not idle:
            return False
        _, key = min(idle)
        self._slots[key].conn.writer.transport.abort()
        self.stats.count(self.stats.closed, "evicted")
        return True

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername") or ("", 0)
        if len(self._slots) >= self.limits.max_connections and not self._make_room():
            self.stats.count(self.stats.closed, "limit")
            writer.transport.abort()
            return
        conn = Connection(reader, writer, self.limits, str(peer[0]))
        key = id(conn)
        loop = asyncio.get_running_loop()
        self._slots[key] = slot = _Slot(conn, loop.time())
        self.stats.open_connections = len(self._slots)
        try:
            if self.tls is not None and not await self._handshake(conn, self.tls):
                return
            await self._cycle(conn, slot)
        except (ConnectionError, OSError, asyncio.TimeoutError, asyncio.IncompleteReadError):
            pass
        except asyncio.CancelledError:  # the server is shutting down
            pass
        except Exception:  # never let one connection take the loop down
            log.exception("connection from %s failed", conn.client)
        finally:
            self._slots.pop(key, None)
            self.stats.open_connections = len(self._slots)
            conn.writer.transport.abort()

    async def _handshake(self, conn: Connection, ctx: ssl.SSLContext) -> bool:
        timeout = self.limits.read_timeout_s
        writer = conn.writer
        # no byte of the ClientHello may reach the plain reader: stop reading before any await
        writer.transport.pause_reading()
        try:
            if hasattr(writer, "start_tls"):  # Python >= 3.11
                await writer.start_tls(ctx, ssl_handshake_timeout=timeout)
            else:
                loop = asyncio.get_running_loop()
                protocol = writer.transport.get_protocol()
                transport = await loop.start_tls(
                    writer.transport,
                    protocol,
                    ctx,
                    server_side=True,
                    ssl_handshake_timeout=timeout,
                )
                conn.writer = asyncio.StreamWriter(transport, protocol, conn.reader, loop)
        except (ssl.SSLError, OSError, asyncio.TimeoutError, ConnectionError) as err:
            log.debug("TLS handshake with %s failed: %s", conn.client, err)
            self.stats.count(self.stats.closed, "tls")
            return False
        return True

    async def _cycle(self, conn: Connection, slot: _Slot) -> None:
        loop = asyncio.get_running_loop()
        while True:
            slot.since = loop.time()
            try:
                request = await conn.next_request()
            except Refusal as refusal:
                if refusal.status == 408:
                    self.stats.count(self.stats.closed, "timeout")
                if conn.head is not None and conn.head[1].startswith("/api/"):
                    self._observe(conn.head[0], "other", refusal.status)
                slot.busy = True
                await conn.send(error_answer(refusal.status, refusal.message, close=True), None)
                return
            if request is None:
                return
            slot.busy = True
            answer = await self._answer(request)
            if answer.status in (401, 429) and self.limits.auth_failure_delay_s > 0:
                # a refused guess waits for its answer: a guessing client gets one try a
                # second a connection; the waiting connection may be closed to make room
                slot.busy = False
                await asyncio.sleep(self.limits.auth_failure_delay_s)
                slot.busy = True
            if not await conn.send(answer, request):
                return
            slot.busy = False

    # -- answers --------------------------------------------------------------------------

    async def _answer(self, request: Request) -> Answer:
        try:
            refused = await self._authorize(request)
            if refused is not None:
                return refused
            return await self._route(request)
        except Refusal as refusal:
            if refusal.status == 503:
                self.stats.busy += 1
            return error_answer(refusal.status, refusal.message)
        except Exception:  # never a crash, never a traceback to the client: log it, 500
            log.exception("request %s %s failed", request.method, request.target[:200])
            return error_answer(500, "internal error", close=True)

    async def _authorize(self, request: Request) -> Answer | None:
        auth = self.auth
        if auth is None:
            return None
        given = request.headers.get("authorization")
        if (
            self.api_bearer
            and request.path.startswith("/api/")
            and (given or "")[:7].lower() == "bearer "
        ):
            return None  # the API checks its token itself
        verdict = auth.assess(given)
        if verdict is True:
            self.stats.count(self.stats.auth, "cached")
            return None
        if verdict is False:
            self.stats.count(self.stats.auth, "refused")
            return UNAUTHORIZED
        return await self._verify(auth, verdict, request.client)

    async def _verify(self, auth: BasicAuth, attempt: Attempt, client: str) -> Answer | None:
        if not self._throttle.admit(client):
            self.stats.count(self.stats.auth, "throttled")
            return json_answer(
                429, {"error": "too many password checks; retry later"}, (("Retry-After", "1"),)
            )
        try:
            ok = await asyncio.get_running_loop().run_in_executor(
                self._bcrypt, auth.verify, attempt
            )
        finally:
            self._throttle.done()
        self.stats.count(self.stats.auth, "ok" if ok else "refused")
        return None if ok else UNAUTHORIZED

    async def _route(self, request: Request) -> Answer:
        path, method = request.path, request.method
        if path.startswith("/api/"):
            return await self._call_api(request)
        if method not in ("GET", "HEAD"):
            return error_answer(405, f"method {method[:20]!r} is not allowed")
        if path == self.telemetry_path:
            body, content_type = await self._scrape.run(
                self.metrics, request.headers.get("accept", "")
            )
            return Answer(200, body, content_type)
        if path == "/healthz":
            ok, detail = await self._scrape.run(self.health)
            return json_answer(200 if ok else 503, detail)
        if path == "/" and self.landing is not None:
            return Answer(200, self.landing.encode(), "text/html; charset=utf-8")
        return error_answer(404, "not found")

    async def _call_api(self, request: Request) -> Answer:
        if self.api is None:
            self._observe(request.method, "other", 404)
            return error_answer(404, self.no_api_message)
        status, body, route = await self._api.run(
            self.api, request.method, request.target, request.headers, request.body
        )
        self._observe(request.method, route, status)
        return Answer(status, json.dumps(body).encode())

    def _observe(self, method: str, route: str, status: int) -> None:
        if self.observe is not None:
            self.observe(method, route, status)
