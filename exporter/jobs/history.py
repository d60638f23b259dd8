"""A job's energy counter over the last minutes, to charge late markers at their own time.

A training client measures its epoch-end time and may deliver the marker later (the
exporter was restarting, a burst of epoch ends queued it). The registry records each live
job's counter after every sampling round here and reads it back at the marker's time,
interpolating between the two samples around it. Fixed memory per job: a ring of
``capacity`` points at most ``min_step_s`` apart (default: 10 minutes at the sampler's
10 Hz; 96 KB a live job).
"""

from __future__ import annotations

import bisect
from array import array


class EnergyHistory:
    def __init__(self, capacity: int = 6000, min_step_s: float = 0.1) -> None:
        self.capacity = capacity
        self.min_step_s = min_step_s
        self._t = array("d")
        self._e = array("d")

    def __len__(self) -> int:
        return len(self._t)

    def add(self, t: float, energy_j: float) -> None:
        if self._t and t < self._t[-1]:
            return  # the clock went back: keep what is ordered
        if len(self._t) >= 2 and t - self._t[-2] < self.min_step_s:
            self._t[-1] = t  # the newest point moves until it is a step past the one before
            self._e[-1] = energy_j
            return
        self._t.append(t)
        self._e.append(energy_j)
        if len(self._t) > self.capacity:  # amortised: drop the oldest tenth at once
            drop = max(1, self.capacity // 10)
            del self._t[:drop]
            del self._e[:drop]

    @property
    def oldest(self) -> float | None:
        return self._t[0] if self._t else None

    def at(self, t: float) -> float | None:
        """The counter at time ``t`` (linear between samples); None if ``t`` is before the
        retained history or nothing is recorded."""
        if not self._t or t < self._t[0]:
            return None
        if t >= self._t[-1]:
            return self._e[-1]
        i = bisect.bisect_right(self._t, t)
        t0, t1, e0, e1 = self._t[i - 1], self._t[i], self._e[i - 1], self._e[i]
        return e0 + (e1 - e0) * (t - t0) / (t1 - t0) if t1 > t0 else e1


def energy_at(
    hist: EnergyHistory | None, energy_now: float, at: float | None, now: float
) -> tuple[float, float]:
    """(energy, timestamp) to charge a marker that ended at ``at`` (client time)."""
    if at is None or at >= now:
        return energy_now, now
    found = hist.at(at) if hist is not None else None
    if found is not None:
        return found, at
    # Ended before the oldest reading kept (before the job's first reading, or while the
    # exporter was down): its own time, and the energy of that oldest reading. What ran
    # before it was not measured, and is not invented.
    oldest = hist.oldest if hist is not None else None
    if hist is not None and oldest is not None:
        return hist.at(oldest) or 0.0, at
    return energy_now, at
