"""One HTTP/1.1 connection's cycle: read a request whole within its deadline, write its answer.

Parsing and framing are h11's (python-hyper's HTTP/1.1 state machine: request lines,
header syntax, ``Content-Length`` validation, keep-alive and pipelining rules), so none of
it is hand-written here. On top of it: every request's body is read whole before anything is
answered; ``Transfer-Encoding`` is refused (411), a body past the cap is 413, a request not
whole within ``read_timeout_s`` of its first byte is 408, a version other than 1.x is 505,
anything h11 cannot parse is 400; each of these closes the connection, so no byte of a body
is ever read as the next request.
"""

from __future__ import annotations

import asyncio
import gzip
import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from http import HTTPStatus

import h11

from joulecast.serving.limits import ServerLimits

GZIP_MIN_BYTES = 1024
READ_CHUNK = 64 * 1024


class Headers(Mapping[str, str]):
    """Request headers, looked up case-insensitively; the first of repeated names wins."""

    def __init__(self, pairs: list[tuple[bytes, bytes]]) -> None:
        self._d: dict[str, str] = {}
        for name, value in pairs:
            self._d.setdefault(name.decode("latin-1").lower(), value.decode("latin-1"))

    def __getitem__(self, name: str) -> str:
        return self._d[name.lower()]

    def __iter__(self) -> Iterator[str]:
        return iter(self._d)

    def __len__(self) -> int:
        return len(self._d)

    def __contains__(self, name: object) -> bool:
        return isinstance(name, str) and name.lower() in self._d


@dataclass(frozen=True)
class Request:
    method: str
    target: str
    headers: Headers
    body: bytes
    client: str

    @property
    def path(self) -> str:
        return self.target.split("?", 1)[0]


@dataclass(frozen=True)
class Answer:
    status: int
    body: bytes
    content_type: str = "application/json"
    headers: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    close: bool = False


class Refusal(Exception):
    """A request answered with a 4xx/5xx before it reached a handler; closes the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def json_answer(
    status: int, body: object, headers: tuple[tuple[str, str], ...] = (), close: bool = False
) -> Answer:
    return Answer(status, json.dumps(body).encode(), "application/json", headers, close)


def error_answer(status: int, message: str | None = None, close: bool = False) -> Answer:
    return json_answer(status, {"error": message or HTTPStatus(status).phrase}, close=close)


def accepts_gzip(header: str) -> bool:
    """Whether ``Accept-Encoding`` allows gzip: named (or ``*``) with a q-value above 0."""
    star: float | None = None
    for item in header.split(","):
        coding, *params = (p.strip() for p in item.split(";"))
        q = 1.0
        for param in params:
            name, _, value = param.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        coding = coding.lower()
        if coding in ("gzip", "x-gzip"):
            return q > 0
        if coding == "*":
            star = q
    return star is not None and star > 0


class Connection:
    """A client connection: requests in, answers out, under the server's limits."""

    def __init__(
        self,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        limits: ServerLimits,
        client: str,
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.limits = limits
        self.client = client
        self._h = h11.Connection(h11.SERVER, max_incomplete_event_size=limits.max_header_bytes)
        self.reading = False  # a request has begun and is not yet whole
        self.head: tuple[str, str] | None = None  # method and target of the request read last

    async def _receive(self, deadline: float) -> bytes | None:
        """The next bytes (b"" at the client's end of stream), or None at the deadline.
        A timer that ends the stream stands in for a timeout task per read, which would
        cost a task for every byte a slow client trickles."""
        loop = asyncio.get_running_loop()
        expired = False

        def expire() -> None:
            nonlocal expired
            expired = True
            self.reader.feed_eof()

        timer = loop.call_at(deadline, expire)
        try:
            data = await self.reader.read(READ_CHUNK)
        finally:
            timer.cancel()
        return None if expired and not data else data

    async def next_request(self) -> Request | None:
        """The next whole request, None when the client closed or idled out (nothing to
        answer), or :class:`Refusal`."""
        loop = asyncio.get_running_loop()
        deadline: float | None = None
        if self._h.trailing_data[0]:  # a pipelined request is already here
            deadline = loop.time() + self.limits.read_timeout_s
        head: h11.Request | None = None
        body = bytearray()
        while True:
            try:
                event = self._h.next_event()
            except h11.RemoteProtocolError as err:
                if head is not None:
                    raise Refusal(400, "body shorter than its Content-Length") from None
                raise Refusal(err.error_status_hint, f"malformed request: {err}") from None
            if event is h11.NEED_DATA:
                if deadline is None:
                    data = await self._receive(loop.time() + self.limits.idle_timeout_s)
                    if not data and self._h.their_state is h11.IDLE:
                        return None
                    deadline = loop.time() + self.limits.read_timeout_s
                    self.reading = True
                else:
                    data = await self._receive(deadline)
                    if data is None:
                        raise Refusal(
                            408,
                            f"the request was not whole within {self.limits.read_timeout_s:g} s",
                        )
                self._h.receive_data(data)
            elif isinstance(event, h11.Request):
                head = event
                self.head = (
                    event.method.decode("ascii", "replace"),
                    event.target.decode("latin-1"),
                )
                self._check_head(event)
            elif isinstance(event, h11.Data):
                body += event.data
            elif isinstance(event, h11.EndOfMessage):
                assert head is not None
                self.reading = False
                return Request(
                    head.method.decode("ascii", "replace"),
                    head.target.decode("latin-1"),
                    Headers(list(head.headers)),
                    bytes(body),
                    self.client,
                )
            else:  # ConnectionClosed
                return None

    def _check_head(self, head: h11.Request) -> None:
        if head.http_version not in (b"1.0", b"1.1"):
            raise Refusal(505, f"HTTP/{head.http_version.decode()} is not supported; use 1.1")
        size = len(head.target) + sum(len(k) + len(v) + 4 for k, v in head.headers.raw_items())
        if size > self.limits.max_header_bytes:
            raise Refusal(431, f"request head larger than {self.limits.max_header_bytes} bytes")
        headers = Headers(list(head.headers))
        if "transfer-encoding" in headers:
            raise Refusal(411, "Transfer-Encoding is not accepted; send Content-Length")
        length = int(headers.get("content-length", "0"))  # h11 checked it is digits
        if length > self.limits.max_body_bytes:
            raise Refusal(413, f"body larger than {self.limits.max_body_bytes} bytes")
        if self._h.they_are_waiting_for_100_continue:
            self.writer.write(self._h.send(h11.InformationalResponse(status_code=100)))

    async def send(self, answer: Answer, request: Request | None) -> bool:
        """Write the answer; whether the connection may carry another request."""
        body = answer.body
        headers = [*answer.headers, ("Content-Type", answer.content_type)]
        headers.append(("Vary", "Accept-Encoding"))
        accept = request.headers.get("accept-encoding", "") if request is not None else ""
        if len(body) >= GZIP_MIN_BYTES and accepts_gzip(accept):
            body = gzip.compress(body, compresslevel=1)
            headers.append(("Content-Encoding", "gzip"))
        headers.append(("Content-Length", str(len(body))))
        close = answer.close or request is None
        if close:
            headers.append(("Connection", "close"))
        try:
            response = h11.Response(
                status_code=answer.status, headers=headers, reason=_phrase(answer.status)
            )
            out = self._h.send(response)
            if request is not None and request.method != "HEAD":
                out += self._h.send(h11.Data(data=body))
            elif request is None:
                out += body
            out += self._h.send(h11.EndOfMessage()) if request is not None else b""
        except h11.LocalProtocolError:  # nothing more may be said on this connection
            return False
        self.writer.write(out)
        await asyncio.wait_for(self.writer.drain(), self.limits.write_timeout_s)
        if close or self._h.our_state is not h11.DONE or self._h.their_state is not h11.DONE:
            return False
        self._h.start_next_cycle()
        return True


def _phrase(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return ""
