"""The queue stage of a cycle: every queued job (the queue directory, Slurm's pending
jobs) forecast on its requested GPU model and on every GPU model of the fleet.

A job that states its plan is forecast by PRE from it. A scheduler's pending job is also
forecast from the past runs of the same user and name (:class:`RunHistory`): the
``history`` method on the GPU models they were measured on, and PRE from the latest run's
plan where the job's own leaves features out. A job with neither is not forecast. A
forecast that runs past the job's time limit is cut at it: the scheduler kills the job there.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import replace
from typing import Any

from joulecast.estimator.pre.model import Forecast
from joulecast.estimator.queue.runs import RunHistory
from joulecast.estimator.queue.store import QueuedJob
from joulecast.schema import NUMERIC_FEATURES, SchemaError, parse_features

#: (features, epochs, GPU models) -> forecasts
ForecastFn = Callable[[Mapping[str, Any], int, Iterable[str]], list[Forecast]]


def with_past_plan(job: QueuedJob, runs: RunHistory | None) -> QueuedJob:
    """The job with what its comment leaves out taken from its latest past run's plan."""
    if job.planned or job.owner is None or runs is None:
        return job
    past = runs.plan(job.owner)
    if past is None:
        return job
    epochs, feats = past
    remembered = {
        k: int(v) if NUMERIC_FEATURES[k][2] else v
        for k, v in feats.items()
        if k in NUMERIC_FEATURES
    }
    try:
        merged = parse_features({**remembered, **job.features.as_dict()})
    except SchemaError:  # a remembered value out of today's bounds: the job's own plan only
        return job
    return replace(job, epochs=job.epochs or epochs, features=merged)


def forecast_queue(
    jobs: Iterable[QueuedJob],
    fleet: Iterable[str],
    forecast: ForecastFn | None,
    runs: RunHistory | None = None,
) -> dict[str, list[Forecast]]:
    fleet = list(fleet)
    out = {}
    for job in jobs:
        found: list[Forecast] = []
        job = with_past_plan(job, runs)
        gpus = tuple(dict.fromkeys(([job.gpu_model] if job.gpu_model else []) + fleet))
        if forecast is not None and job.planned and gpus:
            found += forecast(job.features.as_dict(), job.epochs, gpus)
        if runs is not None and job.owner is not None:
            found += runs.forecasts(job.owner, job.gpus, job.epochs)
        if found:
            out[job.job_id] = [within_limit(f, job.time_limit_s) for f in found]
    return out


def within_limit(fc: Forecast, limit_s: float | None) -> Forecast:
    """The forecast of a job stopped at ``limit_s``: its power for that long at most."""
    if not limit_s or fc.duration_s <= limit_s:
        return fc
    energy = fc.power_w * limit_s
    return replace(
        fc,
        duration_s=limit_s,
        energy_j=energy,
        energy_lower_j=min(fc.energy_lower_j, energy),
        energy_upper_j=min(fc.energy_upper_j, energy),
    )
