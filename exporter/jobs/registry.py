"""The job registry: applies markers, attributes GPU energy to jobs, enforces limits.

Attribution rule (documented in docs/exporter.md):

* A job's GPUs are the ones it declared (indices, GPU or MIG UUIDs, e.g. from
  ``CUDA_VISIBLE_DEVICES`` or Slurm), else the GPUs on which one of its PIDs runs a compute
  process (refreshed every sample), else, with neither declared, every GPU of the node.
  A MIG instance resolves to its parent board.
* In every sampling interval, a board's energy is split equally among the live jobs on it.
* The part of that energy up to the board's idle power is reported apart, as idle energy.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, replace

from exporter.devices.base import GpuInfo
from exporter.jobs.model import Conflict, JobError, JobRecord, TooManyJobs, UnknownJob
from exporter.jobs.store import JobStore
from joulecast.schema import EpochMarker, JobSpec


@dataclass(frozen=True)
class GpuDirectory:
    """The node's GPUs as the registry needs them: indices, UUIDs, TDP, memory."""

    infos: tuple[GpuInfo, ...]

    def resolve_uuid(self, uuid: str) -> int | None:
        for g in self.infos:
            if g.uuid == uuid or any(m.uuid == uuid for m in g.mig):
                return g.index
        return None

    def indices(self) -> tuple[int, ...]:
        return tuple(g.index for g in self.infos)

    def info(self, index: int) -> GpuInfo | None:
        for g in self.infos:
            if g.index == index:
                return g
        return None


class JobRegistry:
    def __init__(
        self,
        gpus: GpuDirectory,
        store: JobStore | None = None,
        *,
        max_live_jobs: int = 1000,
        finished_ttl_s: float = 3600.0,
        clock: Callable[[], float] | None = None,
    ) -> None:
        import time

        self._clock = clock or time.time
        self._gpus = gpus
        self._store = store
        self.max_live_jobs = max_live_jobs
        self.finished_ttl_s = finished_ttl_s
        self._lock = threading.Lock()
        self._jobs: dict[str, JobRecord] = {}
        self._by_gpu: dict[int, list[JobRecord]] = {}
        self._pid_jobs: list[JobRecord] = []
        if store is not None:
            for record in store.load():
                self._fill_gpu_facts(record)
                self._jobs[record.job_id] = record
            self._reindex()

    # -- helpers (lock held) -------------------------------------------------------------
    def _reindex(self) -> None:
        by_gpu: dict[int, list[JobRecord]] = {}
        pid_jobs = []
        for r in self._jobs.values():
            if not r.live:
                continue
            if r.gpus:
                for g in r.gpus:
                    by_gpu.setdefault(g, []).append(r)
            else:
                pid_jobs.append(r)
        self._by_gpu, self._pid_jobs = by_gpu, pid_jobs

    def _fill_gpu_facts(self, r: JobRecord) -> None:
        infos = [self._gpus.info(i) for i in r.gpus]
        infos = [g for g in infos if g is not None]
        r.tdp_watts = sum(g.default_power_limit_watts or 0.0 for g in infos)
        r.gpu_memory_bytes = float(sum(g.memory_total_bytes or 0 for g in infos))
        r.gpu_models = tuple(sorted({g.model for g in infos}))

    def _resolve_gpus(self, spec: JobSpec) -> tuple[int, ...]:
        known = set(self._gpus.indices())
        out: list[int] = []
        for i in spec.gpus:
            if i not in known:
                have = ", ".join(map(str, sorted(known))) or "none"
                raise JobError(f"unknown GPU index {i}; this node has GPUs: {have}")
            out.append(i)
        for uuid in spec.gpu_uuids:
            i = self._gpus.resolve_uuid(uuid)
            if i is None:
                raise JobError(f"unknown GPU UUID {uuid} on this node")
            out.append(i)
        if not out and not spec.pids:
            out = list(self._gpus.indices())
        return tuple(sorted(set(out)))

    def _get(self, job_id: str) -> JobRecord:
        record = self._jobs.get(job_id)
        if record is None:
            raise UnknownJob(f"unknown job '{job_id}'")
        return record

    def _persist(self, record: JobRecord, epoch_metrics: dict[str, float] | None = None) -> None:
        if self._store is not None:
            self._store.save(record, epoch_metrics)

    # -- API -----------------------------------------------------------------------------
    def register(self, spec: JobSpec) -> tuple[JobRecord, bool]:
        """Register a job. Returns (record, created). Re-posting the same spec is a no-op."""
        now = self._clock()
        with self._lock:
            existing = self._jobs.get(spec.job_id)
            if existing is not None:
                if existing.spec == spec and existing.live:
                    return replace(existing), False
                raise Conflict(f"job '{spec.job_id}' already exists")
            live = sum(1 for r in self._jobs.values() if r.live)
            if live >= self.max_live_jobs:
                raise TooManyJobs(f"{live} live jobs: the limit ({self.max_live_jobs}) is reached")
            record = JobRecord(
                spec=spec,
                gpus=self._resolve_gpus(spec),
                created_at=now,
                epochs_planned=spec.epochs_planned,
            )
            self._fill_gpu_facts(record)
            self._persist(record)
            self._jobs[spec.job_id] = record
            self._reindex()
            return replace(record), True

    def mark_epoch(self, job_id: str, marker: EpochMarker) -> JobRecord:
        now = self._clock()
        with self._lock:
            record = self._get(job_id)
            if not record.live:
                raise Conflict(f"job '{job_id}' is finished")
            last = record.epochs_completed
            if marker.epoch == last:
                raise Conflict(f"epoch {marker.epoch} of job '{job_id}' is already marked")
            if marker.epoch < last:
                raise Conflict(
                    f"epoch {marker.epoch} is out of order: job '{job_id}' is at epoch {last}"
                )
            # A forward gap (markers lost while the exporter was down) is accepted: the
            # energy at this epoch end is still exact, the missing epochs are just merged.
            updated = replace(
                record,
                epochs_completed=marker.epoch,
                epoch_end_energy_joules=record.energy_joules,
                epoch_end_timestamp=now,
                last_metrics=dict(marker.metrics),
                epochs_planned=max(marker.epochs_planned or record.epochs_planned, marker.epoch),
            )
            self._persist(updated, dict(marker.metrics))
            self._apply(record, updated)
            return replace(record)

    def finish(self, job_id: str) -> JobRecord:
        now = self._clock()
        with self._lock:
            record = self._get(job_id)
            if not record.live:
                return replace(record)  # idempotent
            updated = replace(record, finished_at=now)
            self._persist(updated)
            self._apply(record, updated)
            self._reindex()
            return replace(record)

    def _apply(self, record: JobRecord, updated: JobRecord) -> None:
        # Mutate in place so the GPU index keeps pointing at the same object.
        for name in (
            "epochs_completed",
            "epoch_end_energy_joules",
            "epoch_end_timestamp",
            "last_metrics",
            "epochs_planned",
            "finished_at",
        ):
            setattr(record, name, getattr(updated, name))

    def get(self, job_id: str) -> JobRecord:
        with self._lock:
            return replace(self._get(job_id))

    def epochs(self, job_id: str) -> list[dict]:
        self.get(job_id)
        return self._store.epochs(job_id) if self._store is not None else []

    def snapshot(self) -> list[JobRecord]:
        with self._lock:
            return [replace(r) for r in self._jobs.values()]

    def live_count(self) -> int:
        with self._lock:
            return sum(1 for r in self._jobs.values() if r.live)

    def busy(self, gpu_index: int) -> bool:
        """Whether a live job is on a GPU (drives the simulated backend's load)."""
        with self._lock:
            return bool(self._by_gpu.get(gpu_index))

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
            jobs = list(self._by_gpu.get(gpu_index, ()))
            if pids and self._pid_jobs:
                running = set(pids)
                jobs += [r for r in self._pid_jobs if running.intersection(r.spec.pids)]
            if not jobs:
                return
            share, idle_share = joules / len(jobs), idle_joules / len(jobs)
            for r in jobs:
                r.energy_joules += share
                r.idle_energy_joules += idle_share
                if utilization is not None:
                    r.utilization_seconds += utilization * dt
                    r.busy_seconds += dt

    def checkpoint(self) -> None:
        with self._lock:
            records = [replace(r) for r in self._jobs.values() if r.live]
        if self._store is not None:
            self._store.checkpoint(records)

    def expire(self) -> list[str]:
        """Forget finished jobs older than the TTL. Returns the ids removed."""
        now = self._clock()
        with self._lock:
            gone = [
                j
                for j, r in self._jobs.items()
                if r.finished_at is not None and now - r.finished_at > self.finished_ttl_s
            ]
            for j in gone:
                del self._jobs[j]
        if gone and self._store is not None:
            self._store.delete(gone)
        return gone
