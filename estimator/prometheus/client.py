"""The Prometheus HTTP API client: the only module of the estimator that speaks HTTP/JSON.

Works against anything that serves ``/api/v1/query`` and ``/api/v1/query_range``:
Prometheus, VictoriaMetrics, Thanos Query, Mimir/Cortex (with a tenant header).
Timeouts, retries with exponential backoff on transport errors and 5xx/429, optional basic
auth, bearer token and extra headers. Every failure is a :class:`PromError` whose ``kind``
is a bounded label value.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests


class PromError(Exception):
    """A query failed. ``kind``: unreachable, timeout, http_status, bad_response, query_error."""

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

    def _get(self, path: str, params: Mapping[str, str]) -> Any:
        url = self.config.url.rstrip("/") + path
        self.queries += 1
        last: PromError | None = None
        for attempt in range(self.config.retries + 1):
            if attempt:
                self._sleep(self.config.backoff_s * 2 ** (attempt - 1))
            try:
                # POST form avoids URL length limits on long PromQL; all four TSDBs accept it.
                resp = self._session.post(url, data=dict(params), timeout=self.config.timeout_s)
            except requests.Timeout as err:
                last = PromError("timeout", f"{url}: timed out after {self.config.timeout_s}s")
                last.__cause__ = err
                continue
            except requests.exceptions.SSLError as err:
                raise PromError("tls", f"{url}: TLS: {err}") from None
            except requests.RequestException as err:
                last = PromError("unreachable", f"{url}: {err.__class__.__name__}")
                continue
            if resp.status_code >= 500 or resp.status_code == 429:
                last = PromError("http_status", f"{url}: HTTP {resp.status_code}")
                continue
            try:
                body = resp.json()
            except ValueError:
                raise PromError(
                    "bad_response", f"{url}: HTTP {resp.status_code}, not JSON"
                ) from None
            if not isinstance(body, dict):
                raise PromError("bad_response", f"{url}: JSON is not an object")
            if body.get("status") != "success":
                kind = "query_error" if resp.status_code in (400, 422) else "http_status"
                raise PromError(
                    kind,
                    f"{url}: {body.get('errorType', '')} {body.get('error', resp.status_code)}",
                )
            data = body.get("data")
            if (
                not isinstance(data, dict)
                or "resultType" not in data
                or not isinstance(data.get("result"), list)
            ):
                raise PromError("bad_response", f"{url}: no data.result")
            return data
        assert last is not None
        raise last

    def query(self, expr: str, at: float | None = None) -> list[Sample]:
        """An instant vector query."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        if data["resultType"] == "scalar":
            ts, v = data["result"]
            return [Sample({}, _float(v), _float(ts))]
        if data["resultType"] != "vector":
            raise PromError("bad_response", f"expected a vector, got {data['resultType']}")
        out = []
        for item in data["result"]:
            try:
                ts, v = item["value"]
                out.append(Sample(dict(item["metric"]), _float(v), _float(ts)))
            except (KeyError, TypeError, ValueError) as err:
                raise PromError("bad_response", f"malformed sample: {item!r:.200}") from err
        return out

    def query_raw(self, selector: str, window_s: float, at: float | None = None) -> list[Series]:
        """Raw samples of ``selector`` over the last ``window_s`` (an instant range query)."""
        window = max(1, int(math.ceil(window_s)))
        params = {"query": f"{selector}[{window}s]"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        data = self._get("/api/v1/query", params)
        return self._matrix(data)

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        data = self._get(
            "/api/v1/query_range",
            {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step_s:g}"},
        )
        return self._matrix(data)

    @staticmethod
    def _matrix(data: dict) -> list[Series]:
        if data["resultType"] != "matrix":
            raise PromError("bad_response", f"expected a matrix, got {data['resultType']}")
        out = []
        for item in data["result"]:
            try:
                pts = tuple((_float(t), _float(v)) for t, v in item["values"])
                out.append(Series(dict(item["metric"]), pts))
            except (KeyError, TypeError, ValueError) as err:
                raise PromError("bad_response", f"malformed series: {item!r:.200}") from err
        return out
