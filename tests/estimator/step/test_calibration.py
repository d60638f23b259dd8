"""Projection intervals calibrated on finished jobs (split-conformal), kept across restarts."""

from __future__ import annotations

import random

from joulecast.estimator.calibration_file import CalibrationFile
from joulecast.estimator.jobs import CombinedJobs
from joulecast.estimator.prometheus.queries import EpochPoint, JobState
from joulecast.estimator.step.calibration import IntervalCalibration
from joulecast.estimator.step.stage import StepSettings, StepStage


def job(job_id: str, energies: list[float], planned: int, running: bool):
    points, total = [EpochPoint(0, 1000.0, 0.0)], 0.0
    for i, e in enumerate(energies, start=1):
        total += e
        points.append(EpochPoint(i, 1000.0 + 10 * i, total))
    state = JobState(
        job_id,
        epochs_planned=planned,
        epochs_completed=len(energies),
        running=running,
        start_s=1000.0,
        end_s=None if running else 1000.0 + 10 * len(energies),
        energy_j=total,
    )
    return CombinedJobs({job_id: state}, {job_id: {p.epoch: p for p in points}}, {})


def drifting(rng: random.Random, n: int) -> list[float]:
    """Epochs that drift and stall, as real runs do: the model's own interval is too narrow."""
    level = 100.0
    out = []
    for _ in range(n):
        level *= 1 + rng.gauss(0.004, 0.01)
        out.append(level * (2.0 if rng.random() < 0.08 else 1.0))
    return out


def test_intervals_are_calibrated_once_enough_jobs_have_finished(tmp_path):
    rng = random.Random(1)
    stage = StepStage(StepSettings(track_epochs=(10,), calibration_min_jobs=10))
    jobs = job("live", drifting(rng, 12), planned=40, running=True)
    stage.merge(jobs, now=0.0)
    before = stage.project_all()["live"].methods["step_epoch"]
    assert before.calibrated is False
    for i in range(30):
        jobs = job(f"done-{i}", drifting(rng, 40), planned=40, running=False)
        stage.merge(jobs, now=1.0)
    stage.evaluate_finished(now=1.0)
    assert stage.calibration.sizes()[("step_epoch", 10, "epoch")] == 30
    after = stage.project_all()["live"].methods["step_epoch"]
    assert after.calibrated is True
    assert after.energy_j == before.energy_j
    assert after.upper_j - after.lower_j > before.upper_j - before.lower_j  # wider: honest

    # kept across a restart
    path = tmp_path / "calibration.json"
    assert CalibrationFile(path).save(stage.calibration)
    fresh = IntervalCalibration(0.9, 10)
    CalibrationFile(path).load_into(fresh)
    assert fresh.sizes() == stage.calibration.sizes()
    assert fresh.interval("step_epoch", 12) == stage.calibration.interval("step_epoch", 12)


def test_conformal_coverage_holds_on_new_jobs():
    """Calibrated on 200 finished jobs, the interval covers about 90 % of 400 new ones."""
    rng = random.Random(7)
    stage = StepStage(StepSettings(track_epochs=(10,)))
    for i in range(200):
        jobs = job(f"cal-{i}", drifting(rng, 40), planned=40, running=False)
        stage.merge(jobs, now=1.0)
    stage.evaluate_finished(now=1.0)
    covered = 0
    for i in range(400):
        energies = drifting(rng, 40)
        jobs = job(f"new-{i}", energies[:10], planned=40, running=True)
        probe = StepStage(StepSettings(track_epochs=(10,)))
        probe.calibration = stage.calibration
        probe.merge(jobs, now=2.0)
        m = probe.project_all()[f"new-{i}"].methods["step_epoch"]
        covered += m.lower_j <= sum(energies) <= m.upper_j
    assert 0.85 <= covered / 400 <= 0.95


def test_corrupt_calibration_file_starts_afresh(tmp_path):
    path = tmp_path / "calibration.json"
    path.write_text("{not json")
    cal = IntervalCalibration()
    CalibrationFile(path).load_into(cal)
    assert cal.sizes() == {}
