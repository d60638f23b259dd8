"""The Prometheus HTTP API client: the only module of the estimator that speaks HTTP/JSON.

Works against anything that serves ``/api/v1/query`` and ``/api/v1/query_range``:
Prometheus, VictoriaMetrics, Thanos Query, Mimir/Cortex (with a tenant header).
Timeouts, retries with exponential backoff on transport errors and 5xx/429, optional basic
auth, bearer token and extra headers. Every failure is a :class:`PromError` whose ``kind``
is a bounded label value.

An answer is read under a deadline for the whole answer (``timeout_s``: a server that
trickles bytes cannot hold a cycle) and a cap on its size once decompressed
(``max_answer_bytes``). A series whose labels are not all strings that UTF-8 can carry (a
number, an object, a lone surrogate) is left out and counted in ``bad_labels``; it never
reaches the collectors.
"""

from __future__ import annotations

import json
import logging
import math
import re
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

log = logging.getLogger("joulecast.estimator")
#: what the stores say when a query fetches more series than they allow
LIMIT_ERROR = re.compile(
    r"maxUniqueTimeseries|max_fetched_series|max(imum)?[ _]number[ _]of[ _]series|"
    r"series limit|too many (time ?)?series|exceeds? the limit of .*series",
    re.IGNORECASE,
)


class PromError(Exception):
    """A query failed. ``kind``: unreachable, timeout, tls, http_status, bad_response,
    query_error, or limit (the store refused a query that fetches too many series:
    VictoriaMetrics' ``-search.maxUniqueTimeseries``, Mimir's ``max_fetched_series_per_query``,
    Thanos' and Cortex's series limits; the caller may split it)."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(frozen=True)
class Series:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]  # (timestamp, value)


@dataclass
class PromConfig:
    url: str
    timeout_s: float = 10.0
    retries: int = 2
    backoff_s: float = 0.5
    username: str | None = None
    password: str | None = None
    bearer_token: str | None = None
    headers: dict[str, str] = field(default_factory=dict)
    ca_file: str | None = None  # a private CA (Thanos, Mimir, VictoriaMetrics behind TLS)
    cert_file: str | None = None  # client certificate (mutual TLS)
    key_file: str | None = None
    insecure_skip_verify: bool = False
    max_answer_bytes: int = 64 * 1024 * 1024


_STR = {str}


def _labels(raw: Any, strict: bool = True) -> dict[str, str] | None:
    """The series' labels, or None when one is not a string that UTF-8 can encode. Only a
    ``strict`` check looks for lone surrogates: an answer with neither a ``\\ud`` escape
    nor an 0xED byte cannot hold one."""
    if not isinstance(raw, dict):
        return None
    if not set(map(type, raw.values())) <= _STR:  # JSON object keys are strings already
        return None
    if strict:
        for k, v in raw.items():
            try:
                k.encode()
                v.encode()
            except UnicodeEncodeError:
                return None
    return raw


def may_hold_surrogates(raw: bytes) -> bool:
    """Whether a JSON answer can decode to a lone surrogate (json.loads takes bytes with
    ``surrogatepass``)."""
    return b"\\ud" in raw or b"\\uD" in raw or b"\xed" in raw


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError) as err:
        raise PromError("bad_response", f"not a number: {v!r}") from err


class PromClient:
    def __init__(
        self,
        config: PromConfig,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.config = config
        self._session = session or requests.Session()
        self._sleep = sleep
        self.queries = 0  # queries issued by this client (for per-cycle accounting)
        self.series = 0  # series (or instant samples) its answers held
        self.bad_labels = 0  # series left out for their labels, since start
        self.partial_responses = 0  # answers with warnings (a store down behind Thanos)
        self._last_warning = ""
        self._session.headers.update(config.headers)
        if config.bearer_token:
            self._session.headers["Authorization"] = f"Bearer {config.bearer_token}"
        if config.username is not None:
            self._session.auth = (config.username, config.password or "")
        if config.insecure_skip_verify:
            self._session.verify = False
        elif config.ca_file:
            self._session.verify = config.ca_file
        if config.cert_file:
            self._session.cert = (
                (config.cert_file, config.key_file) if config.key_file else config.cert_file
            )

    def _get(self, path: str, params: Mapping[str, str]) -> tuple[dict, bool]:
        """The answer's ``data``, and whether its labels need the strict check."""
        url = self.config.url.rstrip("/") + path
        self.queries += 1
        last: PromError | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
            deadline = time.monotonic() + self.config.timeout_s
            try:
                # POST form avoids URL length limits on long PromQL; all four TSDBs accept it.
                resp = self._session.post(
                    url, data=dict(params), timeout=self.config.timeout_s, stream=True
                )
                raw = self._read(resp, deadline, url)
            except requests.Timeout as err:
                last = PromError("timeout", f"{url}: timed out after {self.config.timeout_s}s")
                last.__cause__ = err
                continue
            except requests.exceptions.SSLError as err:
                raise PromError("tls", f"{url}: TLS: {err}") from None
            except requests.RequestException as err:
                last = PromError("unreachable", f"{url}: {err.__class__.__name__}")
                continue
            except PromError as err:
                if err.kind != "timeout":
                    raise
                last = err
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                last = PromError("http_status", f"{url}: HTTP {resp.status_code}")
                continue
            try:
                body = json.loads(raw)
            except (ValueError, RecursionError):
                raise PromError(
                    "bad_response", f"{url}: HTTP {resp.status_code}, not JSON"
                ) from None
            if not isinstance(body, dict):
                raise PromError("bad_response", f"{url}: JSON is not an object")
            if body.get("status") != "success":
                error = str(body.get("error", resp.status_code))
                kind = "query_error" if resp.status_code in (400, 422) else "http_status"
                if LIMIT_ERROR.search(error):
                    kind = "limit"
                raise PromError(kind, f"{url}: {body.get('errorType', '')} {error}"[:1000])
            self._warnings(body.get("warnings"), url)
            data = body.get("data")
            if (
                not isinstance(data, dict)
                or "resultType" not in data
                or not isinstance(data.get("result"), list)
            ):
                raise PromError("bad_response", f"{url}: no data.result")
            return data, may_hold_surrogates(raw)
        assert last is not None
        raise last

    def _warnings(self, warnings: Any, url: str) -> None:
        """A partial response (Thanos with a store down, Mimir with a querier short): the
        data is used, the answer counted, the warning logged when it changes."""
        if not isinstance(warnings, list) or not warnings:
            return
        self.partial_responses += 1
        text = "; ".join(str(w) for w in warnings)[:500]
        if text != self._last_warning:
            self._last_warning = text
            log.warning("partial response from %s: %s", url, text)

    def _read(self, resp: requests.Response, deadline: float, url: str) -> bytes:
        """The whole answer body, by the deadline and within the size cap."""
        cap = self.config.max_answer_bytes
        chunks: list[bytes] = []
        size = 0
        try:
            while chunk := resp.raw.read1(256 * 1024, decode_content=True):
                size += len(chunk)
                if size > cap:
                    raise PromError("bad_response", f"{url}: answer larger than {cap} bytes")
                if time.monotonic() > deadline:
                    raise PromError(
                        "timeout", f"{url}: answer not whole within {self.config.timeout_s}s"
                    )
                chunks.append(chunk)
        except (OSError, ValueError) as err:  # urllib3's read errors, a reset
            raise requests.ConnectionError(str(err)) from err
        finally:
            resp.close()
        return b"".join(chunks)

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant vector query."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data, strict = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            self.series += 1
            ts, v = data["result"]
            return [Sample({}, _float(v), _float(ts))]
        if data["resultType"] != "vector":
            raise PromError("bad_response", f"expected a vector, got {data['resultType']}")
        self.series += len(data["result"])
        out = []
        for item in data["result"]:
            labels = _labels(item.get("metric") if isinstance(item, dict) else None, strict)
            if labels is None:
                self.bad_labels += 1
                continue
            try:
                ts, v = item["value"]
                out.append(Sample(labels, float(v), float(ts)))
            except (KeyError, TypeError, ValueError) as err:
                raise PromError("bad_response", f"malformed sample: {item!r:.200}") from err
        return out

    def query_raw(self, selector: str, window_s: float, at: float | None = None) -> list[Series]:
        """Raw samples of ``selector`` over the last ``window_s`` (an instant range query)."""
        window = max(1, int(math.ceil(window_s)))
        params = {"query": f"{selector}[{window}s]"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._matrix(*self._get("/api/v1/query", params))

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        return self._matrix(
            *self._get(
                "/api/v1/query_range",
                {
                    "query": expr,
                    "start": f"{start:.3f}",
                    "end": f"{end:.3f}",
                    "step": f"{step_s:g}",
                },
            )
        )

    def _matrix(self, data: dict, strict: bool = True) -> list[Series]:
        if data["resultType"] != "matrix":
            raise PromError("bad_response", f"expected a matrix, got {data['resultType']}")
        self.series += len(data["result"])
        out = []
        for item in data["result"]:
            labels = _labels(item.get("metric") if isinstance(item, dict) else None, strict)
            if labels is None:
                self.bad_labels += 1
                continue
            try:
                pts = tuple([(float(t), float(v)) for t, v in item["values"]])
                out.append(Series(labels, pts))
            except (KeyError, TypeError, ValueError) as err:
                raise PromError("bad_response", f"malformed series: {item!r:.200}") from err
        return out
