"""Background delivery of a job's markers: in order, retried, never blocking training.

A :class:`Sender` owns a bounded queue and one daemon thread. The training loop enqueues
(microseconds) and goes on; the thread posts each request in turn and retries it with
capped exponential backoff and jitter on connection errors, timeouts, 429, 502, 503 and
504, so markers queued while the exporter is away are delivered, in order, when it comes
back. Any other answer ends that request: 2xx delivered, 4xx refused (reported to
``on_refused``). A marker carries its own epoch-end time, so late delivery does not change
the energy it is charged.

Nothing is dropped silently: a full queue and anything still queued when :meth:`close`
gives up are counted in :attr:`undelivered`, for the job to report once.

While idle the thread can post a heartbeat every few seconds (:meth:`start_heartbeat`):
an exporter that cannot see the job's processes learns from it that the run is alive.
A beat is never retried or queued; it only says "still here".
"""

from __future__ import annotations

import collections
import json
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

RETRY_STATUS = frozenset({429, 502, 503, 504})


@dataclass(frozen=True)
class Response:
    status: int
    body: dict[str, Any]


@dataclass
class Request:
    path: str
    payload: dict[str, Any]
    what: str  # "epoch 3", "registration", "finish": for messages
    attempts: int = 0


#: (url, payload, token, timeout) -> Response; raises OSError/ValueError on transport errors
PostFn = Callable[[str, dict[str, Any], str | None, float], Response]


def http_post(url: str, payload: dict[str, Any], token: str | None, timeout: float) -> Response:
    data = json.dumps(payload).encode()
    req = urllib.request.Request(url, data=data, method="POST")
    req.add_header("Content-Type", "application/json")
    if token:
        req.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(req, timeout=timeout) as resp:
            return Response(resp.status, json.loads(resp.read() or b"{}"))
    except urllib.error.HTTPError as err:  # a 4xx/5xx answer is still an answer
        try:
            body = json.loads(err.read() or b"{}")
        except ValueError:
            body = {}
        return Response(err.code, body if isinstance(body, dict) else {})


class Sender:
    def __init__(
        self,
        url: Callable[[], str],
        *,
        token: str | None = None,
        timeout: float = 5.0,
        post: PostFn = http_post,
        max_queue: int = 10_000,
        backoff: tuple[float, float] = (0.05, 5.0),
        on_delivered: Callable[[Request, Response], Request | None] | None = None,
        on_refused: Callable[[Request, Response], None] | None = None,
        on_unreachable: Callable[[str], None] | None = None,
    ) -> None:
        self._url = url
        self.token = token
        self.timeout = timeout
        self._post = post
        self.max_queue = max_queue
        self._backoff = backoff
        self._on_delivered = on_delivered
        self._on_refused = on_refused
        self._on_unreachable = on_unreachable
        self._queue: collections.deque[Request] = collections.deque()
        self._cond = threading.Condition()
        self._busy = False
        self._closed = False
        self.lost: list[str] = []  # what the first undelivered requests were
        self._thread: threading.Thread | None = None
        self.undelivered = 0
        self.last_error: str | None = None
        self._beat: Request | None = None
        self._beat_s = 0.0
        self._next_beat = 0.0

    # -- training side -------------------------------------------------------------------
    def submit(self, request: Request, *, front: bool = False) -> bool:
        """Queue a request; False (and counted) when the queue is full or closed."""
        with self._cond:
            if self._closed or len(self._queue) >= self.max_queue:
                self.undelivered += 1
                return False
            (self._queue.appendleft if front else self._queue.append)(request)
            self._ensure_thread()
            self._cond.notify_all()
            return True

    def flush(self, timeout: float) -> bool:
        """Wait until everything queued is delivered or refused; False on timeout."""
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._cond:
            while self._queue or self._busy:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._cond.wait(min(left, 0.1))
        return True

    def close(self, timeout: float) -> int:
        """Flush for at most ``timeout`` s, then stop; returns the undelivered count
        (``lost`` names the first of them)."""
        self.flush(timeout)
        with self._cond:
            self._closed = True
            self.undelivered += len(self._queue) + (1 if self._busy else 0)
            self.lost.extend(r.what for r in list(self._queue)[:10])
            self._queue.clear()
            self._cond.notify_all()
        return self.undelivered

    def start_heartbeat(self, request: Request, interval_s: float) -> None:
        """Post ``request`` every ``interval_s`` s while nothing else is to be sent."""
        with self._cond:
            self._beat, self._beat_s = request, interval_s
            self._next_beat = time.monotonic() + interval_s
            self._ensure_thread()
            self._cond.notify_all()

    def stop_heartbeat(self) -> None:
        """No more beats (the job is ending: a beat after its finish would reopen it)."""
        with self._cond:
            self._beat = None
            self._cond.notify_all()

    # -- delivery thread -----------------------------------------------------------------
    def _ensure_thread(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(target=self._run, name="joulecast-sender", daemon=True)
            self._thread.start()

    def _next(self) -> Request | None:
        with self._cond:
            while not self._queue and not self._closed:
                if self._beat is not None:
                    left = self._next_beat - time.monotonic()
                    if left <= 0:
                        self._next_beat = time.monotonic() + self._beat_s
                        return self._beat
                    self._cond.wait(min(left, 1.0))
                else:
                    self._cond.wait(1.0)
            if self._closed:
                return None
            self._busy = True
            return self._queue[0]

    def _heartbeat(self, beat: Request) -> None:
        try:
            resp = self._post(self._url() + beat.path, beat.payload, self.token, self.timeout)
        except (OSError, ValueError):
            return  # the markers' retries report an exporter that is away
        follow = self._on_delivered(beat, resp) if self._on_delivered else None
        if follow is not None:
            self.submit(follow, front=True)

    def _done(self, request: Request) -> None:
        with self._cond:
            if self._queue and self._queue[0] is request:
                self._queue.popleft()
            self._busy = False
            self._cond.notify_all()

    def _run(self) -> None:
        delay = self._backoff[0]
        while True:
            request = self._next()
            if request is None:
                return
            if request.what == "heartbeat":
                self._heartbeat(request)
                continue
            outcome = self._attempt(request)
            if outcome == "done":
                delay = self._backoff[0]
                self._done(request)
                continue
            with self._cond:
                self._busy = False
                self._cond.notify_all()
                if outcome == "retry":
                    self._cond.wait(delay * (0.5 + random.random()))
            if outcome == "retry":
                delay = min(delay * 2, self._backoff[1])

    def _attempt(self, request: Request) -> str:
        """ "done" (delivered or refused), "retry" (after a backoff) or "again" (at once:
        a request was put before it)."""
        request.attempts += 1
        try:
            resp = self._post(self._url() + request.path, request.payload, self.token, self.timeout)
        except (OSError, ValueError) as err:  # refused, timeout, reset, bad JSON
            self._unreachable(f"{type(err).__name__}: {err}")
            return "retry"
        if resp.status in RETRY_STATUS:
            self._unreachable(f"HTTP {resp.status}: {resp.body.get('error', '')}")
            return "retry"
        follow = self._on_delivered(request, resp) if self._on_delivered else None
        if follow is not None and request.attempts <= 3:
            with self._cond:  # e.g. the exporter lost the job: register it first
                self._queue.appendleft(follow)
            return "again"
        if 200 <= resp.status < 300:
            self.last_error = None
            return "done"
        if self._on_refused is not None:
            self._on_refused(request, resp)
        return "done"

    def _unreachable(self, message: str) -> None:
        self.last_error = message
        if self._on_unreachable is not None:
            self._on_unreachable(message)
