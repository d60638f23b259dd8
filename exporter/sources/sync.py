"""Apply one poll of a job source to the registry.

* A running job the registry does not know is registered, from the start time the
  source gives. One the registry knows (its client registered first) gains the
  scheduler's labels; one its client already finished is never reopened.
* An ended job is finished at the source's end time with the source's outcome, which
  replaces the outcome its client gave (the scheduler's word is final: the script said
  finished, Slurm killed it at its time limit). A run its budget stopped keeps
  ``budget_stopped`` over Slurm's ``COMPLETED``: the client knows why it exited early.
* A live job this source registered that is absent from ``missing_polls`` polls in a row
  (the controller forgot it, or it ended while the exporter was down and was purged)
  ends as ``lost`` (a source that lists only running jobs, the kubelet, says ``ended``),
  at the first poll it was missing from.
* A job its client registered under a name of its own (``JOULECAST_JOB_ID``) with this
  source's labels of the same container (Kubernetes: namespace, pod, container) is that
  container's job: the source registers no second one on its GPUs, and ends the one it
  found before the client named it (what that one was charged until then stays on it).
* A job first seen already ended was never charged on this node: it is counted
  (``missed``) when the source says it ran here, never published with an energy it did
  not measure. Ended jobs the registry does not know (other nodes') are ignored.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

from joulecast.budget import BUDGET_STOPPED
from joulecast.exporter.jobs.model import JobError, JobRecord, UnknownJob
from joulecast.exporter.jobs.registry import JobRegistry
from joulecast.exporter.sources.base import FoundJob, JobSource
from joulecast.schema import LOST, FinishMarker, SchedulerLabels

log = logging.getLogger("joulecast.exporter")


@dataclass
class SyncCounts:
    registered: int = 0
    ended: int = 0
    lost: int = 0
    missed: int = 0
    refused: int = 0  # jobs the registry refused (a GPU this node does not have)


@dataclass
class SourceSync:
    registry: JobRegistry
    source: JobSource
    missing_polls: int = 2
    counts: SyncCounts = field(default_factory=SyncCounts)
    _absent: dict[str, tuple[int, float]] = field(default_factory=dict)

    def apply(self, found: list[FoundJob], now: float | None = None) -> None:
        seen = set()
        claimed = self._claimed()
        for job in found:
            seen.add(job.spec.job_id)
            record = self._record(job.spec.job_id)
            owner = _owner(claimed, job.spec.scheduler)
            if job.outcome is None and owner is not None and owner != job.spec.job_id:
                seen.add(owner)
                if record is not None and record.live:  # found before its client named it
                    self.registry.finish(record.job_id, FinishMarker("ended"), verdict=True)
                continue
            if job.outcome is None:
                self._running(job, record)
            else:
                self._ended(job, record)
        self._forget_absent(seen, time.time() if now is None else now)

    def _claimed(self) -> dict[tuple, str]:
        """Live jobs its clients registered with this source's container labels."""
        out = {}
        for r in self.registry.snapshot():
            sched = r.spec.scheduler
            if r.live and sched is not None and sched.scheduler == self.source.name and _key(sched):
                out[_key(sched)] = r.job_id
        return out

    def _record(self, job_id: str) -> JobRecord | None:
        try:
            return self.registry.get(job_id)
        except UnknownJob:
            return None

    def _running(self, job: FoundJob, record: JobRecord | None) -> None:
        if record is not None and (not record.live or record.spec.scheduler is not None):
            return
        try:
            self.registry.register(job.spec, started_at=job.started_at)
        except JobError as err:
            self.counts.refused += 1
            log.warning("%s job %s not tracked: %s", self.source.name, job.spec.job_id, err)
            return
        if record is None:
            self.counts.registered += 1

    def _ended(self, job: FoundJob, record: JobRecord | None) -> None:
        if record is None:
            if job.spec.gpus:  # ran here, started and ended between two polls: not measured
                self.counts.missed += 1
            return
        if not record.live and record.outcome == job.outcome:
            return
        outcome = job.outcome or "finished"
        if outcome == "finished" and record.outcome == BUDGET_STOPPED:
            return  # a clean exit to Slurm; its client says why it ended before its plan
        self.registry.finish(job.spec.job_id, FinishMarker(outcome), at=job.ended_at, verdict=True)
        self.counts.ended += record.live

    def _forget_absent(self, seen: set[str], now: float) -> None:
        vanished = getattr(self.source, "vanished_outcome", LOST)
        for record in self.registry.snapshot():
            mine = record.spec.scheduler is not None and (
                record.spec.scheduler.scheduler == self.source.name
            )
            if not mine or not record.live or record.job_id in seen:
                self._absent.pop(record.job_id, None)
                continue
            misses, since = self._absent.get(record.job_id, (0, now))
            self._absent[record.job_id] = (misses + 1, since)
            if misses + 1 >= self.missing_polls:
                self.registry.finish(record.job_id, FinishMarker(vanished), at=since, verdict=True)
                self._absent.pop(record.job_id, None)
                self.counts.lost += 1


def _key(labels: SchedulerLabels | None) -> tuple:
    """Which container (or pod, when the client did not say its container) a job is, to a
    source that names pods."""
    if labels is None or not labels.pod:
        return ()
    return (labels.scheduler, labels.namespace, labels.pod, labels.container)


def _owner(claimed: dict[tuple, str], labels: SchedulerLabels | None) -> str | None:
    """The client job that claimed this container, or its whole pod."""
    key = _key(labels)
    if not key:
        return None
    return claimed.get(key) or claimed.get((*key[:3], ""))
