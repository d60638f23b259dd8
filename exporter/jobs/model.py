"""The job record kept by the registry, persisted by the store, rendered by the collector."""

from __future__ import annotations

from dataclasses import dataclass, field

from joulecast.schema import JobSpec


class JobError(Exception):
    """A marker cannot be applied. ``status`` is the HTTP status the API answers with."""

    status = 400

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        if status is not None:
            self.status = status


class UnknownJob(JobError):
    status = 404


class Conflict(JobError):
    status = 409


class TooManyJobs(JobError):
    status = 429


@dataclass
class JobRecord:
    spec: JobSpec
    gpus: tuple[int, ...]  # resolved physical GPU indices; empty with pid-based attribution
    created_at: float
    epochs_planned: float
    epochs_completed: int = 0
    energy_joules: float = 0.0  # attributed GPU energy, idle share included
    idle_energy_joules: float = 0.0  # the idle-power part of energy_joules
    epoch_end_energy_joules: float = 0.0  # energy_joules at the last epoch end
    epoch_end_timestamp: float | None = None
    finished_at: float | None = None
    last_metrics: dict[str, float] = field(default_factory=dict)
    utilization_seconds: float = 0.0  # integral of mean GPU utilization over time
    busy_seconds: float = 0.0
    tdp_watts: float = 0.0  # sum of default power limits of the job's GPUs (last known)
    gpu_memory_bytes: float = 0.0
    gpu_models: tuple[str, ...] = ()
    #: GPUs on which a pid-attributed job's processes were seen (relearned after a restart)
    seen_gpus: tuple[int, ...] = ()
    outcome: str | None = None  # "finished" or "failed" once the job ended

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def live(self) -> bool:
        return self.finished_at is None

    @property
    def mean_utilization(self) -> float | None:
        return self.utilization_seconds / self.busy_seconds if self.busy_seconds > 0 else None

    def public(self) -> dict:
        """The JSON view served by ``GET /api/v1/jobs``."""
        return {
            **self.spec.as_dict(),
            "epochs_planned": self.epochs_planned,
            "attributed_gpus": list(self.gpus),
            "created_at": self.created_at,
            "epochs_completed": self.epochs_completed,
            "energy_joules": round(self.energy_joules, 3),
            "idle_energy_joules": round(self.idle_energy_joules, 3),
            "epoch_end_energy_joules": round(self.epoch_end_energy_joules, 3),
            "epoch_end_timestamp": self.epoch_end_timestamp,
            "finished_at": self.finished_at,
            "state": "running" if self.live else (self.outcome or "finished"),
            "last_metrics": self.last_metrics,
        }
