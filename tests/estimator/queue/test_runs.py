"""Past runs by user and job name: which runs are remembered, how a pending job is
forecast from them, bounds, and the file that keeps them across restarts."""

from __future__ import annotations

import json

import pytest

from joulecast.estimator.prometheus.queries import JobState
from joulecast.estimator.queue.runs import RunHistory, finished_run
from joulecast.estimator.queue.stage import forecast_queue
from joulecast.estimator.queue.store import QueuedJob
from joulecast.schema import JobFeatures

KEY = ("slurm", "ana", "nightly")
GPU = "NVIDIA A100-SXM4-80GB"


def state(job_id="1", energy=3.6e6, start=0.0, end=100.0, gpus=1, epochs=0, **labels):
    info = {"scheduler": "slurm", "user": "ana", "job_name": "nightly", "state": "finished"}
    info["gpu_model"] = GPU
    info.update({k: v for k, v in labels.items() if k not in ("running", "failed", "lost")})
    return JobState(
        job_id,
        running=labels.get("running", False),
        failed=labels.get("failed", False),
        lost=labels.get("lost", False),
        energy_j=energy,
        start_s=start,
        end_s=end,
        gpus=gpus,
        epochs_completed=epochs,
        features={k: v for k, v in info.items() if v != ""},
    )


@pytest.mark.parametrize(
    "change",
    [
        {"running": True},
        {"failed": True},
        {"lost": True},
        {"state": "cancelled"},
        {"state": "timeout"},
        {"user": ""},
        {"job_name": ""},
        {"gpu_model": ""},
    ],
)
def test_only_runs_that_finished_with_a_name_and_a_gpu_are_remembered(change):
    assert finished_run(state(**change)) is None
    assert finished_run(state()) is not None


def test_a_run_without_energy_or_duration_is_not_remembered():
    assert finished_run(state(energy=0)) is None
    assert finished_run(state(start=100, end=100)) is None


def test_the_history_forecast_is_the_median_of_the_runs_on_each_gpu_with_their_range():
    runs = RunHistory()
    added = runs.observe(
        [
            state(str(i), energy=e, end=d)
            for i, (e, d) in enumerate([(1e6, 100), (3e6, 300), (2e6, 200)])
        ]
    )
    assert added == 3 and runs.observe([state("1")]) == 0  # a run counts once
    (fc,) = runs.forecasts(KEY)
    assert (fc.method, fc.gpu_model) == ("history", GPU)
    assert (fc.energy_j, fc.energy_lower_j, fc.energy_upper_j) == (2e6, 1e6, 3e6)
    assert fc.duration_s == 200 and fc.power_w == pytest.approx(1e4)


def test_runs_with_the_same_gpu_count_are_preferred_and_epochs_scale_the_energy():
    runs = RunHistory()
    runs.observe(
        [state("1", energy=1e6, gpus=1, epochs=10), state("2", energy=8e6, gpus=4, epochs=10)]
    )
    assert runs.forecasts(KEY, gpus=4)[0].energy_j == 8e6
    assert runs.forecasts(KEY, gpus=2)[0].energy_j == pytest.approx(4.5e6)  # none alike: all
    assert runs.forecasts(KEY, gpus=1, epochs=20)[0].energy_j == pytest.approx(2e6)


def test_each_gpu_model_gets_its_own_forecast():
    runs = RunHistory()
    runs.observe([state("1"), state("2", gpu_model="Tesla V100-SXM2-32GB,Tesla V100-SXM2-32GB")])
    assert {f.gpu_model for f in runs.forecasts(KEY)} == {GPU, "Tesla V100-SXM2-32GB"}


def test_history_is_bounded_per_name_and_in_names():
    runs = RunHistory(per_key=3, max_keys=2)
    runs.observe([state(str(i), end=100 + i) for i in range(5)])
    assert [r.job_id for r in runs.runs(KEY)] == ["2", "3", "4"]  # the latest three
    runs.observe([state("b", job_name="b"), state("c", job_name="c")])
    assert runs.runs(KEY) == [] and len(runs) == 2  # the name finished longest ago forgotten
    assert runs.observe([state("0")]) == 1  # forgotten ids may come back


def test_a_pending_job_takes_the_plan_its_comment_leaves_out_from_its_latest_run():
    runs = RunHistory()
    old = {"model_gflops": "1.0", "batch_size": "32", "train_samples": "1000"}
    new = {"model_gflops": "4.1", "batch_size": "64", "train_samples": "50000"}
    runs.observe([state("1", epochs=5, end=50, **old), state("2", epochs=8, end=90, **new)])
    runs.observe([state("3", epochs=0, end=120)])  # the latest marked nothing: not a plan
    seen = []

    def pre(features, epochs, gpus):
        seen.append((features, epochs, tuple(gpus)))
        return []

    job = QueuedJob("9", 0, JobFeatures(batch_size=128), owner=KEY, gpus=1)
    out = forecast_queue([job], [GPU], pre, runs)
    assert seen == [({"model_gflops": 4.1, "batch_size": 128, "train_samples": 50000}, 8, (GPU,))]
    assert [f.method for f in out["9"]] == ["history"]


def test_a_pending_job_with_no_plan_and_no_past_run_is_not_forecast():
    runs = RunHistory()
    out = forecast_queue([QueuedJob("9", 0, JobFeatures(), owner=KEY)], [GPU], None, runs)
    assert out == {}


def test_runs_survive_a_restart_and_a_spoiled_file_is_set_aside(tmp_path):
    path = tmp_path / "runs.json"
    runs = RunHistory(path)
    runs.observe([state("1", model_gflops="4.1"), state("2", epochs=3)])
    assert runs.save()
    again = RunHistory(path)
    assert again.runs(KEY) == runs.runs(KEY) and again.observe([state("1")]) == 0
    path.write_text(json.dumps({"runs": [{"key": ["a"], "runs": [{"nope": 1}]}]}))
    spoiled = RunHistory(path)
    assert len(spoiled) == 0 and not path.exists()
    assert list(tmp_path.glob("runs.json.rejected-*"))


def test_a_forecast_past_the_time_limit_is_cut_at_it():
    runs = RunHistory()
    runs.observe([state("1", energy=3.6e6, end=3600)])  # 1 kWh over an hour: 1 kW
    job = QueuedJob("9", 0, JobFeatures(), owner=KEY, time_limit_s=1800)
    (fc,) = forecast_queue([job], [], None, runs)["9"]
    assert (fc.duration_s, fc.energy_j, fc.energy_upper_j) == (1800, 1.8e6, 1.8e6)
    roomy = QueuedJob("9", 0, JobFeatures(), owner=KEY, time_limit_s=7200)
    assert forecast_queue([roomy], [], None, runs)["9"][0].energy_j == 3.6e6
