"""Series-limit errors as each store words them, and the split of a refused query."""

from __future__ import annotations

from collections import Counter

import pytest

from joulecast.estimator.prometheus.client import LIMIT_ERROR, PromError
from joulecast.estimator.prometheus.queries import ID_FIRST, MAX_SPLITS, narrowed, split_on_limit


@pytest.mark.parametrize(
    "text",
    [
        # VictoriaMetrics
        "the number of matching unique timeseries exceeds 300000; either narrow down the search "
        "or increase -search.maxUniqueTimeseries",
        # Mimir
        "the query exceeded the maximum number of series (limit: 100000 series) "
        "(err-mimir-max-series-per-query)",
        # Cortex
        "the query hit the max number of series limit (limit: 100000 series)",
    ],
)
def test_each_stores_limit_error_is_recognised(text):
    assert LIMIT_ERROR.search(text)


def test_other_errors_are_not_limits():
    assert not LIMIT_ERROR.search("parse error at char 7: unexpected identifier")


def test_a_refused_query_is_split_by_job_id_until_each_part_passes():
    ids = ["a1", "b2", "c3", "X4", "75"]
    asked: list[str] = []

    def fetch(selector: str) -> list[str]:
        asked.append(selector)
        chars = selector.split('job_id=~"[')[1].split("]")[0] if "job_id" in selector else ID_FIRST
        hits = [i for i in ids if i[0] in chars]
        if len(hits) > 1:
            raise PromError("limit", "too many series")
        return hits

    splits: Counter = Counter()
    assert sorted(split_on_limit(fetch, '{__name__="x"}', splits)) == sorted(ids)
    assert splits["limit"] > 0 and asked[0] == '{__name__="x"}'
    assert narrowed('{__name__="x"}', "ab") == '{__name__="x",job_id=~"[ab].*"}'


def test_splitting_stops_and_says_so_past_its_bound():
    def always(selector: str) -> list[str]:
        raise PromError("limit", "too many series")

    splits: Counter = Counter()
    with pytest.raises(PromError):
        split_on_limit(always, '{__name__="x"}', splits)
    assert splits["limit"] <= 2**MAX_SPLITS


def test_errors_other_than_a_limit_are_not_split():
    def down(selector: str) -> list[str]:
        raise PromError("unreachable", "no route")

    splits: Counter = Counter()
    with pytest.raises(PromError):
        split_on_limit(down, '{__name__="x"}', splits)
    assert splits["limit"] == 0
