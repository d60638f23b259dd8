"""Basic auth against bcrypt hashes that a flood of guesses can neither starve nor probe.

- A verified (user, password) pair is remembered as a keyed digest, so a scraper pays
  bcrypt once, not at every scrape; the memory is bounded.
- bcrypt runs for unknown users too, against a decoy hash of the same cost, so the time to
  refuse does not say whether a user exists.
- Passwords are cut to bcrypt's 72 bytes before checking, as Go's ``bcrypt`` (and so the
  exporter-toolkit of Prometheus exporters) does, instead of refusing the user.
- How many checks run at once, and how many each client address and all clients may
  start per second, is bounded by :class:`Throttle`; the server answers 429 past it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass

BCRYPT_MAX_BYTES = 72
CACHE_SIZE = 1024


@dataclass(frozen=True)
class Attempt:
    """A well-formed ``Authorization: Basic`` that only bcrypt can settle."""

    key: bytes
    password: bytes
    hashed: bytes


def parse_basic(header: str | None) -> tuple[str, str] | None:
    """(user, password) of an ``Authorization`` header; the scheme is case-insensitive."""
    if not header:
        return None
    scheme, _, encoded = header.strip().partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(encoded.strip(), validate=True).decode()
    except (binascii.Error, UnicodeDecodeError, ValueError):
        return None
    user, sep, password = decoded.partition(":")
    return (user, password) if sep else None


def _cost(hashed: bytes) -> int:
    try:
        return int(hashed.split(b"$")[2])
    except (IndexError, ValueError):
        return 12


class BasicAuth:
    def __init__(self, users: Mapping[str, str]) -> None:
        import bcrypt  # only with basic_auth_users configured

        self._bcrypt = bcrypt
        self._users = {u: h.encode() for u, h in users.items()}
        cost = max((_cost(h) for h in self._users.values()), default=12)
        self._decoy = bcrypt.hashpw(secrets.token_bytes(16), bcrypt.gensalt(rounds=cost))
        self._salt = secrets.token_bytes(32)
        self._ok: OrderedDict[bytes, None] = OrderedDict()
        self._lock = threading.Lock()

    def assess(self, header: str | None) -> bool | Attempt:
        """True for a pair verified before, False for a header that is not basic auth,
        else the :class:`Attempt` to hand to :meth:`verify`."""
        pair = parse_basic(header)
        if pair is None:
            return False
        user, password = pair
        key = hmac.new(self._salt, f"{user}\x00{password}".encode(), hashlib.sha256).digest()
        with self._lock:
            if key in self._ok:
                self._ok.move_to_end(key)
                return True
        hashed = self._users.get(user, self._decoy)
        return Attempt(key, password.encode()[:BCRYPT_MAX_BYTES], hashed)

    def verify(self, attempt: Attempt) -> bool:
        """bcrypt itself (blocking, ~0.3 s at cost 12): known and unknown users alike."""
        try:
            ok = self._bcrypt.checkpw(attempt.password, attempt.hashed)
        except ValueError:  # a malformed hash in the file
            ok = False
        ok = ok and attempt.hashed is not self._decoy
        if ok:
            with self._lock:
                self._ok[attempt.key] = None
                while len(self._ok) > CACHE_SIZE:
                    self._ok.popitem(last=False)
        return ok

    def check(self, header: str | None) -> bool:
        """Both steps at once, for callers without a throttle (tests, tools)."""
        verdict = self.assess(header)
        return verdict if isinstance(verdict, bool) else self.verify(verdict)


class _Bucket:
    __slots__ = ("tokens", "at")

    def __init__(self, tokens: float, at: float) -> None:
        self.tokens = tokens
        self.at = at


class Throttle:
    """Token buckets per client address and for all, plus a cap on checks in flight.
    Called from the event loop's thread only; the lock keeps it safe elsewhere too."""

    MAX_CLIENTS = 4096

    def __init__(
        self,
        *,
        concurrency: int,
        rate_per_client: float,
        rate_total: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.max_in_flight = concurrency * 4
        self._rate_client = rate_per_client
        self._rate_total = rate_total
        self._clock = clock
        self._clients: OrderedDict[str, _Bucket] = OrderedDict()
        self._total = _Bucket(rate_total * 4, clock())
        self._in_flight = 0
        self._lock = threading.Lock()

    def _take(self, bucket: _Bucket, rate: float, now: float) -> bool:
        bucket.tokens = min(rate * 4, bucket.tokens + (now - bucket.at) * rate)
        bucket.at = now
        if bucket.tokens < 1:
            return False
        bucket.tokens -= 1
        return True

    def admit(self, client: str) -> bool:
        now = self._clock()
        with self._lock:
            if self._in_flight >= self.max_in_flight:
                return False
            bucket = self._clients.pop(client, None) or _Bucket(self._rate_client * 4, now)
            self._clients[client] = bucket
            while len(self._clients) > self.MAX_CLIENTS:
                self._clients.popitem(last=False)
            # the client's own bucket first: one flooding address does not drain the total
            if not self._take(bucket, self._rate_client, now):
                return False
            if not self._take(self._total, self._rate_total, now):
                bucket.tokens += 1
                return False
            self._in_flight += 1
            return True

    def done(self) -> None:
        with self._lock:
            self._in_flight -= 1
