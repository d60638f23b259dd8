"""The exporter's own health: sampling, jobs, API requests, build info."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.exporter.sampler import NodeSnapshot


class ApiStats:
    """Request counts by route and status code, owned by the HTTP server instance."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._counts: dict[tuple[str, str, int], int] = {}

    def count(self, method: str, route: str, code: int) -> None:
        with self._lock:
            key = (method, route, code)
            self._counts[key] = self._counts.get(key, 0) + 1

    def items(self) -> list[tuple[tuple[str, str, int], int]]:
        with self._lock:
            return sorted(self._counts.items())


class ExporterCollector:
    name = "exporter"

    def __init__(self, registry: JobRegistry, api: ApiStats, version: str, gpu_hz: float) -> None:
        self._registry = registry
        self._api = api
        self._version = version
        self._gpu_hz = gpu_hz

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "joulecast_exporter_build_info",
            "Exporter version and GPU backend.",
            labels=["version", "backend"],
        )
        info.add_metric([self._version, snap.backend], 1.0)
        yield info
        yield GaugeMetricFamily(
            "joulecast_exporter_sampling_rate_hertz",
            "Configured GPU sampling rate.",
            value=self._gpu_hz,
        )
        yield CounterMetricFamily(
            "joulecast_exporter_samples", "GPU sampling rounds.", value=snap.samples_total
        )
        yield CounterMetricFamily(
            "joulecast_exporter_sample_overruns",
            "Sampling rounds that started late because the previous one overran.",
            value=snap.overruns_total,
        )
        yield GaugeMetricFamily(
            "joulecast_exporter_sample_duration_seconds",
            "Duration of the last sampling round.",
            value=snap.last_sample_duration_s,
        )
        errors = CounterMetricFamily(
            "joulecast_exporter_errors", "Exporter errors by kind.", labels=["kind"]
        )
        counts = dict(snap.errors)
        counts["state_write"] = self._registry.store_write_failures()
        for kind, n in sorted(counts.items()):
            errors.add_metric([kind], n)
        yield errors
        yield GaugeMetricFamily(
            "joulecast_exporter_live_jobs",
            "Jobs not yet finished.",
            value=self._registry.live_count(),
        )
        yield GaugeMetricFamily(
            "joulecast_exporter_live_jobs_limit",
            "Maximum live jobs.",
            value=self._registry.max_live_jobs,
        )
        req = CounterMetricFamily(
            "joulecast_exporter_api_requests",
            "Marker API requests.",
            labels=["method", "route", "code"],
        )
        for (method, route, code), n in self._api.items():
            req.add_metric([method, route, str(code)], n)
        yield req
