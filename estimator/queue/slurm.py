"""Slurm's pending queue as queued jobs, read with ``squeue --json`` at every cycle.

Every pending job is handed to the queue stage with its owner (user and job name) and the
GPUs it requested. Its ``--comment`` may state a plan the way the queue API takes one
(docs/slurm.md): ``{"joulecast": {"epochs": 30, "model_gflops": 4.1, "batch_size": 64,
"train_samples": 50000, "gpu_model": "..."}}``; what it leaves out comes from the past runs
of the same user and name (``estimator/queue/runs.py``), and a job with neither is not
forecast, never from made-up features. A job leaves the forecasts as soon as it is no
longer pending (started, cancelled). squeue rather than slurmrestd: it needs no daemon or
token beyond what every Slurm client has, and 22.05 has it.
"""

from __future__ import annotations

from collections.abc import Sequence

from joulecast.estimator.pre.gpus import UnknownGpu, lookup
from joulecast.estimator.queue.store import QueuedJob
from joulecast.slurmjobs import SlurmFormatError, SlurmJob, SqueueError, parse_squeue, run_squeue


class SlurmQueueError(Exception):
    """squeue could not be run or printed no jobs list."""


class SlurmQueue:
    def __init__(self, command: Sequence[str] = ("squeue", "--json"), timeout_s: float = 20.0):
        self.command = tuple(command)
        self.timeout_s = timeout_s

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
        return [queued(j) for j in pending]


def queued(job: SlurmJob) -> QueuedJob:
    plan = job.plan
    gpu = None
    if plan.gpu_model:
        try:
            gpu = lookup(plan.gpu_model).name
        except UnknownGpu:
            gpu = None
    labels = job.labels
    return QueuedJob(
        job.job_id,
        plan.epochs or 0,
        plan.features,
        gpu,
        owner=(labels.scheduler or "slurm", labels.user, labels.job_name),
        gpus=job.gpus_requested * max(job.node_count, 1),
        time_limit_s=job.time_limit_s,
    )
