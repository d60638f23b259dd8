"""Per-epoch trace files and offline scoring of STEP (standard library only).

A trace CSV has one row per completed epoch: ``job_id, epoch, epoch_end_time_s,
epoch_energy_j`` (epoch 1 first; time since the start of epoch 1, or of the job).
"""

from __future__ import annotations

import csv
import math
from dataclasses import dataclass
from pathlib import Path

from joulecast.step import Progress, StepConfig, first_epoch_extrapolation, project

COLUMNS = ("job_id", "epoch", "epoch_end_time_s", "epoch_energy_j")


class TraceError(ValueError):
    """A trace file cannot be read; the message names the file and line."""


@dataclass(frozen=True)
class Trace:
    job_id: str
    energies: tuple[float, ...]
    end_times: tuple[float, ...]

    @property
    def total_j(self) -> float:
        return sum(self.energies)

    def progress(self) -> Progress:
        return Progress.from_epoch_energies(self.energies, self.end_times, len(self.energies))


def read_traces(path: Path) -> list[Trace]:
    try:
        fh = path.open(newline="")
    except OSError as err:
        raise TraceError(f"{path}: {err.strerror or err}") from err
    rows: dict[str, list[tuple[int, float, float]]] = {}
    with fh:
        reader = csv.DictReader(fh)
        missing = [c for c in COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise TraceError(
                f"{path}: missing column(s) {', '.join(missing)}; expected {', '.join(COLUMNS)}"
            )
        for line, row in enumerate(reader, start=2):
            try:
                epoch = int(row["epoch"])
                t = float(row["epoch_end_time_s"])
                e = float(row["epoch_energy_j"])
            except (TypeError, ValueError):
                raise TraceError(
                    f"{path}:{line}: epoch, epoch_end_time_s and epoch_energy_j must be numbers"
                ) from None
            if not (math.isfinite(t) and math.isfinite(e)) or e < 0:
                raise TraceError(f"{path}:{line}: energy must be finite and >= 0")
            rows.setdefault(row["job_id"], []).append((epoch, t, e))
    traces = []
    for job_id, items in rows.items():
        items.sort()
        epochs = [i[0] for i in items]
        if epochs != list(range(1, len(items) + 1)):
            raise TraceError(
                f"{path}: job {job_id!r}: epochs must run 1, 2, ... without gaps or repeats"
            )
        times = [i[1] for i in items]
        if any(b < a for a, b in zip(times, times[1:], strict=False)):
            raise TraceError(f"{path}: job {job_id!r}: epoch_end_time_s must not decrease")
        traces.append(Trace(job_id, tuple(i[2] for i in items), tuple(times)))
    if not traces:
        raise TraceError(f"{path}: no rows")
    return traces


@dataclass(frozen=True)
class MethodScore:
    method: str
    jobs: int
    mape: float  # percent
    rmse_j: float
    max_ape: float  # percent
    coverage: float | None = None  # share of true totals inside the model's own interval
    #: the same with the interval calibrated on the other jobs (leave-one-job-out
    #: split-conformal), as the estimator calibrates it on its track record
    calibrated_coverage: float | None = None
    calibrated_half_width: float | None = None  # mean half-width, share of the projection


def conformal_quantile(scores: list[float], level: float) -> float:
    """Split-conformal quantile: the ceil((n + 1) * level)-th smallest score (inf when n is
    too small for the level); with exchangeable jobs the interval covers at least ``level``."""
    n = len(scores)
    k = math.ceil((n + 1) * level)
    if n == 0 or k > n:
        return math.inf
    return sorted(scores)[k - 1]


def normalized_error(truth: float, projected: float, remaining: float) -> float:
    """|error| in units of the projected remaining energy: what is still unknown."""
    return abs(truth - projected) / max(remaining, 1e-9 * max(abs(projected), 1.0))


Known = tuple[float, float | None, float | None, float | None]


def projections_at(trace: Trace, at_epoch: int, cfg: StepConfig) -> dict[str, Known]:
    """method -> (energy, lower, upper, remaining) as known when epoch ``at_epoch`` ended."""
    p = trace.progress().truncated(at_epoch)
    out: dict[str, Known] = {
        m: (pr.energy_j, pr.lower_j, pr.upper_j, pr.remaining_j)
        for m, pr in project(p, cfg).items()
    }
    first = first_epoch_extrapolation(p)
    if first is not None:
        out["first_epoch"] = (first, None, None, None)
    return out


def _loo_coverage(
    rows: list[tuple[float, float, float | None]], level: float
) -> tuple[float | None, float | None]:
    """(coverage, mean half-width share) of leave-one-job-out conformal intervals."""
    usable = [(t, e, r) for t, e, r in rows if r is not None]
    if len(usable) < 3:
        return None, None
    scores = [normalized_error(t, e, r) for t, e, r in usable]
    covered, widths = 0, []
    for i, (t, e, r) in enumerate(usable):
        q = conformal_quantile(scores[:i] + scores[i + 1 :], level)
        half = q * r
        covered += abs(t - e) <= half
        if math.isfinite(half) and e > 0:
            widths.append(half / e)
    return covered / len(usable), (sum(widths) / len(widths) if widths else None)


def score(
    traces: list[Trace], at_epoch: int, cfg: StepConfig
) -> tuple[dict[str, MethodScore], int]:
    """Scores per method, and the number of jobs too short to be scored at ``at_epoch``."""
    errors: dict[str, list[tuple[float, float, bool | None]]] = {}
    rows: dict[str, list[tuple[float, float, float | None]]] = {}
    skipped = 0
    for tr in traces:
        if len(tr.energies) <= at_epoch:
            skipped += 1
            continue
        truth = tr.total_j
        for method, (e, lo, hi, rem) in projections_at(tr, at_epoch, cfg).items():
            inside = None if lo is None or hi is None else lo <= truth <= hi
            errors.setdefault(method, []).append((e - truth, truth, inside))
            rows.setdefault(method, []).append((truth, e, rem))
    out = {}
    for method, errs in errors.items():
        apes = [abs(d) / t * 100 for d, t, _ in errs if t > 0]
        covered = [c for _, _, c in errs if c is not None]
        cal, width = _loo_coverage(rows[method], cfg.level)
        out[method] = MethodScore(
            method=method,
            jobs=len(errs),
            mape=sum(apes) / len(apes) if apes else float("nan"),
            rmse_j=math.sqrt(sum(d * d for d, _, _ in errs) / len(errs)),
            max_ape=max(apes) if apes else float("nan"),
            coverage=sum(covered) / len(covered) if covered else None,
            calibrated_coverage=cal,
            calibrated_half_width=width,
        )
    return out, skipped
