"""The typed decoder and the checked one give the same answer; what the typed one refuses,
the checked one judges."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joulecast.estimator.prometheus import decode as dec
from joulecast.estimator.prometheus.decode import PromError, decode


def _checked(raw: bytes, expect: str) -> dec.Answer:
    data = dec._body(raw, 200, "")
    return dec._checked_instant(data) if expect == "vector" else dec._checked_range(data)


def _same(a: dec.Answer, b: dec.Answer) -> None:
    def norm(x: float) -> object:
        return "nan" if math.isnan(x) else x

    assert [(s.labels, norm(s.value), s.timestamp) for s in a.samples] == [
        (s.labels, norm(s.value), s.timestamp) for s in b.samples
    ]
    assert [(s.labels, [(t, norm(v)) for t, v in s.points]) for s in a.series] == [
        (s.labels, [(t, norm(v)) for t, v in s.points]) for s in b.series
    ]
    assert (a.held, a.bad_labels, a.warnings) == (b.held, b.bad_labels, b.warnings)


def vector(*items: dict, warnings: list | None = None) -> bytes:
    body: dict = {"status": "success", "data": {"resultType": "vector", "result": list(items)}}
    if warnings is not None:
        body["warnings"] = warnings
    return json.dumps(body).encode()


label_text = st.text(st.characters(blacklist_categories=("Cs",)), max_size=8)
values = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True).map(repr),
    st.sampled_from(["NaN", "+Inf", "-Inf", "1e308", "0"]),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(st.tuples(st.dictionaries(label_text, label_text, max_size=4), values), max_size=6),
    st.floats(min_value=0, max_value=4e9),
)
def test_the_typed_decoder_agrees_with_the_checked_one_on_instant_answers(items, ts):
    raw = vector(*[{"metric": m, "value": [ts, v]} for m, v in items])
    fast = dec._typed(raw, "vector")
    assert fast is not None
    _same(fast, _checked(raw, "vector"))


@settings(max_examples=100, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.dictionaries(label_text, label_text, max_size=3),
            st.lists(st.tuples(st.floats(0, 4e9), values), max_size=5),
        ),
        max_size=5,
    )
)
def test_the_typed_decoder_agrees_with_the_checked_one_on_range_answers(items):
    body = {
        "status": "success",
        "data": {
            "resultType": "matrix",
            "result": [{"metric": m, "values": [list(p) for p in pts]} for m, pts in items],
        },
    }
    raw = json.dumps(body).encode()
    fast = dec._typed(raw, "matrix")
    assert fast is not None
    _same(fast, _checked(raw, "matrix"))


def test_a_scalar_answer_is_one_sample_without_labels():
    raw = b'{"status":"success","data":{"resultType":"scalar","result":[12.5,"420"]}}'
    a = decode(raw, "vector")
    assert [(s.labels, s.value, s.timestamp) for s in a.samples] == [({}, 420.0, 12.5)]


def test_warnings_come_with_the_data_of_a_partial_response():
    raw = vector({"metric": {"a": "b"}, "value": [1, "2"]}, warnings=["store down"])
    assert decode(raw, "vector").warnings == ["store down"]


@pytest.mark.parametrize(
    "metric",
    [{"job_id": 7}, {"job_id": None}, {"job_id": {"x": "y"}}, {"job_id": "\ud800"}],
    ids=["number", "null", "object", "lone surrogate"],
)
def test_a_series_with_a_label_that_is_not_text_is_left_out_and_counted(metric):
    good = {"metric": {"job_id": "ok"}, "value": [1, "3"]}
    raw = vector(good, {"metric": metric, "value": [1, "4"]})  # json escapes the surrogate
    assert dec._typed(raw, "vector") is None
    a = decode(raw, "vector")
    assert [s.labels for s in a.samples] == [{"job_id": "ok"}]
    assert (a.held, a.bad_labels) == (2, 1)


def test_bytes_that_are_not_utf8_fall_to_the_checked_decoder():
    raw = b'{"status":"success","data":{"resultType":"vector","result":[{"metric":{"a":"\xed\xa0\x80"},"value":[1,"1"]}]}}'  # noqa: E501
    assert dec._typed(raw, "vector") is None
    assert decode(raw, "vector").bad_labels == 1


@pytest.mark.parametrize(
    "raw,kind",
    [
        (b'{"status":"error","errorType":"bad_data","error":"parse error"}', "query_error"),
        (
            b'{"status":"error","error":"the number of unique timeseries exceeds '
            b'300000; increase -search.maxUniqueTimeseries"}',
            "limit",
        ),
        (b"<html>", "bad_response"),
        (b"[]", "bad_response"),
        (b'{"status":"success","data":{}}', "bad_response"),
        (
            b'{"status":"success","data":{"resultType":"vector","result":'
            b'[{"metric":{},"histogram":[1,{"count":"2"}]}]}}',
            "bad_response",
        ),
        (
            b'{"status":"success","data":{"resultType":"vector","result":'
            b'[{"metric":{},"value":[1,"many"]}]}}',
            "bad_response",
        ),
        (b'{"status":"success","data":{"resultType":"matrix","result":[]}}', "bad_response"),
    ],
    ids=["error", "limit", "html", "array", "no result", "histogram", "nan text", "wrong type"],
)
def test_what_the_typed_decoder_refuses_the_checked_one_names(raw, kind):
    with pytest.raises(PromError) as err:
        decode(raw, "vector", status=400)
    assert err.value.kind == kind
