"""A job id registered again continues its job: a restarted or resumed run (a finished or
failed job is reopened) or another rank of a distributed run. The specs merge (GPUs, PIDs
and the plan of the newest), the processes still alive stay with the new ones, and the job
is live again from ``now``."""

from __future__ import annotations

from dataclasses import replace

from joulecast.exporter.jobs import liveness
from joulecast.exporter.jobs.model import JobRecord
from joulecast.schema import JobSpec

MAX_PIDS = 1024


def merged_spec(old: JobSpec, new: JobSpec) -> JobSpec:
    return replace(
        old,
        epochs_planned=new.epochs_planned or old.epochs_planned,
        gpus=tuple(dict.fromkeys(old.gpus + new.gpus)),
        gpu_uuids=tuple(dict.fromkeys(old.gpu_uuids + new.gpu_uuids)),
        pids=tuple(dict.fromkeys(old.pids + new.pids))[-MAX_PIDS:],
        features=new.features if new.features.as_dict() else old.features,
        steps_planned=new.steps_planned or old.steps_planned,
        heartbeat_s=new.heartbeat_s or old.heartbeat_s,
        scheduler=new.scheduler or old.scheduler,
    )


def continued(
    record: JobRecord, spec: JobSpec, now: float, processes: liveness.ProcessTable
) -> JobRecord:
    """The record reopened with the merged spec (its GPUs are the registry's to resolve)."""
    merged = merged_spec(record.spec, spec)
    running = tuple(p for p in record.processes if liveness.any_alive((p,), processes))
    fresh = liveness.seen(spec.pids, processes)
    return replace(
        record,
        spec=merged,
        finished_at=None,
        outcome=None,
        epochs_planned=merged.epochs_planned,
        steps_planned=merged.steps_planned,
        steps_rewindable=True,
        processes=tuple(dict.fromkeys(running + fresh))[-MAX_PIDS:],
        last_alive=now,
        last_heartbeat=now if merged.heartbeat_s else None,
        gone_since=None,
    )
