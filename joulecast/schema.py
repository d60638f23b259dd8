"""The job-marker payload schema shared by the training client and the exporter.

Standard library only. Every payload a training script sends to the exporter is parsed
here into a dataclass; anything else raises :class:`SchemaError` with a message fit to be
returned to the user as a 4xx body.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from joulecast.fields import LABEL_SAFE as LABEL_SAFE
from joulecast.fields import SchemaError as SchemaError
from joulecast.fields import (
    int_in,
    int_list,
    number_in,
    optional_int,
    reject_unknown,
    require_object,
)
from joulecast.labels import NUMERIC_FEATURES as NUMERIC_FEATURES
from joulecast.labels import SCHEDULER_LABELS as SCHEDULER_LABELS
from joulecast.labels import STRING_FEATURES as STRING_FEATURES
from joulecast.labels import JobFeatures as JobFeatures
from joulecast.labels import SchedulerLabels as SchedulerLabels
from joulecast.labels import parse_features as parse_features
from joulecast.labels import parse_scheduler_labels

JOB_ID_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:-]{0,127}$")
MAX_EPOCHS = 100_000  # a job's epochs (plan and markers); step-based runs count steps
MAX_STEPS = 10**12
MAX_TOKENS = 10**16
MAX_GPU_INDEX = 1023
MAX_GPUS_PER_JOB = 256
MAX_PIDS_PER_JOB = 1024
MAX_PID = 2**22


@dataclass(frozen=True)
class JobSpec:
    """``POST /api/v1/jobs``: register a job."""

    job_id: str
    epochs_planned: float  # whole epochs, or fractional (a step budget ends mid-epoch)
    gpus: tuple[int, ...] = ()
    gpu_uuids: tuple[str, ...] = ()
    pids: tuple[int, ...] = ()
    features: JobFeatures = field(default_factory=JobFeatures)
    #: Set by a resumed run: the epochs already trained (markers after it are re-trained).
    start_epoch: int | None = None
    #: Optimizer steps the run plans (``max_steps``, Lightning's estimated stepping batches).
    steps_planned: int | None = None
    #: The client beats every ``heartbeat_s`` s: a job without a process the exporter can
    #: see is lost when the beats stop.
    heartbeat_s: float | None = None
    #: Set by a scheduler source (or a client that reads its scheduler's environment).
    scheduler: SchedulerLabels | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"job_id": self.job_id, "epochs_planned": self.epochs_planned}
        if self.scheduler is not None:
            out["scheduler"] = self.scheduler.as_dict()
        if self.start_epoch is not None:
            out["start_epoch"] = self.start_epoch
        if self.steps_planned is not None:
            out["steps_planned"] = self.steps_planned
        if self.heartbeat_s is not None:
            out["heartbeat_s"] = self.heartbeat_s
        if self.gpus:
            out["gpus"] = list(self.gpus)
        if self.gpu_uuids:
            out["gpu_uuids"] = list(self.gpu_uuids)
        if self.pids:
            out["pids"] = list(self.pids)
        feats = self.features.as_dict()
        if feats:
            out["features"] = feats
        return out


@dataclass(frozen=True)
class EpochMarker:
    """``POST /api/v1/jobs/{job_id}/epochs``: epoch ``epoch`` has ended."""

    epoch: int
    metrics: dict[str, float] = field(default_factory=dict)
    epochs_planned: float | None = None  # a job may extend or shorten its plan
    #: Wall time (Unix seconds) of the epoch end as the client measured it: the exporter
    #: charges the epoch the job's energy at that time, however late the marker arrives.
    time: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"epoch": self.epoch}
        if self.time is not None:
            out["time"] = self.time
        if self.metrics:
            out["metrics"] = dict(self.metrics)
        if self.epochs_planned is not None:
            out["epochs_planned"] = self.epochs_planned
        return out


@dataclass(frozen=True)
class StepMarker:
    """``POST /api/v1/jobs/{job_id}/steps``: the run has done ``step`` optimizer steps (and
    optionally ``tokens`` tokens), measured at ``time`` (client wall clock)."""

    step: int
    steps_planned: int | None = None
    tokens: int | None = None
    time: float | None = None

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"step": self.step}
        for name in ("steps_planned", "tokens", "time"):
            value = getattr(self, name)
            if value is not None:
                out[name] = value
        return out


def planned_epochs(value: Any) -> float:
    """Planned epochs: a whole number, or a fraction when training stops on a step budget
    mid-epoch (Hugging Face ``max_steps``), kept as an int if whole; 0 when not known (a job
    found by a scheduler, before its client, if any, says)."""
    n = number_in(value, "epochs_planned", 0.0, MAX_EPOCHS)
    return int(n) if float(n).is_integer() else round(n, 3)


def validate_job_id(job_id: Any) -> str:
    if not isinstance(job_id, str) or not JOB_ID_PATTERN.fullmatch(job_id):
        raise SchemaError(
            "'job_id' must be 1-128 characters of letters, digits, '_', '.', ':' or '-', "
            "starting with a letter or digit"
        )
    return job_id


def parse_gpu_selector(value: Any) -> tuple[tuple[int, ...], tuple[str, ...]]:
    """Parse ``gpus``: integers, or a ``CUDA_VISIBLE_DEVICES``-style list of indices/UUIDs."""
    if isinstance(value, str):
        value = [v.strip() for v in value.split(",") if v.strip()]
    if not isinstance(value, list):
        raise SchemaError("'gpus' must be a list of GPU indices or UUIDs")
    if len(value) > MAX_GPUS_PER_JOB:
        raise SchemaError(f"'gpus' has more than {MAX_GPUS_PER_JOB} entries")
    indices: list[int] = []
    uuids: list[str] = []
    for v in value:
        if isinstance(v, str) and v.isascii() and v.isdigit():
            if len(v) > 6:
                raise SchemaError(f"'gpus': index {v[:12]}... is out of range")
            v = int(v)
        if isinstance(v, str):
            if not re.fullmatch(r"(GPU|MIG)-[A-Za-z0-9/-]{1,80}", v):
                raise SchemaError(f"'gpus' entry {v[:90]!r} is neither an index nor a GPU/MIG UUID")
            uuids.append(v)
        else:
            indices.append(int_in(v, "gpus[]", 0, MAX_GPU_INDEX))
    if len(set(indices)) != len(indices) or len(set(uuids)) != len(uuids):
        raise SchemaError("'gpus' has duplicate entries")
    return tuple(indices), tuple(uuids)


def parse_job_spec(payload: Any) -> JobSpec:
    payload = require_object(payload, "job")
    reject_unknown(
        payload,
        {
            "job_id",
            "epochs_planned",
            "gpus",
            "gpu_uuids",
            "pids",
            "features",
            "start_epoch",
            "steps_planned",
            "heartbeat_s",
            "scheduler",
        },
        "job",
    )
    if "job_id" not in payload:
        raise SchemaError("'job_id' is required")
    if "epochs_planned" not in payload:
        raise SchemaError("'epochs_planned' is required")
    gpus: tuple[int, ...] = ()
    uuids: tuple[str, ...] = ()
    if payload.get("gpus") is not None:
        gpus, uuids = parse_gpu_selector(payload["gpus"])
    if payload.get("gpu_uuids") is not None:
        _, more = parse_gpu_selector(payload["gpu_uuids"])
        uuids = tuple(dict.fromkeys(uuids + more))
    pids: tuple[int, ...] = ()
    if payload.get("pids") is not None:
        pids = int_list(payload["pids"], "pids", MAX_PID, MAX_PIDS_PER_JOB)
    return JobSpec(
        job_id=validate_job_id(payload["job_id"]),
        epochs_planned=planned_epochs(payload["epochs_planned"]),
        gpus=gpus,
        gpu_uuids=uuids,
        pids=pids,
        features=parse_features(payload.get("features")),
        start_epoch=None
        if payload.get("start_epoch") is None
        else int_in(payload["start_epoch"], "start_epoch", 0, MAX_EPOCHS),
        steps_planned=optional_int(payload, "steps_planned", 1, MAX_STEPS),
        heartbeat_s=None
        if payload.get("heartbeat_s") is None
        else number_in(payload["heartbeat_s"], "heartbeat_s", 0.1, 3600.0),
        scheduler=parse_scheduler_labels(payload.get("scheduler")),
    )


def _metrics(raw: Any, what: str) -> dict[str, float]:
    metrics: dict[str, float] = {}
    if raw is None:
        return metrics
    raw = require_object(raw, f"'{what}'")
    if len(raw) > 32:
        raise SchemaError(f"'{what}' has more than 32 entries")
    for k, v in raw.items():
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]{0,63}", str(k)):
            raise SchemaError(f"'{what}' key {str(k)[:70]!r} is not a valid name")
        metrics[k] = number_in(v, f"{what}.{k}", -1e30, 1e30)
    return metrics


def parse_step_marker(payload: Any) -> StepMarker:
    payload = require_object(payload, "step marker")
    reject_unknown(payload, {"step", "steps_planned", "tokens", "time"}, "step marker")
    if "step" not in payload:
        raise SchemaError("'step' is required")
    return StepMarker(
        step=int_in(payload["step"], "step", 1, MAX_STEPS),
        steps_planned=optional_int(payload, "steps_planned", 1, MAX_STEPS),
        tokens=optional_int(payload, "tokens", 0, MAX_TOKENS),
        time=None if payload.get("time") is None else number_in(payload["time"], "time", 0, 1e11),
    )


def parse_epoch_marker(payload: Any) -> EpochMarker:
    payload = require_object(payload, "epoch marker")
    reject_unknown(payload, {"epoch", "metrics", "epochs_planned", "time"}, "epoch marker")
    if "epoch" not in payload:
        raise SchemaError("'epoch' is required")
    metrics = _metrics(payload.get("metrics"), "metrics")
    planned = payload.get("epochs_planned")
    return EpochMarker(
        epoch=int_in(payload["epoch"], "epoch", 1, MAX_EPOCHS),
        metrics=metrics,
        epochs_planned=None if planned is None else planned_epochs(planned),
        time=None if payload.get("time") is None else number_in(payload["time"], "time", 0, 1e11),
    )


#: What a client can say of its run's end. The exporter adds ``lost``: the job's processes
#: (or its client's heartbeat) vanished without a finish (OOM kill, preemption, SIGKILL).
OUTCOMES = (
    "finished",
    "failed",
    "budget_stopped",  # stopped by its energy budget (on_budget="stop"): not a complete run
    # what a scheduler says of a job's end (Slurm's job states)
    "cancelled",
    "timeout",
    "preempted",
    "node_fail",
    "out_of_memory",
    # a source saw it end without saying how (a Kubernetes pod whose GPUs were released)
    "ended",
)
#: outcomes that count as a failed run (``joulecast_job_failed``)
FAILED_OUTCOMES = frozenset({"failed", "node_fail", "out_of_memory"})
LOST = "lost"


@dataclass(frozen=True)
class FinishMarker:
    """``POST /api/v1/jobs/{job_id}/finish``: the run ended, well (``finished``, also when
    stopped early) or with an error (``failed``); ``summary`` holds the run's own summary
    (Hugging Face's ``train_runtime``, mean ``train_loss``...), kept on the job record."""

    outcome: str = "finished"
    summary: dict[str, float] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"outcome": self.outcome}
        if self.summary:
            out["summary"] = dict(self.summary)
        return out


def parse_finish(payload: Any) -> FinishMarker:
    if payload is None:
        return FinishMarker()
    payload = require_object(payload, "finish marker")
    reject_unknown(payload, {"outcome", "summary"}, "finish marker")
    outcome = payload.get("outcome", "finished")
    if outcome not in OUTCOMES:
        raise SchemaError(f"'outcome' must be one of {', '.join(OUTCOMES)}")
    return FinishMarker(outcome, _metrics(payload.get("summary"), "summary"))


@dataclass(frozen=True)
class BudgetEvent:
    """``POST /api/v1/jobs/{job_id}/budget``: the client's in-process projection crossed
    the job's energy budget (``over``) or fell back under it."""

    over: bool
    projected_joules: float
    budget_joules: float

    def as_dict(self) -> dict[str, Any]:
        return {
            "over": self.over,
            "projected_joules": self.projected_joules,
            "budget_joules": self.budget_joules,
        }


def parse_budget_event(payload: Any) -> BudgetEvent:
    payload = require_object(payload, "budget event")
    reject_unknown(payload, {"over", "projected_joules", "budget_joules"}, "budget event")
    if not isinstance(payload.get("over"), bool):
        raise SchemaError("'over' must be true or false")
    return BudgetEvent(
        payload["over"],
        number_in(payload.get("projected_joules"), "projected_joules", 0, 1e15),
        number_in(payload.get("budget_joules"), "budget_joules", 0, 1e15),
    )


def metric_name(raw: str) -> str | None:
    """A client-side metric name made safe: Prometheus-style, at most 64 characters.

    ``val_acc@1`` -> ``val_acc_1``, ``val/loss`` -> ``val_loss``; None when nothing is left.
    """
    name = re.sub(r"[^A-Za-z0-9_]", "_", str(raw)).strip("_")
    name = re.sub(r"_+", "_", name)
    if not name:
        return None
    if name[0].isdigit():
        name = "_" + name
    return name[:64]
