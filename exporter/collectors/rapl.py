"""CPU and DRAM energy counters from RAPL (absent where powercap is not readable)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, Metric

from joulecast.exporter.sampler import NodeSnapshot


class RaplCollector:
    name = "rapl"

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        if not snap.rapl:
            return
        fam = CounterMetricFamily(
            "joulecast_host_cpu_energy_joules",
            "CPU package/core/uncore and DRAM energy from RAPL (J).",
            labels=["domain", "socket"],
        )
        for r in snap.rapl:
            fam.add_metric([r.domain, r.socket], r.joules_total)
        yield fam
