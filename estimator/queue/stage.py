"""The queue stage of a cycle: every queued job (the queue directory, Slurm's pending
jobs) forecast on its requested GPU model and on
every GPU model of the fleet."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from joulecast.estimator.pre.model import Forecast
from joulecast.estimator.queue.store import QueuedJob

#: (features, epochs, GPU models) -> forecasts
ForecastFn = Callable[[Mapping[str, Any], int, Iterable[str]], list[Forecast]]


def forecast_queue(
    jobs: Iterable[QueuedJob], fleet: Iterable[str], forecast: ForecastFn
) -> dict[str, list[Forecast]]:
    fleet = list(fleet)
    out = {}
    for job in jobs:
        gpus = tuple(dict.fromkeys(([job.gpu_model] if job.gpu_model else []) + fleet))
        if gpus:
            out[job.job_id] = forecast(job.features.as_dict(), job.epochs, gpus)
    return out
