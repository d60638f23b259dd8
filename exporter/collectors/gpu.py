"""Per-GPU metrics from the sampler snapshot (labels: gpu, uuid, model)."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from joulecast.exporter.devices.base import ERROR_KINDS
from joulecast.exporter.sampler import GpuSnapshot, NodeSnapshot

LABELS = ["gpu", "uuid", "model"]

# (metric suffix, help, reading attribute)
GAUGES = [
    ("power_watts", "GPU board power draw (W).", "power_watts"),
    (
        "utilization_ratio",
        "Fraction of time a kernel was running on the GPU (0-1).",
        "utilization_gpu_ratio",
    ),
    (
        "memory_utilization_ratio",
        "Fraction of time device memory was read or written (0-1).",
        "utilization_memory_ratio",
    ),
    ("memory_used_bytes", "GPU memory in use (bytes).", "memory_used_bytes"),
    ("temperature_celsius", "GPU core temperature (degrees Celsius).", "temperature_celsius"),
    ("sm_clock_hertz", "Streaming multiprocessor clock (Hz).", "sm_clock_hertz"),
    ("power_limit_watts", "Enforced power limit (W).", "enforced_power_limit_watts"),
]


def _labels(g: GpuSnapshot) -> list[str]:
    return [str(g.info.index), g.info.uuid, g.info.model]


class GpuCollector:
    name = "gpu"

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "joulecast_gpu_info",
            'GPU identity; simulated="true" marks a simulated GPU. energy_source tells where '
            "joulecast_gpu_energy_joules_total comes from.",
            labels=[*LABELS, "simulated", "energy_source", "backend"],
        )
        up = GaugeMetricFamily(
            "joulecast_gpu_up", "1 if the GPU answered the last sample.", labels=LABELS
        )
        gauges = {
            attr: GaugeMetricFamily(f"joulecast_gpu_{suffix}", doc, labels=LABELS)
            for suffix, doc, attr in GAUGES
        }
        mem_total = GaugeMetricFamily(
            "joulecast_gpu_memory_total_bytes", "GPU memory (bytes).", labels=LABELS
        )
        tdp = GaugeMetricFamily(
            "joulecast_gpu_default_power_limit_watts",
            "Default power limit of the board, its TDP (W).",
            labels=LABELS,
        )
        idle = GaugeMetricFamily(
            "joulecast_gpu_idle_power_watts",
            "Idle power used to split job energy into idle and active parts (W).",
            labels=LABELS,
        )
        energy = CounterMetricFamily(
            "joulecast_gpu_energy_joules",
            "GPU energy since the exporter started (J): the NVML hardware counter where the "
            "board has one, else integrated power.",
            labels=LABELS,
        )
        integrated = CounterMetricFamily(
            "joulecast_gpu_power_integrated_energy_joules",
            "GPU energy from trapezoid integration of power sampled by the exporter (J).",
            labels=LABELS,
        )
        errors = CounterMetricFamily(
            "joulecast_gpu_errors",
            "Failed GPU reads by kind (device_lost, not_supported, call_error).",
            labels=[*LABELS, "kind"],
        )
        mig = GaugeMetricFamily(
            "joulecast_gpu_mig_info",
            "MIG instances of a board; their energy is counted on the board only.",
            labels=[*LABELS, "mig_uuid", "gpu_instance", "compute_instance"],
        )
        for g in snap.gpus:
            labels = _labels(g)
            r = g.reading
            info.add_metric(
                [*labels, str(g.info.simulated).lower(), g.energy_source, snap.backend], 1.0
            )
            up.add_metric(labels, 1.0 if r is not None else 0.0)
            for kind in sorted(set(ERROR_KINDS) | set(g.errors)):
                errors.add_metric([*labels, kind], float(g.errors.get(kind, 0)))
            for m in g.info.mig:
                mig.add_metric([*labels, m.uuid, str(m.gi_id), str(m.ci_id)], 1.0)
            if g.info.memory_total_bytes is not None:
                mem_total.add_metric(labels, float(g.info.memory_total_bytes))
            if g.info.default_power_limit_watts is not None:
                tdp.add_metric(labels, g.info.default_power_limit_watts)
            if r is None:
                continue  # lost device: its live values are left out
            for attr, fam in gauges.items():
                value = getattr(r, attr)
                if value is not None:
                    fam.add_metric(labels, float(value))
            if g.idle_power_watts is not None:
                idle.add_metric(labels, g.idle_power_watts)
            if r.power_watts is not None or g.counter_energy_joules is not None:
                energy.add_metric(labels, g.energy_joules)
            if r.power_watts is not None:
                integrated.add_metric(labels, g.integrated_energy_joules)
        yield info
        yield up
        yield from gauges.values()
        yield from (mem_total, tdp, idle, energy, integrated, errors, mig)
