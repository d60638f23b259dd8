"""The energy history that charges late markers at their own time."""

from __future__ import annotations

import pytest

from joulecast.exporter.jobs.history import EnergyHistory


def test_interpolates_between_samples_and_bounds_memory():
    h = EnergyHistory(capacity=100, min_step_s=0.5)
    for i in range(1000):  # 10 Hz for 100 s at 200 W
        h.add(1000.0 + i * 0.1, 200.0 * i * 0.1)
    assert len(h) <= 100
    assert h.at(1099.85) == pytest.approx(200.0 * 99.85, rel=1e-6)
    assert h.at(h.oldest + 0.25) == pytest.approx(200.0 * (h.oldest + 0.25 - 1000.0), rel=1e-6)
    assert h.at(h.oldest - 1) is None  # older than what is kept
    assert h.at(5000.0) == pytest.approx(200.0 * 99.9)  # after the newest: the newest


def test_clock_going_back_is_ignored():
    h = EnergyHistory()
    h.add(10.0, 1.0)
    h.add(11.0, 2.0)
    h.add(5.0, 99.0)
    assert h.at(10.5) == pytest.approx(1.5)
