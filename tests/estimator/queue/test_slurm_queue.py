"""Slurm's pending queue forecast by the estimator, against a real Slurm and Prometheus:
one forecast per held job and GPU model, gone once the job starts or is cancelled."""

from __future__ import annotations

import json

import pytest

from joulecast.estimator.cli import build, build_parser
from joulecast.estimator.pre.gpus import lookup
from tests.slurmcluster import start_slurm
from tests.stack import start_tsdb

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
        assert est.pending.skipped == 1
        slurm.run("scontrol", "release", held[0])
        slurm.wait_state(held[0], {"RUNNING", "COMPLETED"})
        slurm.run("scancel", held[1])
        slurm.wait_state(held[1], {"CANCELLED"})
        queue = est.cycle().queue
        assert held[0] not in queue and held[1] not in queue
    finally:
        slurm.run("scancel", "--user=root", check=False)
        db.stop()
