"""Slurm's view of its jobs, as joulecast names them: pure parsing of ``squeue --json``.

Slurm 22.05 prints every job slurmctld still holds (pending, running, and ended ones for
``MinJobAge`` seconds, 300 by default) with ``squeue --json``; its filters (``-t``, ``-w``)
do not apply to the JSON output, so the caller filters here. One parser serves the
exporter (the jobs running on its node, their GPUs and end) and the estimator (the
pending queue it forecasts).

Names and conventions:

* A job's joulecast id is the id Slurm prints: ``1234``, or ``1234_7`` for task 7 of
  array job 1234. The training client under Slurm defaults to the same id, so its markers
  enrich the job the scheduler found.
* ``--comment`` may carry JSON: ``{"joulecast": {"epochs": 30, "gpu_model": "...",
  "model_gflops": 4.1, "batch_size": 64, "train_samples": 50000, "budget_kwh": 2}}``
  (the marker API's feature names). Anything else in the comment is ignored.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from joulecast.schema import (
    MAX_EPOCHS,
    JobFeatures,
    SchedulerLabels,
    SchemaError,
    parse_features,
    validate_job_id,
)

#: Slurm job states -> joulecast outcomes (``None``: the job has not ended)
OUTCOMES: dict[str, str | None] = {
    "PENDING": None,
    "CONFIGURING": None,
    "RUNNING": None,
    "SUSPENDED": None,
    "REQUEUED": None,
    "RESIZING": None,
    "COMPLETING": None,
    "COMPLETED": "finished",
    "FAILED": "failed",
    "BOOT_FAIL": "failed",
    "CANCELLED": "cancelled",
    "TIMEOUT": "timeout",
    "DEADLINE": "timeout",
    "PREEMPTED": "preempted",
    "NODE_FAIL": "node_fail",
    "OUT_OF_MEMORY": "out_of_memory",
}
RUNNING_STATES = frozenset({"CONFIGURING", "RUNNING", "COMPLETING", "SUSPENDED"})
_GRES_IDX = re.compile(r"gpu(?::[^:(]+)?:\d+\(IDX:([0-9,\-]+)\)")
_GPU_REQUEST = re.compile(r"gpu(?::[^:,]+)?:(\d+)")


class SlurmFormatError(ValueError):
    """What squeue printed is not the JSON it should be."""


class SqueueError(Exception):
    """squeue could not be run, failed, or printed too much."""


MAX_ANSWER_BYTES = 256 * 1024 * 1024


def run_squeue(command: Sequence[str], timeout_s: float) -> str:
    """What ``command`` (``squeue --json``) prints; SqueueError when it cannot tell."""
    try:
        done = subprocess.run(
            list(command), capture_output=True, timeout=timeout_s, check=False,
            env=dict(os.environ),
        )  # fmt: skip
    except (OSError, subprocess.TimeoutExpired) as err:
        raise SqueueError(f"{command[0]}: {err}") from None
    if done.returncode != 0:
        tail = done.stderr.decode("utf-8", "replace").strip()[-300:]
        raise SqueueError(f"{command[0]} exited {done.returncode}: {tail}")
    if len(done.stdout) > MAX_ANSWER_BYTES:
        raise SqueueError(f"{command[0]} printed over {MAX_ANSWER_BYTES} bytes")
    return done.stdout.decode("utf-8", "replace")


@dataclass(frozen=True)
class CommentPlan:
    """What a job's ``--comment`` JSON tells joulecast."""

    epochs: int | None = None
    gpu_model: str | None = None
    features: JobFeatures = field(default_factory=JobFeatures)


@dataclass(frozen=True)
class SlurmJob:
    job_id: str  # joulecast's id: "1234" or "1234_7"
    state: str  # Slurm's base state: RUNNING, COMPLETED, ...
    labels: SchedulerLabels
    nodes: tuple[str, ...]  # allocated nodes, in allocation order
    gpus_by_node: dict[str, tuple[int, ...]]  # GPU indices (gres.conf order) per node
    gpus_requested: int  # GPUs per node the job asked for
    node_count: int
    start_time: float | None
    end_time: float | None
    submit_time: float | None
    time_limit_s: float | None
    plan: CommentPlan

    @property
    def outcome(self) -> str | None:
        return OUTCOMES.get(self.state)

    @property
    def pending(self) -> bool:
        return self.state == "PENDING"

    @property
    def running(self) -> bool:
        return self.state in RUNNING_STATES


def parse_squeue(text: str | bytes) -> list[SlurmJob]:
    """Every job of an ``squeue --json`` answer; a job that cannot be named is skipped."""
    try:
        doc = json.loads(text)
    except (ValueError, RecursionError) as err:
        raise SlurmFormatError(f"squeue printed no JSON: {err}") from None
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list):
        raise SlurmFormatError("squeue's JSON has no 'jobs' list")
    out = []
    for raw in jobs:
        job = _job(raw) if isinstance(raw, dict) else None
        if job is not None:
            out.append(job)
    return out


def _job(raw: dict[str, Any]) -> SlurmJob | None:
    job_id = _job_id(raw)
    if job_id is None:
        return None
    nodes = _nodes(raw)
    details = raw.get("gres_detail") if isinstance(raw.get("gres_detail"), list) else []
    gpus = {n: _gres_indices(d) for n, d in zip(nodes, details, strict=False)}
    return SlurmJob(
        job_id=job_id,
        state=_state(raw.get("job_state")),
        labels=_labels(raw),
        nodes=nodes,
        gpus_by_node=gpus,
        gpus_requested=_gpus_requested(raw),
        node_count=_int(raw.get("node_count")) or max(len(nodes), 1),
        start_time=_time(raw.get("start_time")),
        end_time=_time(raw.get("end_time")),
        submit_time=_time(raw.get("submit_time")),
        time_limit_s=_minutes(raw.get("time_limit")),
        plan=parse_comment(raw.get("comment")),
    )


def _job_id(raw: dict[str, Any]) -> str | None:
    array_job, task = _int(raw.get("array_job_id")), _int(raw.get("array_task_id"))
    job = _int(raw.get("job_id"))
    text = f"{array_job}_{task}" if array_job and task is not None else job
    try:
        return validate_job_id(str(text)) if text is not None else None
    except SchemaError:
        return None


def _int(value: Any) -> int | None:
    if isinstance(value, dict):  # later Slurm releases: {"set": true, "number": 5}
        value = value.get("number") if value.get("set", True) else None
    if isinstance(value, bool) or not isinstance(value, int):
        return None
    return value


def _time(value: Any) -> float | None:
    n = _int(value)
    return float(n) if n and n > 0 else None


def _minutes(value: Any) -> float | None:
    n = _int(value)
    return float(n) * 60.0 if n and 0 < n < 2**31 - 1 else None  # None: no limit


def _state(value: Any) -> str:
    if isinstance(value, list):  # later Slurm releases: ["RUNNING", "COMPLETING"]
        value = value[0] if value else ""
    return value.split()[0].upper() if isinstance(value, str) and value.strip() else "UNKNOWN"


def _text(value: Any, max_len: int) -> str:
    if not isinstance(value, str):
        return ""
    clean = "".join(c for c in value if "\x20" <= c <= "\x7e")
    return clean[:max_len]


def _labels(raw: dict[str, Any]) -> SchedulerLabels:
    array_job, task = _int(raw.get("array_job_id")), _int(raw.get("array_task_id"))
    return SchedulerLabels(
        scheduler="slurm",
        user=_text(raw.get("user_name"), 64) or str(_int(raw.get("user_id")) or ""),
        account=_text(raw.get("account"), 64),
        partition=_text(raw.get("partition"), 64),
        job_name=_text(raw.get("name"), 128),
        array_job_id=str(array_job) if array_job and task is not None else "",
        array_task_id=str(task) if array_job and task is not None else "",
    )


def _nodes(raw: dict[str, Any]) -> tuple[str, ...]:
    resources = raw.get("job_resources")
    allocated = resources.get("allocated_nodes") if isinstance(resources, dict) else None
    if not isinstance(allocated, list):
        return ()
    names = (n.get("nodename") for n in allocated if isinstance(n, dict))
    return tuple(n for n in names if isinstance(n, str) and n)


def _gres_indices(detail: Any) -> tuple[int, ...]:
    """``gpu:2(IDX:0-1)`` or ``gpu:a100:3(IDX:0,2-3)`` -> (0, 1) or (0, 2, 3)."""
    out: list[int] = []
    for spans in _GRES_IDX.findall(detail if isinstance(detail, str) else ""):
        for span in spans.split(","):
            lo, _, hi = span.partition("-")
            if lo.isdigit() and (not hi or hi.isdigit()):
                out.extend(range(int(lo), int(hi or lo) + 1)[:1024])
    return tuple(dict.fromkeys(out))


def _gpus_requested(raw: dict[str, Any]) -> int:
    for key in ("tres_per_node", "tres_per_job", "tres_per_task"):
        found = _GPU_REQUEST.search(_text(raw.get(key), 256))
        if found:
            return int(found.group(1))
    return 0


def parse_comment(comment: Any) -> CommentPlan:
    """The ``joulecast`` object of a JSON ``--comment``; an empty plan for anything else
    (a comment is free text to Slurm: an unusable one is not an error)."""
    if not isinstance(comment, str) or not comment.lstrip().startswith("{"):
        return CommentPlan()
    try:
        doc = json.loads(comment)
    except (ValueError, RecursionError):
        return CommentPlan()
    plan = doc.get("joulecast") if isinstance(doc, dict) else None
    if not isinstance(plan, dict):
        return CommentPlan()
    epochs = plan.get("epochs")
    gpu_model = plan.get("gpu_model")
    try:
        features = parse_features(
            {k: v for k, v in plan.items() if k not in ("epochs", "gpu_model")}
        )
    except SchemaError:
        features = JobFeatures()
    return CommentPlan(
        epochs=epochs
        if isinstance(epochs, int) and not isinstance(epochs, bool) and 1 <= epochs <= MAX_EPOCHS
        else None,
        gpu_model=gpu_model if isinstance(gpu_model, str) and len(gpu_model) <= 128 else None,
        features=features,
    )
