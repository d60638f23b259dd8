"""Renders the estimator's latest snapshot as Prometheus metrics (a custom collector)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from estimator.service import EstimatorSnapshot

JOULES_PER_KWH = 3.6e6


class EstimatorCollector(Collector):
    def __init__(self, snapshot: Callable[[], EstimatorSnapshot], version: str) -> None:
        self._snapshot = snapshot
        self._version = version

    def collect(self) -> Iterator[Metric]:
        s = self._snapshot()
        yield from self._jobs(s)
        yield from self._queue(s)
        yield from self._calibration(s)
        yield from self._track(s)
        yield from self._health(s)

    def _jobs(self, s: EstimatorSnapshot) -> Iterator[Metric]:
        JM = ["job_id", "method"]
        proj = GaugeMetricFamily(
            "joulecast_job_projected_energy_joules",
            "Projected total energy of a running job by method (J).",
            labels=JM,
        )
        lower = GaugeMetricFamily(
            "joulecast_job_projected_energy_lower_joules",
            "Lower bound of the projection interval (J).",
            labels=JM,
        )
        upper = GaugeMetricFamily(
            "joulecast_job_projected_energy_upper_joules",
            "Upper bound of the projection interval (J).",
            labels=JM,
        )
        remaining = GaugeMetricFamily(
            "joulecast_job_projected_remaining_energy_joules",
            "Projected energy still to be used (J).",
            labels=JM,
        )
        end = GaugeMetricFamily(
            "joulecast_job_projected_end_timestamp_seconds",
            "Projected wall time of the last planned epoch end.",
            labels=JM,
        )
        co2 = GaugeMetricFamily(
            "joulecast_job_projected_emissions_grams",
            "Projected emissions at the configured grid intensity (gCO2e).",
            labels=JM,
        )
        stab = GaugeMetricFamily(
            "joulecast_job_stabilizing_epoch",
            "Detected (or configured) stabilizing epoch.",
            labels=["job_id"],
        )
        wstart = GaugeMetricFamily(
            "joulecast_job_projection_window_start_epoch",
            "First epoch end of the STEP window.",
            labels=["job_id"],
        )
        wlen = GaugeMetricFamily(
            "joulecast_job_projection_window_epochs",
            "Epochs in the STEP window.",
            labels=["job_id"],
        )
        for job_id, r in sorted(s.jobs.items()):
            for method, m in sorted(r.methods.items()):
                lv = [job_id, method]
                proj.add_metric(lv, m.energy_j)
                if m.lower_j is not None and m.upper_j is not None:
                    lower.add_metric(lv, m.lower_j)
                    upper.add_metric(lv, m.upper_j)
                if m.remaining_j is not None:
                    remaining.add_metric(lv, m.remaining_j)
                if m.end_s is not None:
                    end.add_metric(lv, m.end_s)
                if s.carbon_intensity is not None:
                    co2.add_metric(lv, m.energy_j / JOULES_PER_KWH * s.carbon_intensity)
            if r.stabilizing_epoch is not None:
                stab.add_metric([job_id], r.stabilizing_epoch)
            if r.window_start is not None and r.window_end is not None:
                wstart.add_metric([job_id], r.window_start)
                wlen.add_metric([job_id], r.window_end - r.window_start)
        yield from (proj, lower, upper, remaining, end, co2, stab, wstart, wlen)
        if s.carbon_intensity is not None:
            yield GaugeMetricFamily(
                "joulecast_grid_carbon_intensity_grams_per_kwh",
                "Grid carbon intensity used (gCO2e/kWh).",
                value=s.carbon_intensity,
            )

    def _queue(self, s: EstimatorSnapshot) -> Iterator[Metric]:
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
            "The GPU model of the fleet where a queued job is forecast to use the least energy, per method.",
            labels=L,
        )
        for job_id, forecasts in sorted(s.queue.items()):
            cheapest: dict[str, tuple[float, str]] = {}
            for f in forecasts:
                lv = [job_id, f.gpu_model, f.method]
                energy.add_metric(lv, f.energy_j)
                lower.add_metric(lv, f.energy_lower_j)
                upper.add_metric(lv, f.energy_upper_j)
                duration.add_metric(lv, f.duration_s)
                power.add_metric(lv, f.power_w)
                if f.method not in cheapest or f.energy_j < cheapest[f.method][0]:
                    cheapest[f.method] = (f.energy_j, f.gpu_model)
            for method, (_, gpu) in cheapest.items():
                best.add_metric([job_id, gpu, method], 1.0)
        yield from (energy, lower, upper, duration, power, best)
        yield GaugeMetricFamily(
            "joulecast_estimator_queued_jobs", "Jobs in the queue directory.", value=len(s.queue)
        )

    def _calibration(self, s: EstimatorSnapshot) -> Iterator[Metric]:
        c = s.calibration
        if c is None:
            return
        yield GaugeMetricFamily(
            "joulecast_pre_history_rows",
            "Finished jobs recorded as PRE training rows.",
            value=c.history_rows,
        )
        yield GaugeMetricFamily(
            "joulecast_pre_model_training_rows",
            "Rows the current retrained PRE model was fit on (0: seed model).",
            value=c.model_rows,
        )
        retrains = CounterMetricFamily(
            "joulecast_pre_retrains", "PRE retraining rounds by outcome.", labels=["outcome"]
        )
        for outcome, n in sorted(c.retrains.items()):
            retrains.add_metric([outcome], n)
        yield retrains
        err = GaugeMetricFamily(
            "joulecast_pre_history_error_ratio",
            "Mean absolute relative error of epoch energy on finished jobs, current vs retrained model.",
            labels=["method", "model"],
        )
        for label, errors in (("current", c.current_error), ("candidate", c.candidate_error)):
            for method, mape in sorted(errors.items()):
                err.add_metric([method, label], mape / 100.0)
        yield err
        if c.last_retrain_s is not None:
            yield GaugeMetricFamily(
                "joulecast_pre_last_retrain_timestamp_seconds",
                "Wall time of the last retraining round.",
                value=c.last_retrain_s,
            )

    def _track(self, s: EstimatorSnapshot) -> Iterator[Metric]:
        err = GaugeMetricFamily(
            "joulecast_job_projection_error_ratio",
            "Finished jobs: (projection at epoch at_epoch - measured total) / measured total.",
            labels=["job_id", "method", "at_epoch"],
        )
        for e in s.errors_by_job:
            err.add_metric([e.job_id, e.method, str(e.at_epoch)], e.error_ratio)
        yield err
        mae = GaugeMetricFamily(
            "joulecast_method_mean_absolute_error_ratio",
            "Track record: mean |relative error| of each method over recently finished jobs.",
            labels=["method", "at_epoch"],
        )
        bias = GaugeMetricFamily(
            "joulecast_method_mean_error_ratio",
            "Track record: mean signed relative error.",
            labels=["method", "at_epoch"],
        )
        n = GaugeMetricFamily(
            "joulecast_method_evaluated_jobs",
            "Finished jobs in the track record.",
            labels=["method", "at_epoch"],
        )
        for (method, at), (count, mean_abs, mean) in sorted(s.summary.items()):
            lv = [method, str(at)]
            mae.add_metric(lv, mean_abs)
            bias.add_metric(lv, mean)
            n.add_metric(lv, count)
        yield from (mae, bias, n)

    def _health(self, s: EstimatorSnapshot) -> Iterator[Metric]:
        info = GaugeMetricFamily(
            "joulecast_estimator_build_info", "Estimator version.", labels=["version"]
        )
        info.add_metric([self._version], 1.0)
        yield info
        yield GaugeMetricFamily(
            "joulecast_estimator_cycle_duration_seconds",
            "Duration of the last cycle.",
            value=s.last_cycle_duration_s,
        )
        yield GaugeMetricFamily(
            "joulecast_estimator_queries_per_cycle",
            "Prometheus queries issued by the last cycle.",
            value=s.last_cycle_queries,
        )
        yield CounterMetricFamily("joulecast_estimator_cycles", "Cycles run.", value=s.cycles)
        if s.last_success_s is not None:
            yield GaugeMetricFamily(
                "joulecast_estimator_last_success_timestamp_seconds",
                "Wall time of the last successful cycle.",
                value=s.last_success_s,
            )
        yield GaugeMetricFamily(
            "joulecast_estimator_stale",
            "1 while the served estimates are from before a failed cycle.",
            value=1.0 if s.stale else 0.0,
        )
        if s.stale_since_s is not None and s.stale:
            yield GaugeMetricFamily(
                "joulecast_estimator_stale_since_timestamp_seconds",
                "When the estimates went stale.",
                value=s.stale_since_s,
            )
        yield GaugeMetricFamily(
            "joulecast_estimator_running_jobs", "Running jobs with estimates.", value=len(s.jobs)
        )
        errors = CounterMetricFamily(
            "joulecast_estimator_errors", "Failed cycles by kind.", labels=["kind"]
        )
        for kind, count in sorted(s.errors.items()):
            errors.add_metric([kind], count)
        yield errors
