"""Stored rows back into records, checked field by field: a row that SQLite's loose typing
let drift (text in a number column, a truncated JSON value) is named, never half-loaded."""

from __future__ import annotations

import json
import math
from typing import Any

from joulecast.exporter.jobs.model import JobRecord
from joulecast.schema import SchemaError, parse_job_spec


def _number(value: Any, name: str, optional: bool = False) -> float | None:
    if value is None and optional:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ValueError(f"{name} is {value!r:.40} where a finite number belongs")
    return float(value)


def _count(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} is {value!r:.40} where a count belongs")
    return value


def _json(value: Any, name: str, kind: type) -> Any:
    try:
        out = json.loads(value) if isinstance(value, (str, bytes)) else None
    except (ValueError, RecursionError):
        out = None
    if not isinstance(out, kind):
        raise ValueError(f"{name} is not a JSON {kind.__name__}")
    return out


def decode_job(row: tuple, extra: dict) -> JobRecord:
    """A ``jobs`` row as a record; ValueError naming the first field that is wrong."""
    (_, spec, gpus, created, planned, done, energy, idle, ee, ets, fin, metrics, us, bs) = row[:14]
    outcome = row[14] if len(row) > 14 else None
    try:
        job_spec = parse_job_spec(_json(spec, "spec", dict))
    except SchemaError as err:
        raise ValueError(f"spec: {err}") from None
    gpu_list = _json(gpus, "gpus", list)
    if not all(isinstance(g, int) and not isinstance(g, bool) for g in gpu_list):
        raise ValueError("gpus is not a list of indices")
    last_metrics = _json(metrics, "metrics", dict)
    energy_j, epoch_end = _number(energy, "energy"), _number(ee, "epoch_end_energy")
    finished = _number(fin, "finished_at", optional=True)
    return JobRecord(
        spec=job_spec,
        gpus=tuple(gpu_list),
        created_at=_number(created, "created_at"),
        epochs_planned=_count(planned, "epochs_planned"),
        epochs_completed=_count(done, "epochs_completed"),
        energy_joules=max(energy_j, epoch_end),
        idle_energy_joules=_number(idle, "idle_energy"),
        epoch_end_energy_joules=epoch_end,
        epoch_end_timestamp=_number(ets, "epoch_end_ts", optional=True),
        finished_at=finished,
        last_metrics=last_metrics,
        utilization_seconds=_number(us, "utilization_seconds"),
        busy_seconds=_number(bs, "busy_seconds"),
        outcome=outcome if finished is not None and isinstance(outcome, str) else None,
        **extra,
    )


def decode_epoch(epoch: Any, ts: Any, energy: Any, metrics: Any) -> dict:
    """An ``epochs`` row as the API shows it; ValueError when a field is wrong."""
    return {
        "epoch": _count(epoch, "epoch"),
        "timestamp": _number(ts, "ts"),
        "energy_joules": _number(energy, "energy"),
        "metrics": _json(metrics, "metrics", dict),
    }
