"""Turning power samples and hardware counters into monotonic joule counters (pure)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class PowerIntegrator:
    """Trapezoid integration of power samples into joules.

    Gaps longer than ``max_gap_s`` (a stalled sampler, a suspended host) are bridged with
    the last known power held flat for at most ``max_gap_s``, so a long pause cannot invent
    energy from a straight line across it.
    """

    max_gap_s: float = 5.0
    joules: float = 0.0
    _t: float | None = None
    _p: float | None = None

    def add(self, t: float, power_w: float) -> float:
        """Add a sample; returns the energy added (J)."""
        delta = 0.0
        if self._t is not None and self._p is not None and t > self._t:
            dt = t - self._t
            delta = (
                0.5 * (self._p + power_w) * dt if dt <= self.max_gap_s else self._p * self.max_gap_s
            )
            self.joules += delta
        if self._t is None or t > self._t:
            self._t, self._p = t, power_w
        return delta


@dataclass
class MonotonicCounter:
    """Keeps a hardware energy counter monotonic across wraps and resets.

    ``wrap`` is the counter's range where it is known (RAPL's ``max_energy_range_uj``);
    without it a decrease is a reset and the new raw value counts from zero.
    """

    wrap: float | None = None
    total: float = 0.0
    _last: float | None = None

    def update(self, raw: float) -> float:
        """Feed the raw counter value; returns the increase since the last value (>= 0)."""
        if self._last is None:
            self._last = raw
            return 0.0
        delta = raw - self._last
        if delta < 0:
            delta = (self.wrap - self._last + raw) if self.wrap else raw
        self._last = raw
        self.total += delta
        return delta
