"""The PRE stage of a cycle: forecasts from the current models, self-calibration rounds.

:class:`PreStage` owns the fitted models (swapped whole when a retrained set is kept), a
cache of forecasts keyed by job spec and GPU models, and the history of finished jobs that
self-calibration learns from. It never talks to Prometheus.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

from joulecast.estimator.pre.calibration import Calibration, HistoryRow, Retrainer
from joulecast.estimator.pre.forecast import forecast_job
from joulecast.estimator.pre.gpus import UnknownGpu
from joulecast.estimator.pre.model import JOB_COLUMNS, Forecast
from joulecast.estimator.prometheus.queries import JobState
from joulecast.estimator.records import FinishedJob, MethodProjection, float_or_none

log = logging.getLogger("joulecast.estimator")

_REQUIRED = ("model_gflops", "batch_size", "train_samples")
_CACHE_MAX = 50_000


def job_features(st: JobState) -> tuple[dict[str, float | None], str] | None:
    """A job's PRE features and GPU model from its info labels, or None if incomplete."""
    feats = {k: float_or_none(st.features.get(k)) for k in JOB_COLUMNS}
    gpu = (st.features.get("gpu_model") or "").split(",")[0]
    if not gpu or any(feats.get(k) is None for k in _REQUIRED):
        return None
    return feats, gpu


class PreStage:
    def __init__(
        self,
        models: Mapping[str, Any] | None = None,
        retrainer: Retrainer | None = None,
        ratings: Mapping[str, Mapping[str, float]] | None = None,
    ) -> None:
        self.models = dict(models or {})
        self.retrainer = retrainer
        self.ratings = {k: dict(v) for k, v in (ratings or {}).items()}
        self._cache: dict[tuple, list[Forecast]] = {}
        self._lock = threading.Lock()  # the retrain thread swaps models and cache

    @property
    def enabled(self) -> bool:
        return bool(self.models)

    def forecast(
        self, features: Mapping[str, Any], epochs: int, gpus: Iterable[str]
    ) -> list[Forecast]:
        """One forecast per (method, GPU), cached; [] when a GPU or feature is unusable."""
        gpus = tuple(gpus)
        key = (tuple(sorted((k, v) for k, v in features.items() if v is not None)), epochs, gpus)
        with self._lock:
            models, cached = self.models, self._cache.get(key)
        if cached is None:
            try:
                cached = forecast_job(models, features, epochs, gpus, self.ratings)
            except (UnknownGpu, ValueError) as err:
                log.debug("no PRE forecast for %s: %s", gpus, err)
                cached = []
            with self._lock:
                if len(self._cache) > _CACHE_MAX:
                    self._cache.clear()
                self._cache[key] = cached
        return cached

    def for_running(self, st: JobState) -> dict[str, MethodProjection]:
        """PRE forecast of a running job from its registered features and GPU model."""
        found = job_features(st) if self.models else None
        if found is None:
            return {}
        feats, gpu = found
        out = {}
        for fc in self.forecast(feats, max(st.epochs_planned, 1), (gpu,)):
            end = (st.start_s + fc.duration_s) if st.start_s is not None else None
            out[fc.method] = MethodProjection(
                fc.energy_j, fc.energy_lower_j, fc.energy_upper_j, end_s=end
            )
        return out

    def record_finished(self, finished: Iterable[FinishedJob]) -> int:
        """Finished jobs with features become PRE training rows; returns write failures."""
        if self.retrainer is None:
            return 0
        failures = 0
        for job in finished:
            found = job_features(job.state)
            if found is None:
                log.debug("finished job %s has no GPU model or features", job.job_id)
                continue
            feats, gpu = found
            p = job.progress
            duration = p.last.time_s - p.checkpoints[0].time_s
            planned = job.state.epochs_planned
            # a step budget that ended mid-epoch: the last marker was a partial epoch
            epochs = planned if p.epochs_done - 1 < planned < p.epochs_done else p.epochs_done
            row = HistoryRow(job.job_id, gpu, feats, epochs, job.energy_j, duration, job.finished_s)
            try:
                added = self.retrainer.history.add(row)
            except OSError as err:
                failures += 1
                log.warning("could not record finished job %s: %s", job.job_id, err)
                continue
            log.info(
                "finished job %s %s",
                job.job_id,
                "recorded as a PRE training row"
                if added
                else "not recorded (duplicate, unknown GPU or no energy)",
            )
        return failures

    def calibration(self) -> Calibration | None:
        return replace(self.retrainer.state) if self.retrainer is not None else None

    def retrain_now(self) -> bool:
        """One self-calibration round; swaps the models in when the new ones are not worse."""
        if self.retrainer is None or not self.models:
            return False
        try:
            new = self.retrainer.retrain(self.models)
        except Exception as err:  # a failed retrain keeps the current models
            self.retrainer._count("failed")
            log.warning("PRE retraining failed: %s", err)
            return False
        if new is None:
            return False
        with self._lock:
            self.models, self._cache = new, {}
        return True

    def retrain_loop(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            self.retrain_now()
