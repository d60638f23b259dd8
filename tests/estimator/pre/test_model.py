"""PRE models: the GPU table, both methods' estimator API, persistence, forecasts."""

from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd
import pytest
from sklearn.exceptions import NotFittedError

from joulecast.estimator.pre.cv import cross_validate
from joulecast.estimator.pre.dataset import DataError, load_reference_runs, load_training_table
from joulecast.estimator.pre.forecast import forecast_job
from joulecast.estimator.pre.gpus import UnknownGpu, all_specs, lookup
from joulecast.estimator.pre.model import PaperPRE, PhysicsPRE
from joulecast.estimator.pre.store import SEED_DIR, ModelError, load, save
from tests.conftest import shared_path

REQUIRED = [
    "V100",
    "T4",
    "A10",
    "A30",
    "A40",
    "A100 40GB",
    "A100 80GB",
    "L4",
    "L40S",
    "H100 PCIe",
    "H100 SXM",
    "H200",
    "RTX 2080",
    "RTX 3090",
    "RTX 4090",
    "GTX 750 Ti",
    "GTX 1050",
    "GTX 1660",
]
NVML_NAMES = [
    "NVIDIA A100-SXM4-80GB",
    "Tesla V100-SXM2-16GB",
    "NVIDIA GeForce RTX 3090",
    "NVIDIA H100 80GB HBM3",
    "NVIDIA H100 PCIe",
    "NVIDIA L4",
    "Tesla T4",
    "NVIDIA GeForce GTX 1660",
    "NVIDIA H200",
]


@pytest.fixture(scope="module")
def runs(request):
    return load_reference_runs(shared_path("data/reference_runs.csv"))


@pytest.mark.parametrize("name", REQUIRED + NVML_NAMES)
def test_gpu_table_covers_common_gpus(name):
    spec = lookup(name)
    assert spec.tdp_w > 0 and spec.fp32_tflops > 0 and spec.cuda_cores > 0


def test_gpu_table_values_and_unknown_gpu():
    assert lookup("NVIDIA A100-SXM4-80GB").memory_gb == 80 and lookup("rtx 3090").tdp_w == 350
    assert len(all_specs()) >= 30
    with pytest.raises(UnknownGpu, match="GPU spec table"):
        lookup("Radeon RX 7900")


def test_estimator_api(runs):
    small = runs.sample(150, random_state=0)
    for cls in (PaperPRE, PhysicsPRE):
        m = cls(interval_folds=0)
        with pytest.raises(NotFittedError):
            m.predict(small)
        assert m.fit(small) is m
        pred = m.predict(small)
        assert list(pred.columns) == ["power_w", "epoch_s", "epoch_energy_j"]
        assert np.allclose(pred["epoch_energy_j"], pred["power_w"] * pred["epoch_s"])
        assert (pred > 0).all().all()
        assert set(m.get_params()) >= {"level", "interval_folds"}


def test_intervals_are_wider_for_unseen_gpus(runs):
    small = runs.groupby("gpu_model").head(60)
    m = PhysicsPRE(n_estimators=100, interval_folds=3).fit(small)
    seen = m.predict_interval(small.head(1))
    unseen = m.predict_interval(small.head(1).assign(gpu_model="NVIDIA L4"))
    w_seen = seen["epoch_energy_j_upper"] / seen["epoch_energy_j_lower"]
    w_unseen = unseen["epoch_energy_j_upper"] / unseen["epoch_energy_j_lower"]
    assert float(w_unseen.iloc[0]) > float(w_seen.iloc[0]) > 1.0


def test_physics_carries_over_to_an_unseen_gpu_better_than_the_paper(runs):
    sub = runs.groupby("gpu_model").head(80).reset_index(drop=True)
    res = cross_validate(sub, ["pre_paper", "pre_physics"], "logo")
    paper, ours = res["pre_paper"]["overall"], res["pre_physics"]["overall"]
    assert ours["epoch_energy_j"].mape < paper["epoch_energy_j"].mape / 3
    assert ours["power_w"].mape < paper["power_w"].mape


def test_save_load_and_tamper_detection(tmp_path, runs):
    m = PhysicsPRE(n_estimators=50, interval_folds=0).fit(runs.head(100))
    save(tmp_path, {"pre_physics": m}, {"note": "test"})
    models, meta = load(tmp_path)
    assert meta["versions"]["scikit-learn"] and meta["note"] == "test"
    pd.testing.assert_frame_equal(
        models["pre_physics"].predict(runs.head(5)), m.predict(runs.head(5))
    )
    (tmp_path / "pre_physics.joblib").write_bytes(b"not a pickle")
    with pytest.raises(ModelError, match="SHA-256"):
        load(tmp_path)
    meta_path = tmp_path / "metadata.json"
    meta = json.loads(meta_path.read_text())
    older = dict(meta)
    del older["format"]  # written before formats were recorded: format 1
    meta_path.write_text(json.dumps(older))
    with pytest.raises(ModelError, match="model format 1.*joulecast pre train"):
        load(tmp_path)
    meta["methods"]["pre_physics"]["file"] = "../elsewhere.joblib"
    meta_path.write_text(json.dumps(meta))
    with pytest.raises(ModelError, match="inside"):
        load(tmp_path)
    shutil.rmtree(tmp_path)
    with pytest.raises(ModelError, match="no metadata.json"):
        load(tmp_path)


def test_seed_model_ships_and_forecasts():
    models, meta = load(SEED_DIR)
    assert set(models) == {"pre_paper", "pre_physics"}
    assert meta["training_data"]["rows"] == 700
    assert meta["cv_kfold"]["pre_physics"]["power_w"]["rmse"] < 7.5  # the study's 7.50 W
    fc = forecast_job(
        models,
        {
            "model_gflops": 4.1,
            "batch_size": 64,
            "train_samples": 20000,
            "eval_samples": 8000,
            "input_height": 224,
            "input_width": 224,
        },
        30,
        ["NVIDIA GeForce RTX 3090", "NVIDIA L4"],
    )
    # pre_paper speaks only for its training GPUs (the L4 is not one of them)
    assert sorted((f.method, f.gpu_model) for f in fc) == [
        ("pre_paper", "GeForce RTX 3090"),
        ("pre_physics", "GeForce RTX 3090"),
        ("pre_physics", "NVIDIA L4"),
    ]
    for f in fc:
        assert f.energy_lower_j <= f.energy_j <= f.energy_upper_j
        assert f.energy_j == pytest.approx(f.epoch_energy_j * 30)


def test_bad_training_data_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("gpu_model,power_w\nX,1\n")
    with pytest.raises(DataError, match="missing column"):
        load_training_table(bad)
    with pytest.raises(DataError, match="no such file"):
        load_training_table(tmp_path / "nope.csv")
