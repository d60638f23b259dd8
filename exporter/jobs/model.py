"""The job record kept by the registry, persisted by the store, rendered by the collector."""

from __future__ import annotations

from dataclasses import dataclass, field

from joulecast.schema import LOST, EpochMarker, JobSpec


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
    outcome: str | None = None  # "finished", "failed" or "lost" once the job ended
    # -- progress below the epoch (step markers) --
    steps_planned: int | None = None
    steps_completed: int = 0
    step_end_energy_joules: float = 0.0  # energy_joules at the last step marker
    step_end_timestamp: float | None = None
    tokens_completed: int | None = None
    steps_rewindable: bool = False  # continued since the last step marker: may go back
    summary: dict[str, float] = field(default_factory=dict)  # the run's own end summary
    # -- the client's energy budget (joulecast.budget): None until it first reports --
    budget_over: bool | None = None
    budget_crossings: int = 0
    budget_projected_joules: float | None = None  # what the client compared at the last one
    # -- liveness --
    #: the job's processes this exporter can see: (pid, start time), checked for reuse
    processes: tuple[tuple[int, float], ...] = ()
    last_alive: float | None = None  # last time a process or a heartbeat was seen
    last_heartbeat: float | None = None
    #: all known processes gone (or the heartbeat stopped) since then: not charged; ended
    #: as lost once this is older than the grace period
    gone_since: float | None = None

    @property
    def job_id(self) -> str:
        return self.spec.job_id

    @property
    def live(self) -> bool:
        return self.finished_at is None

    @property
    def charged(self) -> bool:
        """Live and not known to be gone: its GPUs' energy is attributed to it."""
        return self.finished_at is None and self.gone_since is None

    @property
    def lost(self) -> bool:
        return self.outcome == LOST

    def state(self) -> str:
        return "running" if self.live else (self.outcome or "finished")

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
            "state": self.state(),
            "last_metrics": self.last_metrics,
            "steps_planned": self.steps_planned,
            "steps_completed": self.steps_completed,
            "step_end_energy_joules": round(self.step_end_energy_joules, 3),
            "step_end_timestamp": self.step_end_timestamp,
            "tokens_completed": self.tokens_completed,
            "summary": self.summary,
            "budget_over": self.budget_over,
            "budget_crossings": self.budget_crossings,
            "budget_projected_joules": self.budget_projected_joules,
            "processes_alive": self.gone_since is None and bool(self.processes),
            "gone_since": self.gone_since,
        }

    def extra(self) -> dict:
        """What the store keeps beside the fixed columns (one JSON column)."""
        return {
            "steps_planned": self.steps_planned,
            "steps_completed": self.steps_completed,
            "step_end_energy_joules": self.step_end_energy_joules,
            "step_end_timestamp": self.step_end_timestamp,
            "tokens_completed": self.tokens_completed,
            "summary": self.summary,
            "budget_over": self.budget_over,
            "budget_crossings": self.budget_crossings,
            "budget_projected_joules": self.budget_projected_joules,
            "processes": [list(p) for p in self.processes],
            "last_alive": self.last_alive,
            "last_heartbeat": self.last_heartbeat,
            "gone_since": self.gone_since,
        }


#: JobRecord fields a marker, a finish or a liveness check may change (applied in place)
MUTABLE = (
    "epochs_completed",
    "epoch_end_energy_joules",
    "epoch_end_timestamp",
    "last_metrics",
    "epochs_planned",
    "finished_at",
    "outcome",
    "steps_planned",
    "steps_completed",
    "step_end_energy_joules",
    "step_end_timestamp",
    "tokens_completed",
    "steps_rewindable",
    "summary",
    "budget_over",
    "budget_crossings",
    "budget_projected_joules",
    "processes",
    "last_alive",
    "last_heartbeat",
    "gone_since",
)


def plan_after(marker: EpochMarker, planned: float) -> float:
    """The plan once ``marker.epoch`` ended: a job that runs past its plan is planned at what
    it ran; a fractional plan whose last, partial epoch this is stays as it is; a plan not
    known (0) stays unknown."""
    plan = marker.epochs_planned or planned
    return plan if not plan or plan > marker.epoch - 1 else marker.epoch


def apply_changes(record: JobRecord, updated: JobRecord) -> None:
    """Copy what may change into ``record`` in place (the GPU index keeps pointing at it)."""
    for name in MUTABLE:
        setattr(record, name, getattr(updated, name))
