"""The STEP room's metric families: projections of running jobs (STEP, PRE and the TDP
baselines side by side) and the track record of finished jobs."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.estimator.step.stage import JobResult
from joulecast.estimator.step.trackrecord import ErrorEntry

JOULES_PER_KWH = 3.6e6


@dataclass(frozen=True)
class StepView:
    jobs: dict[str, JobResult]
    errors_by_job: tuple[ErrorEntry, ...]
    summary: dict[tuple[str, int, str], tuple[int, float, float]]
    carbon_intensity: float | None = None
    calibration_jobs: dict[tuple[str, int, str], int] | None = None
    calibration_min_jobs: int = 10


class StepCollector(Collector):
    def __init__(self, view: Callable[[], StepView]) -> None:
        self._view = view

    def collect(self) -> Iterator[Metric]:
        s = self._view()
        yield from self._jobs(s)
        yield from self._track(s)
        yield from self._calibration(s)

    def _calibration(self, s: StepView) -> Iterator[Metric]:
        jobs = GaugeMetricFamily(
            "joulecast_step_calibration_jobs",
            "Finished jobs whose errors calibrate the projection interval, by method and "
            "scoring epoch (intervals are calibrated from joulecast_step_calibration_min_jobs); "
            "unit step: at_epoch counts segments of the step plan, 1 % of the run each.",
            labels=["method", "at_epoch", "unit"],
        )
        for (method, at, unit), n in sorted((s.calibration_jobs or {}).items()):
            jobs.add_metric([method, str(at), unit], n)
        yield jobs
        yield GaugeMetricFamily(
            "joulecast_step_calibration_min_jobs",
            "Finished jobs needed before an interval is calibrated.",
            value=s.calibration_min_jobs,
        )

    def _jobs(self, s: StepView) -> Iterator[Metric]:
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
        progress = GaugeMetricFamily(
            "joulecast_job_progress_ratio",
            "Share of the planned run done, in the unit STEP projects it in (epoch, or step "
            "for a step plan of few epochs).",
            labels=["job_id", "unit"],
        )
        nodes = GaugeMetricFamily(
            "joulecast_job_nodes",
            "Nodes (exporters) the job was measured on; its figures are sums over them.",
            labels=["job_id"],
        )
        calibrated = GaugeMetricFamily(
            "joulecast_job_projection_interval_calibrated",
            "1: the interval is scaled on finished jobs' errors (split-conformal, covers the "
            "configured level); 0: the model's own interval, too few finished jobs yet.",
            labels=JM,
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
                if m.calibrated is not None:
                    calibrated.add_metric(lv, 1.0 if m.calibrated else 0.0)
                if s.carbon_intensity is not None:
                    co2.add_metric(lv, m.energy_j / JOULES_PER_KWH * s.carbon_intensity)
            if r.progress_ratio is not None:
                progress.add_metric([job_id, r.unit], r.progress_ratio)
            nodes.add_metric([job_id], r.nodes)
            if r.stabilizing_epoch is not None:
                stab.add_metric([job_id], r.stabilizing_epoch)
            if r.window_start is not None and r.window_end is not None:
                wstart.add_metric([job_id], r.window_start)
                wlen.add_metric([job_id], r.window_end - r.window_start)
        yield from (proj, lower, upper, remaining, end, co2, stab, wstart, wlen, calibrated)
        yield from (progress, nodes)
        if s.carbon_intensity is not None:
            yield GaugeMetricFamily(
                "joulecast_grid_carbon_intensity_grams_per_kwh",
                "Grid carbon intensity used (gCO2e/kWh).",
                value=s.carbon_intensity,
            )

    def _track(self, s: StepView) -> Iterator[Metric]:
        err = GaugeMetricFamily(
            "joulecast_job_projection_error_ratio",
            "Finished jobs: (projection at epoch at_epoch - measured total) / measured total.",
            labels=["job_id", "method", "at_epoch", "unit"],
        )
        for e in s.errors_by_job:
            err.add_metric([e.job_id, e.method, str(e.at_epoch), e.unit], e.error_ratio)
        yield err
        mae = GaugeMetricFamily(
            "joulecast_method_mean_absolute_error_ratio",
            "Track record: mean |relative error| of each method over recently finished jobs.",
            labels=["method", "at_epoch", "unit"],
        )
        bias = GaugeMetricFamily(
            "joulecast_method_mean_error_ratio",
            "Track record: mean signed relative error.",
            labels=["method", "at_epoch", "unit"],
        )
        n = GaugeMetricFamily(
            "joulecast_method_evaluated_jobs",
            "Finished jobs in the track record.",
            labels=["method", "at_epoch", "unit"],
        )
        for (method, at, unit), (count, mean_abs, mean) in sorted(s.summary.items()):
            lv = [method, str(at), unit]
            mae.add_metric(lv, mean_abs)
            bias.add_metric(lv, mean)
            n.add_metric(lv, count)
        yield from (mae, bias, n)
