"""Runs the per-source collectors for one scrape, isolating their failures."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Protocol

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.exporter.sampler import NodeSnapshot

log = logging.getLogger("joulecast.exporter")


class SourceCollector(Protocol):
    name: str

    def collect_from(self, snap: NodeSnapshot) -> Iterable[Metric]: ...


class ScrapeCollector(Collector):
    def __init__(
        self, snapshot: Callable[[], NodeSnapshot], sources: list[SourceCollector]
    ) -> None:
        self._snapshot = snapshot
        self._sources = sources

    def collect(self) -> Iterator[Metric]:
        snap = self._snapshot()
        success = GaugeMetricFamily(
            "joulecast_scrape_collector_success",
            "Whether a collector succeeded on this scrape.",
            labels=["collector"],
        )
        duration = GaugeMetricFamily(
            "joulecast_scrape_collector_duration_seconds",
            "How long a collector took on this scrape.",
            labels=["collector"],
        )
        for source in self._sources:
            start = time.perf_counter()
            try:
                families = list(source.collect_from(snap))
                ok = 1.0
            except Exception:  # isolate: the other collectors still render
                log.exception("collector %s failed", source.name)
                families, ok = [], 0.0
            yield from families
            success.add_metric([source.name], ok)
            duration.add_metric([source.name], time.perf_counter() - start)
        yield success
        yield duration
