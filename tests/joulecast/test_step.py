"""STEP maths: hand-computed cases for both formulas, the detector, and properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from joulecast.step import (
    Checkpoint,
    Progress,
    StepConfig,
    StepError,
    detect_stabilizing_epoch,
    first_epoch_extrapolation,
    project,
)


def progress(energies, durations, planned):
    t, ends = 0.0, []
    for d in durations:
        t += d
        ends.append(t)
    return Progress.from_epoch_energies(energies, ends, planned)


def test_paper_formulas_by_hand():
    # Epochs 1-2 unstable (200 J in 20 s each), 3-5 stable (100 J in 10 s each), 10 planned.
    p = progress([200, 200, 100, 100, 100], [20, 20, 10, 10, 10], planned=10)
    cfg = StepConfig(stabilizing_epoch=2, window=3, keep_measured=False, min_window=3)
    pr = project(p, cfg)
    # power-based: P_w = 300 J / 30 s = 10 W; t = 70 s elapsed + 5 epochs x 10 s = 120 s -> 1200 J
    assert pr["step_power"].energy_j == pytest.approx(1200.0)
    # epoch-based: E_w = 300 J, w = 3, s = 10 - 2 = 8, E_u = 400 J -> 300 * 8 / 3 + 400 = 1200 J
    assert pr["step_epoch"].energy_j == pytest.approx(1200.0)
    assert pr["step_epoch"].window_start == 2 and pr["step_epoch"].window_end == 5
    assert pr["step_power"].remaining_s == pytest.approx(50.0)


def test_paper_power_formula_charges_unstable_time_at_stable_power():
    # Unstable epochs take long at low power: the paper's E = P_w * t charges them at P_w.
    p = progress([50, 50, 100, 100, 100], [50, 50, 10, 10, 10], planned=6)
    cfg = StepConfig(stabilizing_epoch=2, window=3, keep_measured=False, min_window=3)
    pr = project(p, cfg)
    assert pr["step_power"].energy_j == pytest.approx(10.0 * (130 + 10))  # 1400 J
    assert pr["step_epoch"].energy_j == pytest.approx(300 * 4 / 3 + 100)  # 500 J
    # joulecast's variant keeps what was measured: 400 J so far + 1 epoch x 100 J
    measured = project(p, StepConfig(stabilizing_epoch=2, window=3, min_window=3))
    assert measured["step_power"].energy_j == pytest.approx(500.0)
    assert measured["step_epoch"].energy_j == pytest.approx(500.0)


def test_non_consecutive_checkpoints_are_exact():
    # Epochs 3 and 4 were never scraped: energy between 2 and 5 is still known.
    cps = (
        Checkpoint(0, 0, 0),
        Checkpoint(1, 10, 150),
        Checkpoint(2, 20, 250),
        Checkpoint(5, 50, 550),
        Checkpoint(6, 60, 650),
    )
    p = Progress(cps, 10)
    pr = project(p, StepConfig(stabilizing_epoch=2, window=None, min_window=3, min_tail=2))
    assert pr["step_epoch"].energy_j == pytest.approx(650 + 4 * 100)


def test_detector_trims_warmup_and_plateau_but_not_spikes():
    assert detect_stabilizing_epoch([500, 350, 360, 355, 348, 352, 351]) == 1
    # a higher plateau of 3 epochs (frozen layers) then the regime
    assert detect_stabilizing_epoch([170, 145, 174, 100, 99, 101, 100, 100, 99, 100]) == 3
    # an isolated evaluation spike later on is part of the regime
    assert detect_stabilizing_epoch([100, 101, 99, 150, 100, 100, 99, 101]) == 0
    # too short to judge
    assert detect_stabilizing_epoch([500, 100, 100]) == 0


def test_no_projection_until_the_window_is_complete():
    p = progress([300, 100, 100], [30, 10, 10], planned=20)
    assert project(p) == {}  # 2 stable epochs < min_window 3
    p = progress([300] + [100] * 5, [30] + [10] * 5, planned=20)
    pr = project(p)
    assert pr["step_epoch"].energy_j == pytest.approx(800 + 14 * 100)
    assert pr["step_epoch"].stabilizing_epoch == 1


def test_short_job_still_projects():
    p = progress([300, 100, 100, 100, 100, 100, 100], [30] + [10] * 6, planned=8)
    pr = project(p)
    assert pr["step_epoch"].energy_j == pytest.approx(900 + 100)


def test_planned_epochs_changing_and_overrun():
    p = progress([300] + [100] * 6, [30] + [10] * 6, planned=7)
    assert project(p)["step_epoch"].remaining_j == pytest.approx(0.0)
    longer = Progress(p.checkpoints, 12)
    assert project(longer)["step_epoch"].energy_j == pytest.approx(900 + 500)
    shorter = Progress(p.checkpoints, 5)  # ran past the plan: the plan is at least what ran
    assert project(shorter)["step_epoch"].energy_j == pytest.approx(900)


def test_first_epoch_extrapolation():
    p = progress([300, 100, 100], [30, 10, 10], planned=10)
    assert first_epoch_extrapolation(p) == 3000.0


def test_bad_checkpoints_raise():
    with pytest.raises(StepError):
        Progress((Checkpoint(0, 0, 0), Checkpoint(2, 10, 5), Checkpoint(1, 20, 10)), 5)
    with pytest.raises(StepError):
        Progress((Checkpoint(0, 0, 100), Checkpoint(1, 10, 50)), 5)
    with pytest.raises(StepError):
        Progress((), 5)


energies = st.lists(st.floats(min_value=1.0, max_value=1e6), min_size=1, max_size=60)


@settings(max_examples=200, deadline=None)
@given(energies, st.integers(min_value=1, max_value=200), st.floats(min_value=0.1, max_value=1e4))
def test_properties(es, extra, dur):
    planned = len(es) + extra
    p = progress(es, [dur] * len(es), planned)
    for pr in project(p).values():
        so_far = sum(es)
        assert pr.energy_j >= so_far - 1e-6 * so_far  # never less than what was measured
        assert pr.lower_j <= pr.energy_j <= pr.upper_j
        assert math.isfinite(pr.energy_j) and pr.remaining_s >= 0
        assert 0 < pr.window_end - pr.window_start <= len(es)


@settings(max_examples=100, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1e5),
    st.integers(min_value=6, max_value=50),
    st.integers(min_value=0, max_value=100),
)
def test_constant_profile_is_exact(e, seen, extra):
    p = progress([e] * seen, [10.0] * seen, seen + extra)
    for method, pr in project(p).items():
        assert pr.energy_j == pytest.approx(e * (seen + extra), rel=1e-9), method
        assert pr.upper_j - pr.lower_j == pytest.approx(0.0, abs=1e-6 * e)


@settings(max_examples=50, deadline=None)
@given(
    st.floats(min_value=1.0, max_value=1e4),
    st.floats(min_value=1.01, max_value=100.0),
    st.integers(min_value=6, max_value=40),
)
def test_scale_invariance(e, k, seen):
    a = progress([e * 2] + [e] * (seen - 1), [10.0] * seen, seen + 10)
    b = progress([e * 2 * k] + [e * k] * (seen - 1), [10.0] * seen, seen + 10)
    pa, pb = project(a), project(b)
    for m in pa:
        assert pb[m].energy_j == pytest.approx(pa[m].energy_j * k, rel=1e-9)


def test_periodic_evaluation_epochs_are_part_of_the_regime():
    # every 5th epoch runs a long evaluation (1.6x): the projection must carry them forward
    es = [400.0] + [160.0 if e % 5 == 0 else 100.0 for e in range(2, 41)]
    truth = sum(es)
    p = progress(es, [10.0] * 40, 40)
    for k in (12, 15, 20):
        pr = project(p.truncated(k))["step_epoch"]
        assert pr.stabilizing_epoch <= 2
        assert abs(pr.energy_j - truth) / truth < 0.03, k


def test_the_two_methods_are_two_estimators():
    """Epoch energies weighted towards recent epochs, against the power of the last epochs
    times a weighted duration: with power and duration varying apart they differ."""
    energies = [300] + [100 + 2 * i for i in range(12)]
    durations = [30] + [10 + (2 if i % 3 == 0 else -1) for i in range(12)]
    pr = project(progress(energies, durations, planned=30))
    epoch, power = pr["step_epoch"], pr["step_power"]
    assert epoch.energy_j != pytest.approx(power.energy_j, rel=1e-4)
    so_far = sum(energies)
    plain_mean = sum(energies[1:]) / 12
    for p in (epoch, power):  # both lean towards the recent, larger epochs
        per_epoch_left = (p.energy_j - so_far) / (30 - len(energies))
        assert plain_mean < per_epoch_left <= max(energies[1:]) * 1.1


def test_step_checkpoints_become_segments_of_the_plan():
    from joulecast.step import Checkpoint, Progress, segment_ends, segment_steps

    assert segment_steps(1000) == 10 and segment_steps(37) == 1 and segment_steps(150) == 2
    assert segment_ends(0, 25, 1000) == [10, 20]
    assert segment_ends(990, 1000, 1000) == [1000]
    assert segment_ends(148, 151, 151) == [150, 151]  # the plan's last step ends a segment
    cps = [Checkpoint(s, float(s), 2.0 * s) for s in (0, 10, 15, 20, 40, 1000)]
    p = Progress.from_steps(cps, 1000)
    assert [c.epoch for c in p.checkpoints] == [0, 1, 2, 4, 100]  # step 15 is off the grid
    assert p.epochs_planned == 100


def test_a_steady_step_stream_is_projected_within_a_tenth_of_the_run():
    from joulecast.step import Checkpoint, Progress, project

    cps = [Checkpoint(0, 0.0, 0.0)]
    for seg in range(1, 11):  # 10 % of a 1,000-step run, 50 W, 1 s a step
        cps.append(Checkpoint(seg * 10, seg * 10.0, 500.0 * seg + (200.0 if seg == 1 else 0)))
    out = project(Progress.from_steps(cps, 1000))
    assert out and abs(out["step_epoch"].energy_j - 50_200) / 50_200 < 0.01
