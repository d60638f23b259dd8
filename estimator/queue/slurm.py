"""Slurm's pending queue as queued jobs, read with ``squeue --json`` at every cycle.

A pending job is forecast when its ``--comment`` states a plan the way the queue API
takes one (docs/slurm.md): ``{"joulecast": {"epochs": 30, "model_gflops": 4.1,
"batch_size": 64, "train_samples": 50000, "gpu_model": "..."}}``. A job without one is
counted as skipped, never forecast from made-up features. A job leaves the forecasts as
soon as it is no longer pending (started, cancelled). squeue rather than slurmrestd:
it needs no daemon or token beyond what every Slurm client has, and 22.05 has it.
"""

from __future__ import annotations

from collections.abc import Sequence

from joulecast.estimator.pre.gpus import UnknownGpu, lookup
from joulecast.estimator.queue.store import QueuedJob
from joulecast.slurmjobs import SlurmFormatError, SlurmJob, SqueueError, parse_squeue, run_squeue

NEEDED = ("model_gflops", "batch_size", "train_samples")


class SlurmQueueError(Exception):
    """squeue could not be run or printed no jobs list."""


class SlurmQueue:
    def __init__(self, command: Sequence[str] = ("squeue", "--json"), timeout_s: float = 20.0):
        self.command = tuple(command)
        self.timeout_s = timeout_s
        self.skipped = 0  # pending jobs of the last read without a usable plan

    def read(self) -> str:
        try:
            return run_squeue(self.command, self.timeout_s)
        except SqueueError as err:
            raise SlurmQueueError(str(err)) from None

    def jobs(self) -> list[QueuedJob]:
        try:
            pending = [j for j in parse_squeue(self.read()) if j.pending]
        except SlurmFormatError as err:
            raise SlurmQueueError(str(err)) from None
        out = [q for q in map(queued, pending) if q is not None]
        self.skipped = len(pending) - len(out)
        return out


def queued(job: SlurmJob) -> QueuedJob | None:
    plan = job.plan
    if plan.epochs is None or any(getattr(plan.features, f) is None for f in NEEDED):
        return None
    gpu = None
    if plan.gpu_model:
        try:
            gpu = lookup(plan.gpu_model).name
        except UnknownGpu:
            gpu = None
    return QueuedJob(job.job_id, plan.epochs, plan.features, gpu)
