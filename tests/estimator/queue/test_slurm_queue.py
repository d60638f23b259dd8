"""Slurm's pending queue forecast by the estimator, against a real Slurm and Prometheus:
one forecast per held job and GPU model, gone once the job starts or is cancelled; a job
that states no plan forecast from the finished runs of the same user and name, measured by
the exporter's Slurm source, remembered across a restart."""

from __future__ import annotations

import json

import pytest

from joulecast.estimator.cli import build, build_parser
from joulecast.estimator.pre.gpus import lookup
from tests.slurmcluster import start_slurm
from tests.stack import prom_query, start_tsdb, wait_for

pytestmark = pytest.mark.integration
GPU = "NVIDIA A100-SXM4-80GB"
PLAN = {
    "joulecast": {
        "epochs": 20,
        "gpu_model": GPU,
        "model_gflops": 4.1,
        "batch_size": 64,
        "train_samples": 50000,
    }
}


@pytest.fixture(scope="module")
def slurm():
    cluster = start_slurm(gpus=2)
    yield cluster
    cluster.stop()


def test_held_jobs_are_forecast_until_they_start_or_are_cancelled(slurm, tmp_path):
    db = start_tsdb("prometheus", tmp_path, {})
    try:
        args = build_parser().parse_args(
            [
                "--prometheus.url", db.url,
                "--web.listen-address", "127.0.0.1:0",
                "--step.calibration-file", str(tmp_path / "calibration.json"),
                "--queue.slurm", "--queue.slurm-command", slurm.squeue_command,
            ]
        )  # fmt: skip
        est = build(args).estimator
        comment = json.dumps(PLAN)
        held = [
            slurm.sbatch(
                "--hold", "--gres=gpu:1", "-J", f"h{i}", "--comment", comment, "--wrap", "sleep 30"
            )
            for i in range(2)
        ]
        bare = slurm.sbatch("--hold", "--gres=gpu:1", "-J", "bare", "--wrap", "sleep 1")
        queue = est.cycle().queue
        assert set(held) <= set(queue) and bare not in queue  # no plan: never made up
        for job_id in held:
            forecasts = queue[job_id]
            assert forecasts and {f.gpu_model for f in forecasts} == {lookup(GPU).name}
            assert all(f.energy_j > 0 and f.energy_lower_j <= f.energy_j for f in forecasts)
            assert len({f.method for f in forecasts}) == len(forecasts)  # one per method
        slurm.run("scontrol", "release", held[0])
        slurm.wait_state(held[0], {"RUNNING", "COMPLETED"})
        slurm.run("scancel", held[1])
        slurm.wait_state(held[1], {"CANCELLED"})
        queue = est.cycle().queue
        assert held[0] not in queue and held[1] not in queue
    finally:
        slurm.run("scancel", "--user=root", check=False)
        db.stop()


def _estimator(db, slurm, runs_file):
    args = build_parser().parse_args(
        [
            "--prometheus.url", db.url,
            "--web.listen-address", "127.0.0.1:0",
            "--queue.slurm", "--queue.slurm-command", slurm.squeue_command,
            "--queue.runs-file", str(runs_file),
        ]
    )  # fmt: skip
    return build(args).estimator


def test_a_job_without_a_plan_is_forecast_from_past_runs_of_its_name(
    slurm, make_exporter, tmp_path
):
    exp = make_exporter(*slurm.exporter_flags(2))
    db = start_tsdb("prometheus", tmp_path, {"exporter": [exp.url]})
    try:
        past = [
            slurm.sbatch("--gres=gpu:1", "-J", "nightly", "--wrap", f"sleep {s}") for s in (3, 5)
        ]
        wait_for(
            lambda: (
                len(prom_query(db.url, 'joulecast_job_info{job_name="nightly",state="finished"}'))
                == 2
            ),
            timeout=90,
        )
        runs_file = tmp_path / "runs.json"
        est = _estimator(db, slurm, runs_file)
        est.cycle()
        runs = est.runs.runs(("slurm", "root", "nightly"))
        assert sorted(r.job_id for r in runs) == sorted(past)
        measured = {r.job_id: r.energy_j for r in runs}
        for job_id in past:  # what the exporter charged, nothing made up
            assert measured[job_id] == pytest.approx(
                exp.registry.get(job_id).energy_joules, rel=0.05
            )
        again = slurm.sbatch("--hold", "--gres=gpu:1", "-J", "nightly", "--wrap", "sleep 1")
        stranger = slurm.sbatch("--hold", "--gres=gpu:1", "-J", "never-ran", "--wrap", "sleep 1")
        queue = est.cycle().queue
        assert stranger not in queue  # no plan and no past run: not forecast
        (fc,) = queue[again]
        model = exp.registry.get(past[0]).gpu_models[0]
        assert (fc.method, fc.gpu_model) == ("history", model)
        assert min(measured.values()) == fc.energy_lower_j <= fc.energy_j <= fc.energy_upper_j
        assert fc.energy_upper_j == max(measured.values())
        assert fc.duration_s > 2
        restarted = _estimator(db, slurm, runs_file)  # the runs come back from the file
        assert restarted.runs.runs(("slurm", "root", "nightly")) == runs
        slurm.run("scancel", again, stranger)
    finally:
        slurm.run("scancel", "--user=root", check=False)
        db.stop()
