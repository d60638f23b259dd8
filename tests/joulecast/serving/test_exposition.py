"""The fast encoder gives the same samples as prometheus_client's, in both formats."""

from __future__ import annotations

import math

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, PlatformCollector
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily
from prometheus_client.exposition import generate_latest
from prometheus_client.openmetrics.exposition import generate_latest as generate_openmetrics
from prometheus_client.openmetrics.parser import text_string_to_metric_families as parse_om
from prometheus_client.parser import text_string_to_metric_families as parse_text

from joulecast.serving.exposition import encode_openmetrics, encode_text


class Odd:
    def collect(self):
        g = GaugeMetricFamily("odd_values", "Awkward \\ help\nline.", labels=["v"])
        for label, value in [
            ('quote " and \\ and\nnewline', 1.5),
            ("inf", math.inf),
            ("-inf", -math.inf),
            ("big", 1.234e18),
            ("small", 1e-9),
            ("int", 42.0),
            ("negative", -3.0),
        ]:
            g.add_metric([label], value)
        yield g
        c = CounterMetricFamily("odd_events", "Events.", labels=["kind"])
        c.add_metric(["a"], 3.0)
        yield c


@pytest.fixture
def registry():
    reg = CollectorRegistry()
    reg.register(Odd())
    Gauge("plain_gauge", "A gauge.", ["x"], registry=reg).labels("1").set(2)
    Counter("plain_counter", "A counter.", registry=reg).inc(5)  # with _created
    Histogram("plain_seconds", "A histogram.", registry=reg).observe(0.3)  # library path
    PlatformCollector(registry=reg)  # static values: both encoders see the same
    return reg


def samples(families):
    return sorted(
        (s.name, tuple(sorted(s.labels.items())), repr(s.value))
        for f in families
        for s in f.samples
    )


def test_text_format_matches_the_library(registry):
    ours = encode_text(registry.collect()).decode()
    theirs = generate_latest(registry).decode()
    assert samples(parse_text(ours)) == samples(parse_text(theirs))


def test_openmetrics_format_matches_the_library(registry):
    ours = encode_openmetrics(registry.collect()).decode()
    theirs = generate_openmetrics(registry).decode()
    assert ours.endswith("# EOF\n") and ours.count("# EOF") == 1
    assert samples(parse_om(ours)) == samples(parse_om(theirs))
