"""The NVML backend through a fake pynvml module that injects each fault."""

from __future__ import annotations

import pytest

from joulecast.exporter.devices.base import DeviceError
from joulecast.exporter.devices.nvml import NvmlBackend, nvml_available
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.exporter.sampler import Sampler
from joulecast.schema import parse_job_spec
from tests.conftest import http, scrape
from tests.exporter import fake_pynvml as fake


def two_gpus():
    return fake.make(
        [fake.FakeGpu(uuid="GPU-aaaa"), fake.FakeGpu(uuid="GPU-bbbb", name="NVIDIA H100 80GB HBM3")]
    )


def metric(text: str, name: str, gpu: str) -> list[str]:
    return [
        line for line in text.splitlines() if line.startswith(name + "{") and f'gpu="{gpu}"' in line
    ]


def test_units_are_converted_once():
    backend = NvmlBackend(two_gpus())
    info = backend.devices()[0]
    assert info.model == "NVIDIA A100-SXM4-40GB" and info.default_power_limit_watts == 400.0
    assert info.has_energy_counter
    r = backend.read(0, 1.0)
    assert r.power_watts == 250.0 and r.energy_joules == 1000.0
    assert (
        r.utilization_gpu_ratio == 0.9
        and r.sm_clock_hertz == 1.41e9
        and r.temperature_celsius == 55
    )


@pytest.mark.parametrize(
    "fn, code, kind, left_out",
    [
        (
            "nvmlDeviceGetPowerUsage",
            fake.NVML_ERROR_NOT_SUPPORTED,
            "not_supported",
            "joulecast_gpu_power_watts",
        ),
        (
            "nvmlDeviceGetTemperature",
            fake.NVML_ERROR_UNKNOWN,
            "call_error",
            "joulecast_gpu_temperature_celsius",
        ),
        (
            "nvmlDeviceGetUtilizationRates",
            fake.NVML_ERROR_NOT_SUPPORTED,
            "not_supported",
            "joulecast_gpu_utilization_ratio",
        ),
        (
            "nvmlDeviceGetMemoryInfo",
            fake.NVML_ERROR_UNKNOWN,
            "call_error",
            "joulecast_gpu_memory_used_bytes",
        ),
        (
            "nvmlDeviceGetClockInfo",
            fake.NVML_ERROR_UNKNOWN,
            "call_error",
            "joulecast_gpu_sm_clock_hertz",
        ),
        (
            "nvmlDeviceGetEnforcedPowerLimit",
            fake.NVML_ERROR_NOT_SUPPORTED,
            "not_supported",
            "joulecast_gpu_power_limit_watts",
        ),
    ],
)
def test_field_faults_leave_the_metric_out_and_count(make_exporter, fn, code, kind, left_out):
    nvml = two_gpus()
    exp = make_exporter(backend=NvmlBackend(nvml))
    nvml.faults[(fn, 1)] = code
    exp.sampler.sample_once()
    exp.sampler.sample_once()
    text = scrape(exp.url)
    assert metric(text, left_out, "0"), "the healthy GPU still reports"
    assert not metric(text, left_out, "1"), "the faulty field is left out"
    errors = metric(text, "joulecast_gpu_errors_total", "1")
    assert any(f'kind="{kind}"' in line and float(line.split()[-1]) >= 2 for line in errors)
    assert 'joulecast_scrape_collector_success{collector="gpu"} 1.0' in text


def test_device_lost_is_left_out_and_recovers(make_exporter):
    nvml = two_gpus()
    exp = make_exporter(backend=NvmlBackend(nvml))
    nvml.lost.add(1)
    exp.sampler.sample_once()
    text = scrape(exp.url)
    assert metric(text, "joulecast_gpu_up", "1")[0].endswith(" 0.0")
    assert not metric(text, "joulecast_gpu_power_watts", "1")
    assert any(
        'kind="device_lost"' in line for line in metric(text, "joulecast_gpu_errors_total", "1")
    )
    assert metric(text, "joulecast_gpu_power_watts", "0")
    nvml.lost.clear()
    exp.sampler.sample_once()
    assert metric(scrape(exp.url), "joulecast_gpu_power_watts", "1")


def test_energy_counter_not_supported_falls_back_to_integration():
    nvml = two_gpus()
    nvml.faults[("nvmlDeviceGetTotalEnergyConsumption", 0)] = fake.NVML_ERROR_NOT_SUPPORTED
    backend = NvmlBackend(nvml)
    assert not backend.devices()[0].has_energy_counter and backend.devices()[1].has_energy_counter
    clock = iter(float(t) for t in range(100))
    reg = JobRegistry(GpuDirectory(tuple(backend.devices())), None)
    s = Sampler(backend, reg, clock=lambda: next(clock))
    for _ in range(11):
        nvml.gpus[1].energy_mj += 300_000  # 300 J per second on GPU 1
        s.sample_once()
    g0, g1 = s.snapshot().gpus
    assert g0.energy_source == "power_integration" and g0.energy_joules == pytest.approx(2500.0)
    assert g1.energy_source == "nvml_counter" and g1.energy_joules == pytest.approx(3000.0)
    assert g1.integrated_energy_joules == pytest.approx(2500.0)  # side by side, they disagree


def test_mig_instances_never_double_count():
    nvml = fake.make(
        [
            fake.FakeGpu(
                uuid="GPU-mig0", mig=["MIG-aaaa-1", "MIG-aaaa-2"], mig_mem=[10 * 2**30, 30 * 2**30]
            )
        ]
    )
    backend = NvmlBackend(nvml)
    (info,) = backend.devices()
    assert [m.uuid for m in info.mig] == ["MIG-aaaa-1", "MIG-aaaa-2"]
    assert [m.memory_total_bytes for m in info.mig] == [10 * 2**30, 30 * 2**30]
    reg = JobRegistry(GpuDirectory(tuple(backend.devices())), None)
    reg.register(parse_job_spec({"job_id": "a", "epochs_planned": 2, "gpus": ["MIG-aaaa-1"]}))
    reg.register(parse_job_spec({"job_id": "b", "epochs_planned": 2, "gpus": ["MIG-aaaa-2"]}))
    clock = iter(float(t) for t in range(100))
    s = Sampler(backend, reg, clock=lambda: next(clock))
    for _ in range(5):
        nvml.gpus[0].energy_mj += 200_000
        s.sample_once()
    total = s.snapshot().gpus[0].energy_joules
    assert total == pytest.approx(800.0)
    a, b = reg.get("a").energy_joules, reg.get("b").energy_joules
    assert a + b == pytest.approx(total)  # the board's energy is split, never counted twice
    assert b == pytest.approx(3 * a)  # by the instances' share of the board


def test_pid_attribution_follows_processes():
    nvml = two_gpus()
    nvml.gpus[1].pids = [4242]
    backend = NvmlBackend(nvml)
    reg = JobRegistry(GpuDirectory(tuple(backend.devices())), None)
    reg.register(parse_job_spec({"job_id": "p", "epochs_planned": 2, "pids": [4242]}))
    clock = iter(float(t) for t in range(100))
    s = Sampler(backend, reg, clock=lambda: next(clock))
    for _ in range(3):
        nvml.gpus[0].energy_mj += 100_000
        nvml.gpus[1].energy_mj += 200_000
        s.sample_once()
    p = reg.get("p")
    assert p.energy_joules == pytest.approx(400.0)  # GPU 1 only
    # the GPU its process runs on gives its baselines a TDP and PRE a GPU model
    assert p.seen_gpus == (1,) and p.tdp_watts == pytest.approx(400.0)
    assert p.gpu_models == ("NVIDIA H100 80GB HBM3",)


def test_init_failure_is_a_clear_error():
    nvml = two_gpus()

    def boom():
        raise fake.NVMLError(fake.NVML_ERROR_UNKNOWN)

    nvml.nvmlInit = boom
    with pytest.raises(DeviceError, match="NVML could not be initialised"):
        NvmlBackend(nvml)
    assert not nvml_available(nvml)
    assert nvml_available(two_gpus())


def test_scrape_survives_a_broken_collector(make_exporter):
    exp = make_exporter("--backend", "simulated")
    exp.registry.snapshot = lambda: (_ for _ in ()).throw(RuntimeError("boom"))
    text = scrape(exp.url)
    assert 'joulecast_scrape_collector_success{collector="jobs"} 0.0' in text
    assert "joulecast_gpu_power_watts" in text
    assert http("GET", exp.url + "/healthz")[0] == 200
