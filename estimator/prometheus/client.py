"""The Prometheus HTTP API client: the only module of the estimator that speaks HTTP/JSON.

Works against anything that serves ``/api/v1/query`` and ``/api/v1/query_range``:
Prometheus, VictoriaMetrics, Thanos Query, Mimir/Cortex (with a tenant header).
Timeouts, retries with exponential backoff on transport errors and 5xx/429, optional basic
auth, bearer token and extra headers. Every failure is a :class:`PromError` whose ``kind``
is a bounded label value.

An answer is read under a deadline for the whole answer (``timeout_s``: a server that
trickles bytes cannot hold a cycle) and a cap on its size once decompressed
(``max_answer_bytes``), then decoded by ``decode.py``. A series whose labels are not all
strings that UTF-8 can carry (a number, an object, a lone surrogate) is left out and
counted in ``bad_labels``; it never reaches the collectors.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import requests

from joulecast.estimator.prometheus.decode import (
    LIMIT_ERROR,
    Answer,
    PromError,
    Sample,
    Series,
    decode,
)

log = logging.getLogger("joulecast.estimator")

__all__ = ["LIMIT_ERROR", "PromClient", "PromConfig", "PromError", "Sample", "Series"]


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

    def _get(self, path: str, params: Mapping[str, str], expect: str) -> Answer:
        """The decoded answer (``expect``: ``"vector"`` or ``"matrix"``, decode.py)."""
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
            answer = decode(raw, expect, resp.status_code, url)
            self._warnings(answer.warnings, url)
            self.series += answer.held
            self.bad_labels += answer.bad_labels
            return answer
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
        """An instant vector (or scalar) query."""
        params = {"query": expr}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params, "vector").samples

    def query_raw(self, selector: str, window_s: float, at: float | None = None) -> list[Series]:
        """Raw samples of ``selector`` over the last ``window_s`` (an instant range query)."""
        window = max(1, int(math.ceil(window_s)))
        params = {"query": f"{selector}[{window}s]"}
        if at is not None:
            params["time"] = f"{at:.3f}"
        return self._get("/api/v1/query", params, "matrix").series

    def query_range(self, expr: str, start: float, end: float, step_s: float) -> list[Series]:
        params = {
            "query": expr,
            "start": f"{start:.3f}",
            "end": f"{end:.3f}",
            "step": f"{step_s:g}",
        }
        return self._get("/api/v1/query_range", params, "matrix").series
