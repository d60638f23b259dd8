"""The training-side client against a real exporter, and with the exporter down."""

from __future__ import annotations

import logging

import pytest

import joulecast
from joulecast.client import gpus_from_environment


def test_context_manager_posts_markers(make_exporter):
    exp = make_exporter("--backend", "simulated", "--simulated-gpus", "2")
    with joulecast.job(
        "run-42", epochs=3, url=exp.url, gpus=[1], features={"batch_size": 64, "model_gflops": 4.1}
    ) as job:
        for _ in range(3):
            job.epoch_end({"loss": 0.1, "not_a_number": "x"})
    record = exp.registry.get("run-42")
    assert record.epochs_completed == 3 and not record.live and record.gpus == (1,)
    assert record.spec.features.batch_size == 64
    assert record.last_metrics == {"loss": 0.1}


def test_exporter_down_warns_once_and_training_goes_on(caplog):
    caplog.set_level(logging.WARNING, logger="joulecast")
    with joulecast.job("offline", epochs=5, url="http://127.0.0.1:9", gpus=[0]) as job:
        for _ in range(5):
            job.epoch_end()
    assert job.epoch == 5
    warnings = [r for r in caplog.records if "unreachable" in r.message]
    assert len(warnings) == 1


def test_exporter_coming_up_late_gets_the_job(make_exporter):
    job = joulecast.job("late", epochs=4, url="http://127.0.0.1:9", gpus=[0])
    job.register()
    job.epoch_end()
    exp = make_exporter("--backend", "simulated")
    job.url = exp.url
    job.epoch_end()  # registers now; epoch 1 was never seen, epoch 2 is accepted
    assert exp.registry.get("late").epochs_completed == 2


def test_bad_arguments_raise_at_once():
    with pytest.raises(joulecast.SchemaError):
        joulecast.job("bad id", epochs=3)
    with pytest.raises(joulecast.SchemaError):
        joulecast.job("ok", epochs=3, features={"batch_size": -1})


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"CUDA_VISIBLE_DEVICES": "0,2"}, ([0, 2], [])),
        ({"CUDA_VISIBLE_DEVICES": "MIG-abcd-1"}, ([], ["MIG-abcd-1"])),
        ({"SLURM_STEP_GPUS": "3"}, ([3], [])),
        ({"CUDA_VISIBLE_DEVICES": "NoDevFiles", "SLURM_JOB_GPUS": "1"}, ([1], [])),
        ({}, ([], [])),
        # in a container: the toolkit's host UUIDs, not the container-relative index
        (
            {"CUDA_VISIBLE_DEVICES": "0", "NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,GPU-bbbb"},
            ([], ["GPU-aaaa", "GPU-bbbb"]),
        ),
        (
            {"CUDA_VISIBLE_DEVICES": "GPU-bbbb", "NVIDIA_VISIBLE_DEVICES": "GPU-aaaa,GPU-bbbb"},
            ([], ["GPU-bbbb"]),
        ),
        ({"CUDA_VISIBLE_DEVICES": "1", "NVIDIA_VISIBLE_DEVICES": "all"}, ([1], [])),
        ({"NVIDIA_VISIBLE_DEVICES": "void", "SLURM_JOB_GPUS": "2"}, ([2], [])),
        ({"CUDA_VISIBLE_DEVICES": "not a list"}, ([], [])),
    ],
)
def test_gpus_from_environment(env, expected):
    assert gpus_from_environment(env) == expected


def test_embedded_mode_projects_in_process(caplog):
    """No exporter, no Prometheus: the job measures energy through a callable."""
    caplog.set_level(logging.WARNING, logger="joulecast")
    clock = {"t": 0.0, "e": 0.0}
    planned = 20
    job = joulecast.job(
        "local", epochs=planned, url="http://127.0.0.1:9", gpus=[0], embedded=lambda: clock["e"]
    )
    job.embedded._clock = lambda: clock["t"]
    with job:
        for epoch in range(1, planned + 1):
            clock["t"] += 10.0
            clock["e"] += 3000.0 if epoch == 1 else 1000.0
            job.epoch_end()
            if epoch == 8:
                pr = job.embedded.last["step_epoch"]
                assert pr.energy_j == pytest.approx(3000 + 19 * 1000)
    reports = [r.message for r in caplog.records if "projected total" in r.message]
    assert len(reports) == 1 and "after epoch 6/20" in reports[0]


def test_embedded_nvml_energy_uses_the_counter_or_integrates_power(monkeypatch):
    """NvmlEnergy through a fake pynvml: the hardware counter, else power integration."""
    import sys

    from joulecast.embedded import NvmlEnergy
    from tests.exporter import fake_pynvml as fake

    nvml = fake.make([fake.FakeGpu(), fake.FakeGpu(uuid="GPU-b")])
    monkeypatch.setitem(sys.modules, "pynvml", nvml)
    e = NvmlEnergy([1])
    nvml.gpus[1].energy_mj += 5_000
    nvml.gpus[0].energy_mj += 9_000  # not this job's GPU
    assert e() == pytest.approx(5.0)
    nvml.faults[("nvmlDeviceGetTotalEnergyConsumption", 0)] = fake.NVML_ERROR_NOT_SUPPORTED
    e2 = NvmlEnergy([0], hz=50)
    import time

    time.sleep(0.3)
    assert 250.0 * 0.15 < e2() < 250.0 * 0.6  # 250 W integrated for ~0.3 s
    e2._stop.set()
