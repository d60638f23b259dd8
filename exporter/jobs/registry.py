"""The job registry: the jobs of this node, under one lock. It applies markers (register,
epochs, steps, heartbeats, finish), hands each sampling interval's energy to the jobs on a
board (the rule: ``attribution.py``), keeps the liveness verdicts (``liveness.py``) and the
limits on live and finished jobs (``limits.py``), and persists through ``store.py``.
"""

from __future__ import annotations

import contextlib
import sqlite3
import threading
import time
from collections.abc import Callable
from dataclasses import replace

from joulecast.exporter.jobs import attribution, limits, liveness, resume
from joulecast.exporter.jobs.attribution import GpuIndex
from joulecast.exporter.jobs.gpus import GpuDirectory
from joulecast.exporter.jobs.history import EnergyHistory, energy_at
from joulecast.exporter.jobs.model import Conflict, JobRecord, UnknownJob, apply_changes, plan_after
from joulecast.exporter.jobs.store import JobStore
from joulecast.schema import LOST, BudgetEvent, EpochMarker, FinishMarker, JobSpec, StepMarker


class JobRegistry:
    def __init__(
        self,
        gpus: GpuDirectory,
        store: JobStore | None = None,
        *,
        max_live_jobs: int = 1000,
        max_finished_jobs: int = 1000,
        finished_ttl_s: float = 3600.0,
        lost_after_s: float = 30.0,
        clock: Callable[[], float] | None = None,
        processes: liveness.ProcessTable = liveness.psutil_table,
    ) -> None:
        self._clock = clock or time.time
        self._processes = processes
        self.lost_after_s = lost_after_s
        self._gpus = gpus
        self._store = store
        self.max_live_jobs = max_live_jobs
        self.max_finished_jobs = max_finished_jobs
        self.finished_ttl_s = finished_ttl_s
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._index = GpuIndex()
        self._history: dict[str, EnergyHistory] = {}  # live jobs' recent energy counters
        if store is not None:
            now = self._clock()
            for record in store.load():
                self._fill_gpu_facts(record)
                self._jobs[record.job_id] = record
                if record.live:
                    self._history[record.job_id] = EnergyHistory()
                    self._history[record.job_id].add(now, record.energy_joules)
            self._reindex()

    # -- helpers (lock held) -------------------------------------------------------------
    def _reindex(self) -> None:
        self._index = attribution.index(self._jobs.values(), self._gpus)

    def _fill_gpu_facts(self, r: JobRecord) -> None:
        attribution.fill_gpu_facts(r, self._gpus)

    def _resolve_gpus(self, spec: JobSpec) -> tuple[int, ...]:
        return attribution.resolve_gpus(spec, self._gpus)

    def _get(self, job_id: str) -> JobRecord:
        if (record := self._jobs.get(job_id)) is None:
            raise UnknownJob(f"unknown job '{job_id}'")
        return record

    def _persist(self, record: JobRecord, epoch_metrics: dict[str, float] | None = None) -> None:
        if self._store is not None:
            self._store.save(record, epoch_metrics)

    # -- API -----------------------------------------------------------------------------
    def register(self, spec: JobSpec, started_at: float | None = None) -> tuple[JobRecord, bool]:
        """Register a job; (record, created). The same id again continues the job (a
        resumed run, reopened if it ended; another rank, whose PIDs and GPUs are added);
        ``start_epoch`` below the epochs recorded forgets the later ones. A scheduler source
        gives its ``started_at`` (energy before registration is not charged either way)."""
        now = self._clock()
        created = now if started_at is None else min(started_at, now)
        with self._lock:
            existing = self._jobs.get(spec.job_id)
            if existing is not None:
                return self._continue(existing, spec, now), False
            limits.require_room(self._jobs.values(), self.max_live_jobs)
            record = JobRecord(
                spec=replace(spec, start_epoch=None),
                gpus=self._resolve_gpus(spec),
                created_at=created,
                epochs_planned=spec.epochs_planned,
                steps_planned=spec.steps_planned,
                processes=liveness.seen(spec.pids, self._processes),
                last_alive=now,
                last_heartbeat=now if spec.heartbeat_s else None,
            )
            self._fill_gpu_facts(record)
            self._persist(record)
            self._jobs[spec.job_id] = record
            self._history[spec.job_id] = EnergyHistory()
            self._history[spec.job_id].add(now, 0.0)
            self._reindex()
            return replace(record), True

    def _continue(self, record: JobRecord, spec: JobSpec, now: float) -> JobRecord:
        if not record.live:
            limits.require_room(self._jobs.values(), self.max_live_jobs)
        updated = resume.continued(record, spec, now, self._processes)
        updated = replace(updated, gpus=self._resolve_gpus(updated.spec))
        start = spec.start_epoch
        if start is not None and start < record.epochs_completed:
            if self._store is not None:
                self._store.truncate_epochs(record.job_id, start)
                row = self._store.epoch(record.job_id, start) if start > 0 else None
            else:
                row = None
            updated = replace(
                updated,
                epochs_completed=start,
                epoch_end_energy_joules=row["energy_joules"] if row else 0.0,
                epoch_end_timestamp=row["timestamp"] if row else None,
            )
        self._persist(updated)
        record.spec, record.gpus = updated.spec, updated.gpus
        apply_changes(record, updated)
        self._fill_gpu_facts(record)
        self._history.setdefault(record.job_id, EnergyHistory()).add(now, record.energy_joules)
        self._reindex()
        return replace(record)

    def _charge(self, record: JobRecord, at: float | None, now: float) -> tuple[float, float]:
        """(energy, timestamp) of a marker that ended at ``at``; a marker is a heartbeat too."""
        if record.spec.heartbeat_s:
            record.last_heartbeat = now
        return energy_at(self._history.get(record.job_id), record.energy_joules, at, now)

    @staticmethod
    def _require_live(record: JobRecord) -> None:
        if not record.live:
            raise Conflict(f"job '{record.job_id}' is {record.outcome or 'finished'}")

    def _duplicate(self, record: JobRecord, marker: EpochMarker) -> bool:
        """Whether ``marker`` repeats an epoch already recorded with the same metrics."""
        if marker.epoch == record.epochs_completed:
            return dict(marker.metrics) == record.last_metrics
        if self._store is not None:
            row = self._store.epoch(record.job_id, marker.epoch)
            return row is not None and row["metrics"] == dict(marker.metrics)
        return False

    def mark_epoch(self, job_id: str, marker: EpochMarker) -> JobRecord:
        """Record an epoch end. Re-posting a recorded epoch with the same metrics is a
        no-op (a retry whose answer was lost); anything else at or before the last epoch
        is a conflict."""
        now = self._clock()
        with self._lock:
            record = self._get(job_id)
            last = record.epochs_completed
            if marker.epoch <= last and self._duplicate(record, marker):
                return replace(record)
            self._require_live(record)
            if marker.epoch == last:
                raise Conflict(f"epoch {marker.epoch} of job '{job_id}' is already marked")
            if marker.epoch < last:
                raise Conflict(
                    f"epoch {marker.epoch} is out of order: job '{job_id}' is at epoch {last}"
                )
            # A forward gap (markers lost while the exporter was down) is accepted: the
            # energy at this epoch end is still exact, the missing epochs are just merged.
            energy, at = self._charge(record, marker.time, now)
            updated = replace(
                record,
                epochs_completed=marker.epoch,
                epoch_end_energy_joules=max(energy, record.epoch_end_energy_joules),
                epoch_end_timestamp=at,
                last_metrics=dict(marker.metrics),
                epochs_planned=plan_after(marker, record.epochs_planned),
            )
            self._persist(updated, dict(marker.metrics))
            apply_changes(record, updated)
            return replace(record)

    def finish(
        self,
        job_id: str,
        marker: FinishMarker | None = None,
        *,
        at: float | None = None,
        verdict: bool = False,
    ) -> JobRecord:
        """End a job (idempotent) at ``at``; a scheduler's ``verdict`` also replaces the
        outcome its client gave. What was charged after ``at`` stays charged: the job's
        energy is a Prometheus counter, and one that went down would read as a reset
        (``increase()`` would count the job twice)."""
        now = self._clock()
        outcome = (marker or FinishMarker()).outcome
        with self._lock:
            record = self._get(job_id)
            if not record.live:  # idempotent; a verdict corrects the outcome
                if verdict and record.outcome != outcome:
                    record.outcome = outcome
                    self._persist(record)
                return replace(record)
            summary = dict((marker.summary if marker else {}) or record.summary)
            end = now if at is None else max(min(at, now), record.created_at)
            updated = replace(record, finished_at=end, outcome=outcome, summary=summary)
            self._end(record, updated)
        self._trim_finished()
        return replace(record)

    def _end(self, record: JobRecord, updated: JobRecord) -> None:
        self._persist(updated)
        apply_changes(record, updated)
        self._history.pop(record.job_id, None)
        self._reindex()

    def _trim_finished(self) -> None:
        with self._lock:
            over = limits.over(self._jobs.values(), self.max_finished_jobs)
        if over:  # a failed delete is counted and logged by the store; the finish is saved
            with contextlib.suppress(sqlite3.Error):
                self.expire()

    def mark_steps(self, job_id: str, marker: StepMarker) -> JobRecord:
        """Record step progress. The same step again is a no-op; a step below the recorded
        one is a conflict unless the job was continued since (a resumed run)."""
        now = self._clock()
        with self._lock:
            record = self._get(job_id)
            if marker.step == record.steps_completed:
                return replace(record)
            self._require_live(record)
            if marker.step < record.steps_completed and not record.steps_rewindable:
                raise Conflict(
                    f"step {marker.step} is out of order: job '{job_id}' is at step "
                    f"{record.steps_completed}"
                )
            energy, at = self._charge(record, marker.time, now)
            updated = replace(
                record,
                steps_completed=marker.step,
                step_end_energy_joules=energy,
                step_end_timestamp=at,
                steps_planned=marker.steps_planned or record.steps_planned,
                tokens_completed=record.tokens_completed
                if marker.tokens is None
                else marker.tokens,
                steps_rewindable=False,
            )
            self._persist(updated)
            apply_changes(record, updated)
            return replace(record)

    def heartbeat(self, job_id: str) -> JobRecord:
        """The client of a job is alive (a job whose processes this exporter cannot see)."""
        now = self._clock()
        with self._lock:
            record = self._get(job_id)
            self._require_live(record)
            record.last_heartbeat = now
            if not record.processes and record.gone_since is not None:
                record.gone_since = None  # beats again: charged again
                self._reindex()
            return replace(record)

    def note_budget(self, job_id: str, event: BudgetEvent) -> JobRecord:
        """The client's projection crossed the job's energy budget, or fell back under."""
        with self._lock:
            record = self._get(job_id)
            record.budget_over, record.budget_crossings = event.over, record.budget_crossings + 1
            record.budget_projected_joules = event.projected_joules
            self._persist(record)
            return replace(record)

    def check_liveness(self, now: float | None = None) -> list[str]:
        """Stop charging live jobs whose processes are all gone; end as lost those gone for
        the grace period. Returns the ids ended as lost."""
        now = self._clock() if now is None else now
        lost: list[str] = []
        with self._lock:
            changed = False
            for r in [r for r in self._jobs.values() if r.live]:
                verdict = liveness.alive(
                    r.processes, r.spec.heartbeat_s, r.last_heartbeat, now, self._processes
                )
                if verdict is None:
                    continue
                if verdict:
                    r.last_alive = now
                    changed |= r.gone_since is not None
                    r.gone_since = None
                    continue
                if r.gone_since is None:
                    r.gone_since = r.last_heartbeat if not r.processes else (r.last_alive or now)
                    changed = True
                    self._persist(r)
                if now - r.gone_since >= self.lost_after_s:
                    self._end(r, replace(r, finished_at=r.gone_since, outcome=LOST))
                    lost.append(r.job_id)
            if changed:
                self._reindex()
        if lost:
            self._trim_finished()
        return lost

    def note_sample(self, now: float) -> None:
        """After a sampling round: remember each live job's counter at ``now``."""
        with self._lock:
            for job_id, hist in self._history.items():
                record = self._jobs.get(job_id)
                if record is not None:
                    hist.add(now, record.energy_joules)

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            return replace(self._get(job_id))

    def epochs(self, job_id: str) -> list[dict]:
        return self.epoch_page(job_id)[0]  # every stored epoch of the job, in order

    def epoch_page(self, job_id: str, offset: int = 0, limit: int = -1) -> tuple[list[dict], int]:
        """A page of the job's stored epochs and their total."""
        self.get(job_id)
        return self._store.epochs(job_id, offset, limit) if self._store is not None else ([], 0)

    def snapshot(self) -> list[JobRecord]:
        with self._lock:
            return [replace(r) for r in self._jobs.values()]

    def store_health(self) -> tuple[bool, str]:
        return self._store.healthy() if self._store is not None else (True, "no state store")

    def store_write_failures(self) -> int:
        return 0 if self._store is None else self._store.write_failures

    def live_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._jobs.values() if r.live)

    def busy(self, gpu_index: int) -> bool:
        """Whether a live job is on a GPU (drives the simulated backend's load)."""
        with self._lock:
            return bool(self._index.by_gpu.get(gpu_index))

    # -- sampler side --------------------------------------------------------------------
    def attribute(
        self,
        gpu_index: int,
        joules: float,
        idle_joules: float,
        utilization: float | None,
        dt: float,
        pids: tuple[int, ...] = (),
    ) -> None:
        """Split one sampling interval's energy of one board among its live jobs."""
        with self._lock:
            jobs, fresh = attribution.jobs_on(self._index, gpu_index, pids)
            for r in fresh:  # its baselines count this GPU now
                self._fill_gpu_facts(r)
            if not jobs:
                return
            shares = [self._index.mig_shares.get((r.job_id, gpu_index)) for r in jobs]
            split = attribution.split(shares, joules, idle_joules)
            for r, (energy, idle) in zip(jobs, split, strict=True):
                r.energy_joules += energy
                r.idle_energy_joules += idle
                if utilization is not None:
                    r.utilization_seconds += utilization * dt
                    r.busy_seconds += dt

    def checkpoint(self) -> None:
        with self._lock:
            records = [replace(r) for r in self._jobs.values() if r.live]
        if self._store is not None:
            self._store.checkpoint(records)

    def expire(self) -> list[str]:
        """Forget finished jobs past the TTL or past ``max_finished_jobs`` (the oldest), so
        that what is published stays bounded. Returns the ids removed."""
        now = self._clock()
        with self._lock:
            gone = limits.expired(
                self._jobs.values(), now, self.max_finished_jobs, self.finished_ttl_s
            )
            for j in gone:
                del self._jobs[j]
                self._history.pop(j, None)
        if gone and self._store is not None:
            self._store.delete(gone)
        return gone
