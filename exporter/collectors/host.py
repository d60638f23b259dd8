"""Host RAM and CPU metrics (psutil) from the sampler snapshot."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric

from joulecast.exporter.sampler import NodeSnapshot


class HostCollector:
    name = "host"

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        h = snap.host
        if h is None:
            return
        yield GaugeMetricFamily(
            "joulecast_host_memory_used_bytes",
            "Host RAM in use (bytes).",
            value=h.memory_used_bytes,
        )
        yield GaugeMetricFamily(
            "joulecast_host_memory_total_bytes", "Host RAM (bytes).", value=h.memory_total_bytes
        )
        yield GaugeMetricFamily(
            "joulecast_host_cpu_utilization_ratio",
            "Host CPU utilization over the last host sampling interval (0-1).",
            value=h.cpu_utilization_ratio,
        )
        yield GaugeMetricFamily("joulecast_host_cpus", "Logical CPUs.", value=h.cpu_count)
