"""The queue room's metric families: forecasts of queued jobs on each GPU model."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.estimator.pre.forecast import placement
from joulecast.estimator.pre.model import Forecast


class QueueCollector(Collector):
    def __init__(self, view: Callable[[], dict[str, list[Forecast]]]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        queue = self._view()
        L = ["job_id", "gpu_model", "method"]
        energy = GaugeMetricFamily(
            "joulecast_queue_forecast_energy_joules",
            "PRE forecast of a queued job's total energy on a GPU model (J).",
            labels=L,
        )
        lower = GaugeMetricFamily(
            "joulecast_queue_forecast_energy_lower_joules",
            "Lower bound of the forecast interval (J).",
            labels=L,
        )
        upper = GaugeMetricFamily(
            "joulecast_queue_forecast_energy_upper_joules",
            "Upper bound of the forecast interval (J).",
            labels=L,
        )
        duration = GaugeMetricFamily(
            "joulecast_queue_forecast_duration_seconds",
            "PRE forecast of a queued job's duration (s).",
            labels=L,
        )
        power = GaugeMetricFamily(
            "joulecast_queue_forecast_power_watts",
            "PRE forecast of a queued job's average GPU power (W).",
            labels=L,
        )
        best = GaugeMetricFamily(
            "joulecast_queue_best_gpu_info",
            "The GPU model of the fleet where a queued job is forecast to use the least energy, "
            "each GPU judged by the method the model store rates best for it (label method).",
            labels=L,
        )
        for job_id, forecasts in sorted(queue.items()):
            for f in forecasts:
                lv = [job_id, f.gpu_model, f.method]
                energy.add_metric(lv, f.energy_j)
                lower.add_metric(lv, f.energy_lower_j)
                upper.add_metric(lv, f.energy_upper_j)
                duration.add_metric(lv, f.duration_s)
                power.add_metric(lv, f.power_w)
            chosen = placement(forecasts)
            if chosen is not None:
                best.add_metric([job_id, chosen.gpu_model, chosen.method], 1.0)
        yield from (energy, lower, upper, duration, power, best)
        yield GaugeMetricFamily(
            "joulecast_estimator_queued_jobs", "Jobs in the queue directory.", value=len(queue)
        )
