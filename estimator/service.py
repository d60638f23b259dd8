"""The estimator's cycle: read every job from Prometheus, project, publish a snapshot.

One :class:`Estimator` holds all state (no globals). :meth:`Estimator.cycle` issues a fixed
number of queries, merges new epoch checkpoints into each job's history, computes the STEP
projections and baselines of running jobs, evaluates finished jobs once (the track record)
and swaps in a new immutable :class:`EstimatorSnapshot` for the collector to render. When
Prometheus fails, the last snapshot stays served and is marked stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, replace
from typing import Any

from estimator.baselines import BaselineConfig, green_algorithms, mlco2
from estimator.calibration import Calibration, HistoryRow, Retrainer
from estimator.forecast import forecast_job
from estimator.gpus import UnknownGpu
from estimator.pre import JOB_COLUMNS, Forecast
from estimator.promclient import PromClient, PromError
from estimator.queries import EpochPoint, JobState, fetch_gpu_models, fetch_history, fetch_state
from estimator.queue import QueueStore
from estimator.trackrecord import ErrorEntry, JobFacts, TrackRecord, evaluate
from joulecast.step import Checkpoint, Progress, Projection, StepConfig, StepError, project

log = logging.getLogger("joulecast.estimator")


@dataclass(frozen=True)
class EstimatorConfig:
    step: StepConfig = field(default_factory=StepConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    pue: float = 1.0  # applied alike to STEP energy and power projections
    lookback_s: float = 24 * 3600.0  # history read at start-up
    overlap_s: float = 30.0  # re-read margin of later cycles (scrape and ingestion lag)
    track_epochs: tuple[int, ...] = (10, 15, 20)
    finished_ttl_s: float = 3600.0
    carbon_intensity: float | None = None  # gCO2e/kWh
    carbon_query: str | None = None  # PromQL returning gCO2e/kWh


@dataclass(frozen=True)
class MethodProjection:
    energy_j: float
    lower_j: float | None = None
    upper_j: float | None = None
    remaining_j: float | None = None
    end_s: float | None = None


@dataclass(frozen=True)
class JobResult:
    job_id: str
    energy_so_far_j: float
    epochs_completed: int
    epochs_planned: int
    methods: dict[str, MethodProjection]
    stabilizing_epoch: int | None = None
    window_start: int | None = None
    window_end: int | None = None


@dataclass(frozen=True)
class EstimatorSnapshot:
    jobs: dict[str, JobResult] = field(default_factory=dict)
    queue: dict[str, list[Forecast]] = field(default_factory=dict)
    fleet_gpus: tuple[str, ...] = ()
    calibration: Calibration | None = None
    errors_by_job: tuple[ErrorEntry, ...] = ()
    summary: dict[tuple[str, int], tuple[int, float, float]] = field(default_factory=dict)
    carbon_intensity: float | None = None
    last_success_s: float | None = None
    last_cycle_duration_s: float = 0.0
    last_cycle_queries: int = 0
    stale: bool = True
    stale_since_s: float | None = None
    cycles: int = 0
    errors: dict[str, int] = field(default_factory=dict)


@dataclass
class _Job:
    points: dict[int, EpochPoint] = field(default_factory=dict)
    # STEP depends only on the checkpoints and the plan: reuse it until either changes.
    step_key: tuple[int, int, int] | None = None
    step: dict[str, Projection] = field(default_factory=dict)
    progress: Progress | None = None
    state: JobState | None = None
    finished_at: float | None = None
    evaluated: bool = False
    last_seen: float = 0.0


class Estimator:
    def __init__(
        self,
        client: PromClient,
        config: EstimatorConfig,
        clock: Callable[[], float] = time.time,
        pre_models: Mapping[str, Any] | None = None,
        queue: QueueStore | None = None,
        retrainer: Retrainer | None = None,
    ) -> None:
        self.retrainer = retrainer
        self.client = client
        self.config = config
        self.pre_models = dict(pre_models or {})
        self.queue = queue
        self._forecast_cache: dict[tuple, list[Forecast]] = {}
        self._clock = clock
        self._jobs: dict[str, _Job] = {}
        self._track = TrackRecord()
        self._finished_errors: list[ErrorEntry] = []
        self._errors: dict[str, int] = {}
        self._lock = threading.Lock()
        self._snapshot = EstimatorSnapshot()
        self._last_success: float | None = None
        self._outage_logged = False

    # -- one cycle --------------------------------------------------------------------
    def cycle(self) -> EstimatorSnapshot:
        start = time.perf_counter()
        now = self._clock()
        q0 = self.client.queries
        try:
            window = (
                self.config.lookback_s
                if self._last_success is None
                else min(self.config.lookback_s, now - self._last_success + self.config.overlap_s)
            )
            history = fetch_history(self.client, window, now)
            states = fetch_state(self.client, now)
            intensity = self._carbon(now)
            fleet = (
                fetch_gpu_models(self.client, now)
                if self.pre_models and self.queue is not None
                else []
            )
        except PromError as err:
            return self._failed(err, now, start, self.client.queries - q0)
        self._merge(history, states, now)
        jobs = {
            j: r for j, r in ((j, self._project(j, job, now)) for j, job in self._jobs.items()) if r
        }
        queue = self._forecast_queue(fleet)
        self._evaluate_finished(now)
        self._forget(now)
        if self._outage_logged:
            log.info("Prometheus answers again; estimates are fresh")
        self._outage_logged = False
        self._last_success = now
        snap = EstimatorSnapshot(
            jobs=jobs,
            errors_by_job=tuple(self._finished_errors),
            summary=self._track.summary(),
            carbon_intensity=intensity,
            queue=queue,
            fleet_gpus=tuple(fleet),
            calibration=replace(self.retrainer.state) if self.retrainer is not None else None,
            last_success_s=now,
            last_cycle_duration_s=time.perf_counter() - start,
            last_cycle_queries=self.client.queries - q0,
            stale=False,
            cycles=self._snapshot.cycles + 1,
            errors=dict(self._errors),
        )
        with self._lock:
            self._snapshot = snap
        return snap

    def _failed(self, err: PromError, now: float, start: float, queries: int) -> EstimatorSnapshot:
        self._errors[err.kind] = self._errors.get(err.kind, 0) + 1
        if not self._outage_logged:
            log.warning(
                "Prometheus query failed (%s): %s; serving the last estimates as stale",
                err.kind,
                err,
            )
            self._outage_logged = True
        with self._lock:
            prev = self._snapshot
            self._snapshot = replace(
                prev,
                stale=True,
                stale_since_s=prev.stale_since_s if prev.stale else now,
                last_cycle_duration_s=time.perf_counter() - start,
                last_cycle_queries=queries,
                cycles=prev.cycles + 1,
                errors=dict(self._errors),
            )
            return self._snapshot

    def _carbon(self, now: float) -> float | None:
        if self.config.carbon_query:
            samples = self.client.query(self.config.carbon_query, now)
            return samples[0].value if samples else self.config.carbon_intensity
        return self.config.carbon_intensity

    def _merge(
        self, history: dict[str, list[EpochPoint]], states: dict[str, JobState], now: float
    ) -> None:
        for job_id, points in history.items():
            job = self._jobs.setdefault(job_id, _Job())
            for p in points:
                job.points.setdefault(p.epoch, p)
            job.last_seen = now
        for job_id, st in states.items():
            job = self._jobs.setdefault(job_id, _Job())
            if not st.features and job.state is not None:
                # the info series can be missing from one answer (a relabel between
                # running and finished): keep the features seen before
                st.features = job.state.features
            job.state = st
            job.last_seen = now
            if not st.running and job.finished_at is None:
                job.finished_at = st.end_s or now

    @staticmethod
    def _progress(job: _Job) -> Progress | None:
        st = job.state
        if st is None or not job.points:
            return None
        points = dict(job.points)
        if 0 not in points and st.start_s is not None:
            # A job's energy counter is 0 at registration, whether or not that was scraped.
            points[0] = EpochPoint(0, st.start_s, 0.0)
        pts = sorted(points.values(), key=lambda p: p.epoch)
        cps: list[Checkpoint] = []
        for p in pts:
            if cps and (p.time_s < cps[-1].time_s or p.energy_j < cps[-1].energy_j):
                continue  # an exporter restart lost energy: keep the consistent prefix
            cps.append(Checkpoint(p.epoch, p.time_s, p.energy_j))
        try:
            return Progress(tuple(cps), max(st.epochs_planned, cps[-1].epoch, 1))
        except StepError:
            return None

    def _project(self, job_id: str, job: _Job, now: float) -> JobResult | None:
        st = job.state
        if st is None or not st.running:
            return None
        key = (len(job.points), max(job.points, default=-1), st.epochs_planned)
        if key != job.step_key:
            job.step_key = key
            job.progress = self._progress(job)
            job.step = project(job.progress, self.config.step) if job.progress is not None else {}
        progress = job.progress
        methods: dict[str, MethodProjection] = {}
        pue = self.config.pue
        stab = ws = we = None
        remaining_s: float | None = None
        if progress is not None:
            for method, pr in job.step.items():
                end = progress.last.time_s + pr.remaining_s
                methods[method] = MethodProjection(
                    energy_j=pr.energy_j * pue,
                    lower_j=pr.lower_j * pue,
                    upper_j=pr.upper_j * pue,
                    remaining_j=pr.remaining_j * pue,
                    end_s=end,
                )
                stab, ws, we, remaining_s = (
                    pr.stabilizing_epoch,
                    pr.window_start,
                    pr.window_end,
                    pr.remaining_s,
                )
        for method, fc in self._pre_for_running(st).items():
            methods[method] = MethodProjection(
                energy_j=fc.energy_j * pue,
                lower_j=fc.energy_lower_j * pue,
                upper_j=fc.energy_upper_j * pue,
                end_s=(st.start_s + fc.duration_s) if st.start_s is not None else None,
            )
        duration = self._projected_duration(st, progress, remaining_s, now)
        if duration is not None and st.tdp_w > 0:
            mem_gb = _float_or_none(st.features.get("host_ram_gb"))
            methods["mlco2"] = MethodProjection(mlco2(st.tdp_w, duration))
            methods["green_algorithms"] = MethodProjection(
                green_algorithms(
                    st.tdp_w, duration, st.gpu_utilization, mem_gb, self.config.baselines
                )
            )
        return JobResult(
            job_id=job_id,
            energy_so_far_j=st.energy_j,
            epochs_completed=st.epochs_completed,
            epochs_planned=st.epochs_planned,
            methods=methods,
            stabilizing_epoch=stab,
            window_start=ws,
            window_end=we,
        )

    def _forecasts(
        self, features: Mapping[str, Any], epochs: int, gpus: tuple[str, ...]
    ) -> list[Forecast]:
        key = (tuple(sorted((k, v) for k, v in features.items() if v is not None)), epochs, gpus)
        cached = self._forecast_cache.get(key)
        if cached is None:
            try:
                cached = forecast_job(self.pre_models, features, epochs, gpus)
            except (UnknownGpu, ValueError) as err:
                log.debug("no PRE forecast for %s: %s", gpus, err)
                cached = []
            if len(self._forecast_cache) > 50_000:
                self._forecast_cache.clear()
            self._forecast_cache[key] = cached
        return cached

    def _pre_for_running(self, st: JobState) -> dict[str, Forecast]:
        """PRE forecast of a running job from its registered features and GPU model."""
        if not self.pre_models:
            return {}
        feats = {k: _float_or_none(st.features.get(k)) for k in JOB_COLUMNS}
        gpu = (st.features.get("gpu_model") or "").split(",")[0]
        if not gpu or any(
            feats.get(k) is None for k in ("model_gflops", "batch_size", "train_samples")
        ):
            return {}
        return {fc.method: fc for fc in self._forecasts(feats, max(st.epochs_planned, 1), (gpu,))}

    def _forecast_queue(self, fleet: list[str]) -> dict[str, list[Forecast]]:
        """Every queued job on its requested GPU and on every GPU model of the fleet."""
        if not self.pre_models or self.queue is None:
            return {}
        out = {}
        for job in self.queue.jobs():
            gpus = tuple(dict.fromkeys(([job.gpu_model] if job.gpu_model else []) + list(fleet)))
            if gpus:
                out[job.job_id] = self._forecasts(job.features.as_dict(), job.epochs, gpus)
        return out

    @staticmethod
    def _projected_duration(
        st: JobState, progress: Progress | None, remaining_s: float | None, now: float
    ) -> float | None:
        if st.start_s is None:
            return None
        if progress is not None and remaining_s is not None:
            return progress.last.time_s - st.start_s + remaining_s
        if progress is not None and progress.epochs_done > 0:
            elapsed = progress.last.time_s - st.start_s
            return elapsed / progress.epochs_done * max(st.epochs_planned, progress.epochs_done)
        return None

    def _evaluate_finished(self, now: float) -> None:
        for job_id, job in self._jobs.items():
            if job.finished_at is None or job.evaluated or job.state is None:
                continue
            job.evaluated = True
            progress = self._progress(job)
            if progress is None or progress.checkpoints[0].epoch != 0:
                continue
            st = job.state
            measured = progress.last.energy_j - progress.checkpoints[0].energy_j
            facts = JobFacts(
                st.tdp_w, st.gpu_utilization, _float_or_none(st.features.get("host_ram_gb"))
            )
            entries = evaluate(
                job_id,
                progress,
                measured,
                self.config.track_epochs,
                facts,
                self.config.step,
                self.config.baselines,
            )
            self._track.add(entries)
            self._finished_errors.extend(entries)
            self._record_history(job_id, st, progress, measured, job.finished_at or now)

    def _record_history(
        self, job_id: str, st: JobState, progress: Progress, energy_j: float, finished: float
    ) -> None:
        """A finished job with features becomes a PRE training row (self-calibration)."""
        if self.retrainer is None:
            return
        feats = {k: _float_or_none(st.features.get(k)) for k in JOB_COLUMNS}
        gpu = (st.features.get("gpu_model") or "").split(",")[0]
        if not gpu or any(
            feats.get(k) is None for k in ("model_gflops", "batch_size", "train_samples")
        ):
            log.debug(
                "finished job %s has no GPU model or features: not a PRE training row", job_id
            )
            return
        duration = progress.last.time_s - progress.checkpoints[0].time_s
        try:
            added = self.retrainer.history.add(
                HistoryRow(job_id, gpu, feats, progress.epochs_done, energy_j, duration, finished)
            )
            log.info(
                "finished job %s %s",
                job_id,
                "recorded as a PRE training row"
                if added
                else "not recorded (duplicate, unknown GPU or no energy)",
            )
        except OSError as err:
            self._errors["history_write"] = self._errors.get("history_write", 0) + 1
            log.warning("could not record finished job %s: %s", job_id, err)

    def retrain_now(self) -> bool:
        """One self-calibration round; swaps the PRE models in when the new ones are not worse."""
        if self.retrainer is None or not self.pre_models:
            return False
        try:
            new = self.retrainer.retrain(self.pre_models)
        except Exception as err:  # a failed retrain keeps the current models
            self.retrainer._count("failed")
            log.warning("PRE retraining failed: %s", err)
            return False
        if new is None:
            return False
        self.pre_models = new
        self._forecast_cache = {}
        return True

    def retrain_loop(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.wait(interval_s):
            self.retrain_now()

    def _forget(self, now: float) -> None:
        ttl = self.config.finished_ttl_s
        gone = [
            j
            for j, job in self._jobs.items()
            if (job.finished_at is not None and now - job.finished_at > ttl)
            or now - job.last_seen > ttl
        ]
        for j in gone:
            del self._jobs[j]
        if gone:
            keep = set(self._jobs)
            self._finished_errors = [e for e in self._finished_errors if e.job_id in keep]

    # -- serving ----------------------------------------------------------------------
    def snapshot(self) -> EstimatorSnapshot:
        with self._lock:
            return self._snapshot

    def run(self, interval_s: float, stop: threading.Event) -> None:
        while not stop.is_set():
            started = time.monotonic()
            try:
                self.cycle()
            except Exception:  # a bug in one cycle must not stop the service
                self._errors["internal"] = self._errors.get("internal", 0) + 1
                log.exception("estimator cycle failed")
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))


def _float_or_none(v: str | None) -> float | None:
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None
