"""The HTTP API's JSON answers as samples and series: two decoders, one result.

A fleet's answers are large and regular: the live read of a 10,000-job cycle is about 11 MB
of JSON in 60,000 series. msgspec decodes a success answer against typed structs straight
into objects, checking as it goes that every label is a string and that the answer has the
shape its query asks for, in about a third of the time of ``json.loads`` followed by checks
item by item (``bench/prom_decode.py``). It refuses anything else: an error answer, a label that
is not a string, a lone surrogate or bytes that are not UTF-8, a histogram sample, a missing
or mistyped field. Such an answer is decoded again by the standard library, checked item by
item, which decides what it means: the error kind, the series left out for their labels
(``bad_labels``), the malformed sample. Both decoders give the same :class:`Answer`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar

import msgspec

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


@dataclass(slots=True)
class Sample:
    labels: dict[str, str]
    value: float
    timestamp: float


@dataclass(slots=True)
class Series:
    labels: dict[str, str]
    points: tuple[tuple[float, float], ...]  # (timestamp, value)


T = TypeVar("T", Sample, Series)


@dataclass(frozen=True)
class Answer:
    """A success answer: its samples (an instant query) or series (a range), how many
    series it held, how many were left out for their labels, and its warnings."""

    samples: list[Sample]
    series: list[Series]
    held: int
    bad_labels: int
    warnings: Any = None


# -- the typed decoder ------------------------------------------------------------------
# gc=False: the structs hold only strings, floats and dicts of strings, which cannot form
# reference cycles, so the collector need not track them.


class _Instant(msgspec.Struct, gc=False):
    metric: dict[str, str]
    value: tuple[float, str]


class _Range(msgspec.Struct, gc=False):
    metric: dict[str, str]
    values: list[tuple[float, str]]


class _Vector(msgspec.Struct, tag_field="resultType", tag="vector", gc=False):
    result: list[_Instant]


class _Scalar(msgspec.Struct, tag_field="resultType", tag="scalar", gc=False):
    result: tuple[float, str]


class _Matrix(msgspec.Struct, tag_field="resultType", tag="matrix", gc=False):
    result: list[_Range]


class _InstantBody(msgspec.Struct, gc=False):
    status: Literal["success"]
    data: _Vector | _Scalar
    warnings: list[str] | None = None


class _RangeBody(msgspec.Struct, gc=False):
    status: Literal["success"]
    data: _Matrix
    warnings: list[str] | None = None


_DECODERS = {
    "vector": msgspec.json.Decoder(_InstantBody),
    "matrix": msgspec.json.Decoder(_RangeBody),
}


def _bad_value(item: Any) -> PromError:
    return PromError("bad_response", f"malformed sample: {item!r:.200}")


def _typed(raw: bytes, expect: str) -> Answer | None:
    """The answer, or None when the typed decoder refuses it (or a value is not a number)."""
    try:
        body = _DECODERS[expect].decode(raw)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    data = body.data
    try:
        if isinstance(data, _Scalar):
            ts, v = data.result
            return Answer([Sample({}, float(v), ts)], [], 1, 0, body.warnings)
        if isinstance(data, _Vector):
            items = data.result
            samples = [Sample(i.metric, float(i.value[1]), i.value[0]) for i in items]
            return Answer(samples, [], len(items), 0, body.warnings)
        series = [
            Series(r.metric, tuple([(t, float(v)) for t, v in r.values])) for r in data.result
        ]
    except ValueError:
        return None  # a value that is not a number: the checked decoder says which
    return Answer([], series, len(series), 0, body.warnings)


# -- the checked decoder ----------------------------------------------------------------

_STR = {str}


def _labels(raw: Any) -> dict[str, str] | None:
    """The series' labels, or None when one is not a string that UTF-8 can encode."""
    if not isinstance(raw, dict):
        return None
    if not set(map(type, raw.values())) <= _STR:  # JSON object keys are strings already
        return None
    for k, v in raw.items():
        try:
            k.encode()
            v.encode()
        except UnicodeEncodeError:
            return None
    return raw


def _float(v: Any) -> float:
    try:
        return float(v)
    except (TypeError, ValueError) as err:
        raise PromError("bad_response", f"not a number: {v!r}") from err


def _body(raw: bytes, status: int, url: str) -> dict:
    """A success answer's ``data``; the error it says otherwise, as a :class:`PromError`."""
    try:
        body = json.loads(raw)
    except (ValueError, RecursionError):
        raise PromError("bad_response", f"{url}: HTTP {status}, not JSON") from None
    if not isinstance(body, dict):
        raise PromError("bad_response", f"{url}: JSON is not an object")
    if body.get("status") != "success":
        error = str(body.get("error", status))
        kind = "query_error" if status in (400, 422) else "http_status"
        if LIMIT_ERROR.search(error):
            kind = "limit"
        raise PromError(kind, f"{url}: {body.get('errorType', '')} {error}"[:1000])
    data = body.get("data")
    if not isinstance(data, dict) or "resultType" not in data:
        raise PromError("bad_response", f"{url}: no data.result")
    if not isinstance(data.get("result"), list):
        raise PromError("bad_response", f"{url}: no data.result")
    data["warnings"] = body.get("warnings")
    return data


def _sample(labels: dict[str, str], item: dict) -> Sample:
    ts, v = item["value"]
    return Sample(labels, float(v), float(ts))


def _series(labels: dict[str, str], item: dict) -> Series:
    return Series(labels, tuple([(float(t), float(v)) for t, v in item["values"]]))


def _checked_items(
    data: dict, kind: str, make: Callable[[dict[str, str], dict], T]
) -> tuple[list[T], int]:
    """The items of a ``kind`` answer made by ``make``, and how many had bad labels."""
    if data["resultType"] != kind:
        raise PromError("bad_response", f"expected a {kind}, got {data['resultType']}")
    out, bad = [], 0
    for item in data["result"]:
        labels = _labels(item.get("metric") if isinstance(item, dict) else None)
        if labels is None:
            bad += 1
            continue
        try:
            out.append(make(labels, item))
        except (KeyError, TypeError, ValueError) as err:
            raise _bad_value(item) from err
    return out, bad


def _checked_instant(data: dict) -> Answer:
    if data["resultType"] == "scalar":
        ts, v = data["result"]
        return Answer([Sample({}, _float(v), _float(ts))], [], 1, 0, data["warnings"])
    out, bad = _checked_items(data, "vector", _sample)
    return Answer(out, [], len(data["result"]), bad, data["warnings"])


def _checked_range(data: dict) -> Answer:
    out, bad = _checked_items(data, "matrix", _series)
    return Answer([], out, len(data["result"]), bad, data["warnings"])


def decode(raw: bytes, expect: str, status: int = 200, url: str = "") -> Answer:
    """An answer to an instant (``expect="vector"``; a scalar is taken too) or a range
    (``"matrix"``) query; a :class:`PromError` for an error answer or a malformed one."""
    fast = _typed(raw, expect)
    if fast is not None:
        return fast
    data = _body(raw, status, url)
    return _checked_instant(data) if expect == "vector" else _checked_range(data)
