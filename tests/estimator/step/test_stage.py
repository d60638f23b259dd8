"""The STEP stage: which finished jobs the track record scores and PRE learns from."""

from __future__ import annotations

from joulecast.estimator.jobs import CombinedJobs
from joulecast.estimator.prometheus.queries import EpochPoint, JobState
from joulecast.estimator.step.stage import StepSettings, StepStage


def finished_job(job_id: str, done: int, planned: int, *, failed: bool = False):
    points = [EpochPoint(e, 1000.0 + 10 * e, 100.0 * e) for e in range(done + 1)]
    state = JobState(
        job_id,
        epochs_planned=planned,
        epochs_completed=done,
        running=False,
        failed=failed,
        start_s=1000.0,
        end_s=1000.0 + 10 * done,
        tdp_w=300.0,
    )
    return CombinedJobs({job_id: state}, {job_id: {p.epoch: p for p in points}}, {})


def test_only_complete_jobs_are_scored_and_failed_ones_are_not_learned_from():
    stage = StepStage(StepSettings(track_epochs=(10,)))
    for job_id, done, planned, failed in [
        ("complete", 20, 20, False),
        ("stopped-early", 12, 50, False),
        ("crashed", 15, 20, True),
    ]:
        jobs = finished_job(job_id, done, planned, failed=failed)
        stage.merge(jobs, now=2000.0)
    handed = {f.job_id: f.complete for f in stage.evaluate_finished(now=2000.0)}
    assert handed == {"complete": True, "stopped-early": False}
    scored = {e.job_id for e in stage.errors_by_job()}
    assert scored == {"complete"}
    # once only
    assert stage.evaluate_finished(now=2001.0) == []
