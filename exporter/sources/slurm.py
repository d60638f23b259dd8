"""The Slurm source: the jobs running on this node, read from the controller.

Each poll runs ``squeue --json`` (Slurm 22.05 and later; one call lists every job the
controller holds, filters do not apply to JSON) and keeps the jobs allocated on this
node (``--slurm.node-name``, the short host name by default) that hold GPUs here. A
job's GPUs are the indices of its ``gres_detail`` for this node: positions in the node's
``gres.conf`` GPU list, which are the NVML indices when ``gres.conf`` lists the devices
in index order or uses ``AutoDetect=nvml`` (docs/slurm.md).

The prolog and epilog shipped in ``deploy/slurm/`` only wake the poller (``POST
/api/v1/sources/slurm/poll``), so a job is seen at its start and end; the poll interval
is the safety net for a node without them.
"""

from __future__ import annotations

import socket
from collections.abc import Sequence

from joulecast.exporter.sources.base import FoundJob, SourceError
from joulecast.schema import JobSpec
from joulecast.slurmjobs import SlurmFormatError, SlurmJob, SqueueError, parse_squeue, run_squeue


def node_name() -> str:
    return socket.gethostname().split(".")[0]


class SlurmSource:
    name = "slurm"

    def __init__(
        self,
        node: str | None = None,
        command: Sequence[str] = ("squeue", "--json"),
        timeout_s: float = 20.0,
    ) -> None:
        self.node = node or node_name()
        self.command = tuple(command)
        self.timeout_s = timeout_s

    def read(self) -> str:
        """What ``squeue --json`` prints; SourceError when it cannot be run or fails."""
        try:
            return run_squeue(self.command, self.timeout_s)
        except SqueueError as err:
            raise SourceError(str(err)) from None

    def poll(self) -> list[FoundJob]:
        try:
            jobs = parse_squeue(self.read())
        except SlurmFormatError as err:
            raise SourceError(str(err)) from None
        return [f for f in (self.found(j) for j in jobs) if f is not None]

    def found(self, job: SlurmJob) -> FoundJob | None:
        """The job as this node's source reports it: a running one when it holds GPUs
        here; every ended one (Slurm forgets where an ended job ran: the sync keeps those
        it tracks); None otherwise."""
        gpus = job.gpus_by_node.get(self.node, ())
        if job.pending or (job.running and not gpus):
            return None
        spec = JobSpec(
            job_id=job.job_id,
            epochs_planned=job.plan.epochs or 0,
            gpus=gpus,
            features=job.plan.features,
            scheduler=job.labels,
        )
        outcome = None if job.running else (job.outcome or "lost")
        return FoundJob(
            spec=spec,
            started_at=job.start_time,
            ended_at=job.end_time if outcome else None,
            outcome=outcome,
        )
