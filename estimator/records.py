"""The records the estimator's rooms hand one another (immutable dataclasses).

Below the STEP, PRE and queue rooms and above the Prometheus room: a room imports these,
never another room's internals.
"""

from __future__ import annotations

from dataclasses import dataclass

from joulecast.estimator.prometheus.queries import JobState
from joulecast.step import Progress


@dataclass(frozen=True)
class MethodProjection:
    """One method's projected total energy of a running job, with what it knows beside."""

    energy_j: float
    lower_j: float | None = None
    upper_j: float | None = None
    remaining_j: float | None = None
    end_s: float | None = None
    #: the interval: True scaled on finished jobs (conformal), False the model's own
    #: (too few finished jobs yet), None no interval
    calibrated: bool | None = None


@dataclass(frozen=True)
class FinishedJob:
    """A finished job's measured figures (from the STEP room to PRE self-calibration)."""

    job_id: str
    state: JobState
    progress: Progress
    energy_j: float
    finished_s: float
    complete: bool = True  # ran every planned epoch (False: stopped early)


def float_or_none(v: str | None) -> float | None:
    """A label value as a number; None when empty or not a number."""
    try:
        return float(v) if v not in (None, "") else None
    except ValueError:
        return None
