"""The track record of every method: errors of finished jobs at fixed epochs (pure).

When a job finishes, the projection each method *would have made* at epochs 10, 15, 20
(configurable) is recomputed from the job's checkpoints truncated at that epoch, and
compared with the measured total. This is exactly what the live service published at that
point, whatever the scrape and cycle timing were.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

from joulecast.estimator.step.baselines import BaselineConfig, green_algorithms, mlco2
from joulecast.step import Progress, StepConfig, first_epoch_extrapolation, project


@dataclass(frozen=True)
class JobFacts:
    tdp_w: float
    usage: float | None
    memory_gb: float | None


@dataclass(frozen=True)
class ErrorEntry:
    job_id: str
    method: str
    at_epoch: int
    projected_j: float
    measured_j: float
    remaining_j: float | None = None  # STEP's projected remaining energy at ``at_epoch``
    #: "epoch", or "step": ``at_epoch`` counts segments of the step plan (1 % of the run)
    unit: str = "epoch"

    @property
    def error_ratio(self) -> float:
        """Signed relative error: (projected - measured) / measured."""
        return (self.projected_j - self.measured_j) / self.measured_j


def projections_at(
    progress: Progress, epoch: int, facts: JobFacts, step_cfg: StepConfig, base_cfg: BaselineConfig
) -> dict[str, tuple[float, float | None]]:
    """method -> (projected total, projected remaining or None) as known at ``epoch``."""
    p = progress.truncated(epoch)
    out: dict[str, tuple[float, float | None]] = {
        m: (pr.energy_j, pr.remaining_j) for m, pr in project(p, step_cfg).items()
    }
    first = first_epoch_extrapolation(p)
    if first is not None:
        out["first_epoch"] = (first, None)
    if p.epochs_done > 0:
        elapsed = p.last.time_s - p.checkpoints[0].time_s
        duration = elapsed / p.epochs_done * progress.epochs_planned
        out["mlco2"] = (mlco2(facts.tdp_w, duration), None)
        out["green_algorithms"] = (
            green_algorithms(facts.tdp_w, duration, facts.usage, facts.memory_gb, base_cfg),
            None,
        )
    return out


def evaluate(
    job_id: str,
    progress: Progress,
    measured_j: float,
    at_epochs: tuple[int, ...],
    facts: JobFacts,
    step_cfg: StepConfig,
    base_cfg: BaselineConfig,
    unit: str = "epoch",
) -> list[ErrorEntry]:
    if measured_j <= 0:
        return []
    out = []
    for k in at_epochs:
        # What was known at epoch k: the checkpoints up to k (k itself may not have been scraped).
        if k >= progress.epochs_planned or k > progress.epochs_done:
            continue
        for method, (e, rem) in projections_at(progress, k, facts, step_cfg, base_cfg).items():
            out.append(ErrorEntry(job_id, method, k, e, measured_j, rem, unit))
    return out


class TrackRecord:
    """The last ``maxlen`` error entries per (method, epoch), for the live aggregates."""

    def __init__(self, maxlen: int = 1000) -> None:
        self._entries: dict[tuple[str, int, str], deque[ErrorEntry]] = {}
        self._maxlen = maxlen

    def add(self, entries: list[ErrorEntry]) -> None:
        for e in entries:
            key = (e.method, e.at_epoch, e.unit)
            self._entries.setdefault(key, deque(maxlen=self._maxlen)).append(e)

    def summary(self) -> dict[tuple[str, int, str], tuple[int, float, float]]:
        """(method, scoring point, unit) -> (jobs, mean absolute error ratio, mean signed
        error ratio)."""
        out = {}
        for key, entries in self._entries.items():
            errs = [e.error_ratio for e in entries]
            out[key] = (len(errs), sum(abs(x) for x in errs) / len(errs), sum(errs) / len(errs))
        return out
