"""Forecast domains: each PRE method speaks only where it may; placement uses the method
the model store rates best for each GPU."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from joulecast.estimator.pre.forecast import forecast_job, method_ratings, placement
from joulecast.estimator.pre.gpus import all_names, lookup
from joulecast.estimator.pre.store import SEED_DIR, load
from joulecast.estimator.queue.collector import QueueCollector

README_JOB = {
    "model_gflops": 4.1,
    "batch_size": 256,
    "input_height": 224,
    "input_width": 224,
    "train_samples": 1_281_167,
    "eval_samples": 50_000,
}


#: inside the box of job features the reference runs span
IN_BOX = {
    "model_gflops": 4.1,
    "batch_size": 64,
    "input_height": 128,
    "input_width": 128,
    "train_samples": 20_000,
    "eval_samples": 8_000,
}


@pytest.fixture(scope="module")
def seed():
    models, meta = load(SEED_DIR)
    return models, method_ratings(meta)


def test_paper_method_only_for_its_training_gpus_and_feature_box(seed):
    models, ratings = seed
    fcs = forecast_job(models, IN_BOX, 30, all_names(), ratings)
    trained = {lookup(g).name for g in models["pre_paper"].seen_gpus_}
    paper_gpus = {f.gpu_model for f in fcs if f.method == "pre_paper"}
    assert paper_gpus == trained  # never a clipped floor value for a GPU it never saw
    assert {f.gpu_model for f in fcs if f.method == "pre_physics"} == set(all_names())
    # the README's ImageNet job is far outside the box: pre_paper says nothing for it
    readme = forecast_job(models, README_JOB, 90, all_names(), ratings)
    assert not [f for f in readme if f.method == "pre_paper"]


def test_no_forecast_below_idle_power_or_of_zero_energy(seed):
    models, ratings = seed
    for f in forecast_job(models, README_JOB, 90, all_names(), ratings):
        tdp = lookup(f.gpu_model).tdp_w
        assert f.energy_j > 0 and f.duration_s > 0
        assert f.power_w > 0.1 * tdp, (f.gpu_model, f.method, f.power_w)  # idle is 10-30 % of TDP
        assert f.energy_lower_j <= f.energy_j <= f.energy_upper_j


def test_one_recommended_method_per_gpu_and_placement_by_it(seed):
    models, ratings = seed
    fcs = forecast_job(models, README_JOB, 90, all_names(), ratings)
    for gpu in all_names():
        assert sum(f.recommended for f in fcs if f.gpu_model == gpu) == 1, gpu
    best = placement(fcs)
    assert best is not None and best.recommended
    assert best.energy_j == min(f.energy_j for f in fcs if f.recommended)


def test_queue_gauges_follow_the_domain_rule(seed):
    models, ratings = seed
    gpus = ["NVIDIA A100-SXM4-80GB", "GeForce RTX 3090"]
    queue = {"next-run": forecast_job(models, IN_BOX, 30, gpus, ratings)}
    reg = CollectorRegistry()
    reg.register(QueueCollector(lambda: queue))
    text = generate_latest(reg).decode()
    energy = [
        ln for ln in text.splitlines() if ln.startswith("joulecast_queue_forecast_energy_joules{")
    ]
    assert not [ln for ln in energy if "A100" in ln and 'method="pre_paper"' in ln]
    assert [ln for ln in energy if "RTX 3090" in ln and 'method="pre_paper"' in ln]
    best = [ln for ln in text.splitlines() if ln.startswith("joulecast_queue_best_gpu_info{")]
    assert len(best) == 1  # one placement per queued job


def test_cli_leads_with_the_requested_gpu_and_its_recommended_method():
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "joulecast.estimator.commands",
            "forecast",
            "--gpu",
            "NVIDIA A100-SXM4-80GB",
            "--gflops",
            "4.1",
            "--batch-size",
            "256",
            "--input-size",
            "224x224",
            "--train-samples",
            "1281167",
            "--eval-samples",
            "50000",
            "--epochs",
            "90",
            "--all-gpus",
            "--json",
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    rows = json.loads(out.stdout)
    assert rows[0]["gpu_model"] == "NVIDIA A100 SXM4 80GB" and rows[0]["recommended"]
    rest = [r for r in rows if r["gpu_model"] != rows[0]["gpu_model"]]
    assert all(r["recommended"] for r in rest)
    assert [r["energy_j"] for r in rest] == sorted(r["energy_j"] for r in rest)
    assert not [r for r in rows if r["energy_j"] <= 0 or r["power_w"] < 5]
