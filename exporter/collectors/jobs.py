"""Per-job metrics from the job registry (label: job_id).

``joulecast_job_epoch_end_energy_joules`` and ``..._epoch_end_timestamp_seconds`` hold the
job's energy counter and the wall time at its last epoch end (epoch 0 is registration), so
any two scrapes give the exact energy between two epoch ends. The ``step_*`` series do the
same for optimizer steps, for jobs that report them.
"""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric

from joulecast.exporter.jobs.model import JobRecord
from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.exporter.sampler import NodeSnapshot
from joulecast.schema import (
    FAILED_OUTCOMES,
    NUMERIC_FEATURES,
    SCHEDULER_LABELS,
    STRING_FEATURES,
    SchedulerLabels,
)
from joulecast.shards import bucket

FEATURE_LABELS = [*STRING_FEATURES, *NUMERIC_FEATURES]
SCHEDULER_LABEL_NAMES = list(SCHEDULER_LABELS)
NO_SCHEDULER = SchedulerLabels()


def _fmt(value: object) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:g}"
    return str(value)


class JobsCollector:
    name = "jobs"

    def __init__(self, registry: JobRegistry) -> None:
        self._registry = registry

    @staticmethod
    def _steps(g: dict[str, GaugeMetricFamily], lv: list[str], r: JobRecord) -> None:
        """Step progress, for jobs that report it (step 0 is registration)."""
        if r.steps_planned is None and not r.steps_completed:
            return
        g["steps_completed"].add_metric(lv, r.steps_completed)
        if r.steps_planned is not None:
            g["steps_planned"].add_metric(lv, r.steps_planned)
        g["step_end_energy_joules"].add_metric(lv, r.step_end_energy_joules)
        g["step_end_timestamp_seconds"].add_metric(lv, r.step_end_timestamp or r.created_at)
        if r.tokens_completed is not None:
            g["tokens_completed"].add_metric(lv, r.tokens_completed)

    def collect_from(self, snap: NodeSnapshot) -> Iterator[Metric]:
        L = ["job_id", "job_bucket"]  # the bucket: which estimator shard reads the job
        info = GaugeMetricFamily(
            "joulecast_job_info",
            "A job (registered through the marker API or found by a scheduler source), with "
            "its state (running or its outcome), features and scheduler labels.",
            labels=[
                "job_id",
                "job_bucket",
                "state",
                "gpus",
                "gpu_model",
                *FEATURE_LABELS,
                *SCHEDULER_LABEL_NAMES,
            ],
        )
        g = {
            name: GaugeMetricFamily(f"joulecast_job_{name}", doc, labels=L)
            for name, doc in [
                ("epochs_completed", "Epochs completed (last epoch marker)."),
                ("epochs_planned", "Epochs planned (absent while not known)."),
                ("epoch_end_energy_joules", "The job's energy counter at its last epoch end (J)."),
                (
                    "epoch_end_timestamp_seconds",
                    "Wall time of the last epoch end (registration before the first).",
                ),
                ("start_timestamp_seconds", "Wall time the job registered."),
                ("end_timestamp_seconds", "Wall time the job finished."),
                ("running", "1 while the job runs, 0 once it ended (finished, failed or lost)."),
                (
                    "failed",
                    "1 once the job ended with an error (a crashed run, node failure, out of "
                    "memory), else 0.",
                ),
                (
                    "lost",
                    "1 once the job's processes vanished without a finish (killed), else 0.",
                ),
                ("steps_completed", "Optimizer steps completed (last step marker)."),
                ("steps_planned", "Optimizer steps planned."),
                ("step_end_energy_joules", "The job's energy counter at its last step marker (J)."),
                ("step_end_timestamp_seconds", "Wall time of the last step marker."),
                ("tokens_completed", "Tokens processed (last step marker that counted them)."),
                ("gpus", "Number of GPUs attributed to the job."),
                ("gpu_tdp_watts", "Sum of the TDPs (default power limits) of the job's GPUs (W)."),
                ("gpu_memory_bytes", "Sum of the memory of the job's GPUs (bytes)."),
                (
                    "gpu_utilization_mean_ratio",
                    "Mean utilization of the job's GPUs over its life (0-1).",
                ),
                ("energy_budget_joules", "Energy budget declared by the job (J)."),
                (
                    "over_budget",
                    "1 while the client's in-process projection is over the job's energy "
                    "budget, 0 once back under (absent until the client first reports).",
                ),
            ]
        }
        crossings = CounterMetricFamily(
            "joulecast_job_budget_crossings",
            "Times the client's projection crossed the job's energy budget, either way.",
            labels=L,
        )
        energy = CounterMetricFamily(
            "joulecast_job_energy_joules", "GPU energy attributed to the job (J).", labels=L
        )
        idle = CounterMetricFamily(
            "joulecast_job_idle_energy_joules",
            "The idle-power part of the job's attributed energy (J).",
            labels=L,
        )
        for r in sorted(self._registry.snapshot(), key=lambda r: r.job_id):
            lv = [r.job_id, str(bucket(r.job_id))]
            feats = r.spec.features
            sched = r.spec.scheduler or NO_SCHEDULER
            info.add_metric(
                [
                    *lv,
                    r.state(),
                    ",".join(map(str, r.gpus)),
                    ",".join(r.gpu_models),
                    *(_fmt(getattr(feats, f)) for f in FEATURE_LABELS),
                    *(getattr(sched, f) for f in SCHEDULER_LABEL_NAMES),
                ],
                1.0,
            )
            g["epochs_completed"].add_metric(lv, r.epochs_completed)
            if r.epochs_planned:
                g["epochs_planned"].add_metric(lv, r.epochs_planned)
            g["epoch_end_energy_joules"].add_metric(lv, r.epoch_end_energy_joules)
            g["epoch_end_timestamp_seconds"].add_metric(lv, r.epoch_end_timestamp or r.created_at)
            g["start_timestamp_seconds"].add_metric(lv, r.created_at)
            if r.finished_at is not None:
                g["end_timestamp_seconds"].add_metric(lv, r.finished_at)
            g["running"].add_metric(lv, 1.0 if r.live else 0.0)
            g["failed"].add_metric(lv, 1.0 if r.outcome in FAILED_OUTCOMES else 0.0)
            g["lost"].add_metric(lv, 1.0 if r.lost else 0.0)
            self._steps(g, lv, r)
            g["gpus"].add_metric(lv, len(r.gpus or r.seen_gpus))
            g["gpu_tdp_watts"].add_metric(lv, r.tdp_watts)
            g["gpu_memory_bytes"].add_metric(lv, r.gpu_memory_bytes)
            if r.mean_utilization is not None:
                g["gpu_utilization_mean_ratio"].add_metric(lv, r.mean_utilization)
            if feats.budget_kwh is not None:
                g["energy_budget_joules"].add_metric(lv, feats.budget_kwh * 3.6e6)
            if r.budget_over is not None:
                g["over_budget"].add_metric(lv, 1.0 if r.budget_over else 0.0)
                crossings.add_metric(lv, r.budget_crossings)
            energy.add_metric(lv, r.energy_joules)
            idle.add_metric(lv, r.idle_energy_joules)
        yield info
        yield from g.values()
        yield energy
        yield idle
        yield crossings
