"""What a job is described by, besides its progress: the features PRE learns from and
the labels a scheduler gives it. Standard library only."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from joulecast.fields import (
    int_in,
    label_texts,
    number_in,
    reject_unknown,
    require_object,
)

#: Numeric job features: name -> (minimum, maximum, integer?). Bounds reject typos
#: (a batch size of 1e12) without constraining real workloads.
NUMERIC_FEATURES: dict[str, tuple[float, float, bool]] = {
    "model_gflops": (0.0, 1e9, False),  # forward-pass GFLOPs per sample
    "batch_size": (1, 1e7, True),
    "input_height": (1, 1e6, True),
    "input_width": (1, 1e6, True),
    "train_samples": (0, 1e13, True),
    "eval_samples": (0, 1e13, True),
    "host_ram_gb": (0.0, 1e6, False),
    "budget_kwh": (0.0, 1e9, False),  # per-job energy budget used by the alert rules
}
STRING_FEATURES: dict[str, int] = {"model_name": 128, "dataset": 128}


@dataclass(frozen=True)
class JobFeatures:
    model_gflops: float | None = None
    batch_size: int | None = None
    input_height: int | None = None
    input_width: int | None = None
    train_samples: int | None = None
    eval_samples: int | None = None
    host_ram_gb: float | None = None
    budget_kwh: float | None = None
    model_name: str | None = None
    dataset: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {k: v for k, v in asdict(self).items() if v is not None}


def parse_features(payload: Any) -> JobFeatures:
    if payload is None:
        return JobFeatures()
    payload = require_object(payload, "'features'")
    reject_unknown(payload, set(NUMERIC_FEATURES) | set(STRING_FEATURES), "'features'")
    values: dict[str, Any] = {}
    for name, (lo, hi, integer) in NUMERIC_FEATURES.items():
        if payload.get(name) is None:
            continue
        key = f"features.{name}"
        values[name] = (
            int_in(payload[name], key, int(lo), int(hi))
            if integer
            else number_in(payload[name], key, lo, hi)
        )
    values.update(label_texts(payload, STRING_FEATURES, "features"))
    return JobFeatures(**values)


#: Labels a scheduler gives a job, as operators group by them (``scheduler`` is the source:
#: ``slurm``, ``kubernetes``). Bounded strings, published on ``joulecast_job_info``.
SCHEDULER_LABELS: dict[str, int] = {
    "scheduler": 32,
    "user": 64,
    "account": 64,
    "partition": 64,
    "job_name": 128,
    "array_job_id": 32,
    "array_task_id": 32,
    # Kubernetes: the pod's container that holds the GPUs
    "namespace": 63,
    "pod": 253,
    "container": 63,
}


@dataclass(frozen=True)
class SchedulerLabels:
    scheduler: str = ""
    user: str = ""
    account: str = ""
    partition: str = ""
    job_name: str = ""
    array_job_id: str = ""
    array_task_id: str = ""
    namespace: str = ""
    pod: str = ""
    container: str = ""

    def as_dict(self) -> dict[str, str]:
        return {k: v for k, v in asdict(self).items() if v}


def parse_scheduler_labels(payload: Any) -> SchedulerLabels | None:
    """The ``scheduler`` object of a registration; None when absent or empty."""
    if payload is None:
        return None
    payload = require_object(payload, "'scheduler'")
    reject_unknown(payload, set(SCHEDULER_LABELS), "'scheduler'")
    labels = SchedulerLabels(**label_texts(payload, SCHEDULER_LABELS, "scheduler"))
    return labels if labels.as_dict() else None
