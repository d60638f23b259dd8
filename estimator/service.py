"""The estimator's cycle as a pipeline over the rooms, publishing an immutable snapshot.

One cycle: the Prometheus room fetches a :class:`TsdbView` (a fixed number of queries);
the STEP room merges it into each job's history and projects running jobs, with the PRE
room's forecasts of running jobs beside; the STEP room scores newly finished jobs, which the
PRE room records for self-calibration; the queue room remembers finished runs by user and
job name and forecasts queued jobs through PRE and those runs.
The result is swapped in as a new :class:`EstimatorSnapshot` for the collectors to render.
When Prometheus fails, the last snapshot stays served and is marked stale.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from joulecast.estimator.calibration_file import CalibrationFile
from joulecast.estimator.gcpause import collector_paused
from joulecast.estimator.jobs import JobBook
from joulecast.estimator.pre.calibration import Calibration, Retrainer
from joulecast.estimator.pre.model import Forecast
from joulecast.estimator.pre.stage import PreStage
from joulecast.estimator.prometheus.changes import Needs
from joulecast.estimator.prometheus.client import PromClient, PromError
from joulecast.estimator.prometheus.cycle import fetch_cycle
from joulecast.estimator.prometheus.queries import JobState, TsdbView
from joulecast.estimator.queue.runs import RunHistory
from joulecast.estimator.queue.slurm import SlurmQueue, SlurmQueueError
from joulecast.estimator.queue.stage import forecast_queue
from joulecast.estimator.queue.store import QueuedJob, QueueStore
from joulecast.estimator.step.baselines import BaselineConfig
from joulecast.estimator.step.stage import JobResult, StepSettings, StepStage
from joulecast.estimator.step.trackrecord import ErrorEntry
from joulecast.serving.files import FileRejections
from joulecast.shards import owned, owns
from joulecast.step import StepConfig

log = logging.getLogger("joulecast.estimator")


@dataclass(frozen=True)
class EstimatorConfig:
    step: StepConfig = field(default_factory=StepConfig)
    baselines: BaselineConfig = field(default_factory=BaselineConfig)
    pue: float = 1.0  # applied alike to STEP energy and power projections
    lookback_s: float = 24 * 3600.0  # history read at start-up
    overlap_s: float = 30.0  # re-read margin of later cycles (scrape and ingestion lag)
    incremental: bool = True  # between whole reads, read only what changed of the state
    resync_s: float = 300.0  # a whole read of every job's state at least this often
    pause_gc: bool = True  # no automatic garbage collection within a cycle (gcpause.py)
    track_epochs: tuple[int, ...] = (10, 15, 20)
    finished_ttl_s: float = 3600.0
    carbon_intensity: float | None = None  # gCO2e/kWh
    carbon_query: str | None = None  # PromQL returning gCO2e/kWh
    calibration_min_jobs: int = 10
    calibration_file: Path | None = None  # the interval calibration, kept across restarts
    max_jobs: int = 10_000  # jobs tracked and published; past it new ones are left out
    shard_index: int = 0  # this replica's shard, of shard_count (joulecast/shards.py)
    shard_count: int = 1

    def buckets(self) -> tuple[int, ...] | None:
        """The job buckets this shard reads; None: all (one shard)."""
        if self.shard_count <= 1:
            return None
        return tuple(owned(self.shard_index, self.shard_count))

    def step_settings(self) -> StepSettings:
        return StepSettings(
            self.step,
            self.baselines,
            self.pue,
            self.track_epochs,
            self.finished_ttl_s,
            self.calibration_min_jobs,
        )


@dataclass(frozen=True)
class EstimatorSnapshot:
    jobs: dict[str, JobResult] = field(default_factory=dict)
    queue: dict[str, list[Forecast]] = field(default_factory=dict)
    fleet_gpus: tuple[str, ...] = ()
    calibration: Calibration | None = None
    errors_by_job: tuple[ErrorEntry, ...] = ()
    summary: dict[tuple[str, int, str], tuple[int, float, float]] = field(default_factory=dict)
    carbon_intensity: float | None = None
    last_success_s: float | None = None
    last_cycle_duration_s: float = 0.0
    last_cycle_queries: int = 0
    stale: bool = True
    stale_since_s: float | None = None
    cycles: int = 0
    errors: dict[str, int] = field(default_factory=dict)
    skipped_samples: dict[str, int] = field(default_factory=dict)  # totals, by kind
    calibration_jobs: dict[tuple[str, int, str], int] = field(default_factory=dict)
    calibration_min_jobs: int = 10
    jobs_dropped: int = 0
    limit_splits: int = 0  # totals since start
    partial_responses: int = 0


class Estimator:
    def __init__(
        self,
        client: PromClient,
        config: EstimatorConfig,
        clock: Callable[[], float] = time.time,
        pre_models: Mapping[str, Any] | None = None,
        queue: QueueStore | None = None,
        pending: SlurmQueue | None = None,
        runs: RunHistory | None = None,
        retrainer: Retrainer | None = None,
        ratings: Mapping[str, Mapping[str, float]] | None = None,
        rejections: FileRejections | None = None,
    ) -> None:
        self.client = client
        self.config = config
        self.queue = queue
        self.pending = pending
        self.runs = runs
        self.book = JobBook(ttl_s=config.finished_ttl_s, max_jobs=config.max_jobs)
        self.step = StepStage(config.step_settings())
        self.pre = PreStage(pre_models, retrainer, ratings)
        self._calibration_file = (
            CalibrationFile(config.calibration_file, rejections)
            if config.calibration_file
            else None
        )
        if self._calibration_file is not None:
            self._calibration_file.load_into(self.step.calibration)
        self._clock = clock
        self._buckets = config.buckets()
        self._errors: dict[str, int] = {}
        self._skipped: dict[str, int] = {}
        self._limit_splits = self._partial = 0
        self._lock = threading.Lock()
        self._snapshot = EstimatorSnapshot()
        self._last_success: float | None = None
        self._last_whole: float | None = None  # the last whole read of the state
        self._outage_logged = False

    @property
    def retrainer(self) -> Retrainer | None:
        return self.pre.retrainer

    # -- one cycle --------------------------------------------------------------------
    def _fetch(self, now: float) -> TsdbView:
        cfg = self.config
        window = (
            cfg.lookback_s
            if self._last_success is None
            else min(cfg.lookback_s, now - self._last_success + cfg.overlap_s)
        )
        whole = (
            not cfg.incremental
            or self._last_whole is None
            or now - self._last_whole >= cfg.resync_s
            or window >= cfg.lookback_s
        )
        view = fetch_cycle(
            self.client,
            window,
            now,
            fleet=self.pre.enabled and (self.queue is not None or self.pending is not None),
            carbon_query=cfg.carbon_query,
            carbon_default=cfg.carbon_intensity,
            buckets=self._buckets,
            needs=None if whole else Needs(self.book.needs_state, self.book.needs_history),
        )
        if whole:
            self._last_whole = now
        return view

    def _queued(self) -> list[QueuedJob]:
        """The queue directory's jobs and Slurm's pending ones (a failed read is counted),
        those of this shard."""
        jobs = self.queue.jobs() if self.queue is not None else []
        if self.pending is not None:
            try:
                jobs += self.pending.jobs()
            except SlurmQueueError as err:
                log.warning("Slurm's pending queue not read: %s", err)
                self._errors["slurm_queue"] = self._errors.get("slurm_queue", 0) + 1
        cfg = self.config
        return [j for j in jobs if owns(cfg.shard_index, cfg.shard_count, j.job_id)]

    def _learn_runs(self, states: Iterable[JobState]) -> None:
        """Finished runs remembered by user and job name (kept on disk when one was added)."""
        if self.runs is not None and self.runs.observe(states) and not self.runs.save():
            self._errors["runs_write"] = self._errors.get("runs_write", 0) + 1

    def cycle(self) -> EstimatorSnapshot:
        start = time.perf_counter()
        with collector_paused(self.config.pause_gc):
            self._cycle(start)
        with self._lock:  # the collection at the end is part of the cycle's time
            self._snapshot = replace(
                self._snapshot, last_cycle_duration_s=time.perf_counter() - start
            )
            return self._snapshot

    def _cycle(self, start: float) -> EstimatorSnapshot:
        now = self._clock()
        q0 = self.client.queries
        try:
            tsdb = self._fetch(now)
        except PromError as err:
            return self._failed(err, now, start, self.client.queries - q0)
        for kind, n in tsdb.skipped.items():
            self._skipped[kind] = self._skipped.get(kind, 0) + n
        self._limit_splits += tsdb.limit_splits
        self._partial += tsdb.partial_responses
        combined = self.book.merge(tsdb, now)
        self.step.merge(combined, now)
        self._learn_runs(combined.states.values())
        if self.book.dropped and not self._snapshot.jobs_dropped:
            log.warning(
                "%d job(s) left out: the estimator tracks %d at most (--jobs.max-tracked)",
                self.book.dropped,
                self.book.max_jobs,
            )
        jobs = self.step.project_all(self.pre.for_running if self.pre.enabled else None)
        queue = forecast_queue(
            self._queued(),
            tsdb.fleet_gpus,
            self.pre.forecast if self.pre.enabled else None,
            self.runs,
        )
        finished = self.step.evaluate_finished(now)
        failures = self.pre.record_finished(finished)
        if failures:
            self._errors["history_write"] = self._errors.get("history_write", 0) + failures
        saved = (
            self._calibration_file.save(self.step.calibration)
            if finished and self._calibration_file is not None
            else True
        )
        if not saved:
            self._errors["calibration_write"] = self._errors.get("calibration_write", 0) + 1
        self.step.forget(now)
        log.debug(
            "cycle: %d jobs, %d queued, %d queries, %.3f s",
            len(jobs),
            len(queue),
            self.client.queries - q0,
            time.perf_counter() - start,
        )
        if self._outage_logged:
            log.info("Prometheus answers again; estimates are fresh")
        self._outage_logged = False
        self._last_success = now
        snap = EstimatorSnapshot(
            jobs=jobs,
            errors_by_job=self.step.errors_by_job(),
            summary=self.step.summary(),
            carbon_intensity=tsdb.carbon_intensity,
            queue=queue,
            fleet_gpus=tsdb.fleet_gpus,
            calibration=self.pre.calibration(),
            last_success_s=now,
            last_cycle_duration_s=time.perf_counter() - start,
            last_cycle_queries=self.client.queries - q0,
            stale=False,
            cycles=self._snapshot.cycles + 1,
            errors=dict(self._errors),
            skipped_samples=dict(self._skipped),
            calibration_jobs=self.step.calibration.sizes(),
            calibration_min_jobs=self.step.calibration.min_jobs,
            jobs_dropped=self.book.dropped,
            limit_splits=self._limit_splits,
            partial_responses=self._partial,
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

    def retrain_now(self) -> bool:
        return self.pre.retrain_now()

    def retrain_loop(self, interval_s: float, stop: threading.Event) -> None:
        self.pre.retrain_loop(interval_s, stop)

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
                with self._lock:  # served as stale: /healthz says so, alerts can fire
                    prev = self._snapshot
                    self._snapshot = replace(
                        prev,
                        stale=True,
                        stale_since_s=prev.stale_since_s if prev.stale else self._clock(),
                        cycles=prev.cycles + 1,
                        errors=dict(self._errors),
                    )
            stop.wait(max(0.0, interval_s - (time.monotonic() - started)))
