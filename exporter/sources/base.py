"""The job-source interface and what a source reports about one job."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from joulecast.schema import JobSpec


class SourceError(Exception):
    """A source could not be read this time (its daemon away, a bad answer)."""


@dataclass(frozen=True)
class FoundJob:
    """One job of this node as a source sees it: running (``outcome`` None) or ended."""

    spec: JobSpec  # job id, this node's GPUs, the scheduler's labels, any plan it states
    started_at: float | None
    ended_at: float | None = None
    outcome: str | None = None  # a joulecast outcome once the job ended


class JobSource(Protocol):
    #: the source's name (``slurm``): the ``scheduler`` label of the jobs it registers
    name: str

    def poll(self) -> list[FoundJob]:
        """Every job of this node the source knows now, running or recently ended.
        Raises :class:`SourceError` when it cannot tell."""
        ...
