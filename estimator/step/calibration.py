"""Intervals calibrated on the track record: split-conformal, per method and epoch.

A STEP interval assumes independent epochs; real runs drift and stall, so its nominal 90 %
covers the final total far less often. Finished jobs say by how much: for each method and
scoring epoch k the calibration keeps the normalised errors of finished jobs,
``|measured - projected| / projected remaining`` at k. A running job at epoch e then gets
``projected +/- q * remaining``, q the conformal quantile of the scores of the largest
scoring epoch at or below e (the smallest above it before then). Until ``min_jobs`` jobs
are in, the model's own interval is kept and labelled uncalibrated.

Pure: the scores go in and out as plain data; the service persists them.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass

from joulecast.estimator.step.trackrecord import ErrorEntry
from joulecast.traces import conformal_quantile, normalized_error

MAX_SCORES = 500


@dataclass(frozen=True)
class Calibrated:
    half_width_ratio: float  # q: half-width in units of the projected remaining energy
    jobs: int
    at_epoch: int


class IntervalCalibration:
    def __init__(self, level: float = 0.9, min_jobs: int = 10) -> None:
        self.level = level
        # the conformal quantile exists only from ceil(level / (1 - level)) scores on
        self.min_jobs = max(min_jobs, math.ceil(level / max(1e-9, 1 - level)))
        self._scores: dict[tuple[str, int, str], deque[float]] = {}

    def add(self, entries: Iterable[ErrorEntry]) -> int:
        added = 0
        for e in entries:
            if e.remaining_j is None or not math.isfinite(e.projected_j):
                continue
            score = normalized_error(e.measured_j, e.projected_j, e.remaining_j)
            if math.isfinite(score):
                key = (e.method, e.at_epoch, e.unit)
                self._scores.setdefault(key, deque(maxlen=MAX_SCORES)).append(score)
                added += 1
        return added

    def _key(self, method: str, epoch: int, unit: str) -> tuple[str, int, str] | None:
        epochs = sorted(k for m, k, u in self._scores if m == method and u == unit)
        if not epochs:
            return None
        below = [k for k in epochs if k <= epoch]
        return (method, below[-1] if below else epochs[0], unit)

    def interval(self, method: str, epoch: int, unit: str = "epoch") -> Calibrated | None:
        """The interval of ``method`` at ``epoch`` (a segment of the step plan when
        ``unit`` is "step": jobs are calibrated on jobs projected in the same unit)."""
        key = self._key(method, epoch, unit)
        if key is None:
            return None
        scores = list(self._scores[key])
        if len(scores) < self.min_jobs:
            return None
        q = conformal_quantile(scores, self.level)
        return Calibrated(q, len(scores), key[1]) if math.isfinite(q) else None

    def sizes(self) -> dict[tuple[str, int, str], int]:
        return {k: len(v) for k, v in self._scores.items()}

    # -- persistence as plain data (the service writes it to a file) ---------------------
    def state(self) -> dict:
        return {
            "level": self.level,
            "scores": [
                {"method": m, "at_epoch": k, "unit": u, "scores": list(v)}
                for (m, k, u), v in sorted(self._scores.items())
            ],
        }

    def restore(self, state: object) -> None:
        """Scores from :meth:`state`; ValueError (nothing changed) when they are not."""
        if not isinstance(state, dict) or not isinstance(state.get("scores", []), list):
            raise ValueError("not an object with a list of scores")
        restored: dict[tuple[str, int, str], deque] = {}
        for item in state.get("scores", []):
            if not isinstance(item, dict) or not isinstance(item.get("scores"), list):
                raise ValueError(f"a score entry is not an object with scores: {item!r:.80}")
            method, epoch, unit = (
                item.get("method"),
                item.get("at_epoch"),
                item.get("unit", "epoch"),
            )
            if not (isinstance(method, str) and isinstance(unit, str)):
                raise ValueError(f"method and unit must be strings: {item!r:.80}")
            if isinstance(epoch, bool) or not isinstance(epoch, int) or not 0 < epoch < 10**9:
                raise ValueError(f"at_epoch must be a positive integer: {epoch!r:.40}")
            values = [
                float(x)
                for x in item["scores"]
                if isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)
            ]
            restored[(method, epoch, unit)] = deque(values[-MAX_SCORES:], maxlen=MAX_SCORES)
        self._scores.update(restored)
