"""The energy counters against the simulated ground truth."""

from __future__ import annotations

import random
import time

import pytest

from joulecast.exporter.devices.simulated import SimulatedBackend, load_traces
from joulecast.exporter.energy import MonotonicCounter, PowerIntegrator
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.exporter.sampler import Sampler
from joulecast.schema import parse_job_spec
from tests.conftest import http, scrape, shared_path


def test_power_integrator_trapezoid_and_gap():
    integ = PowerIntegrator(max_gap_s=5.0)
    assert integ.add(0.0, 100.0) == 0.0
    assert integ.add(1.0, 200.0) == pytest.approx(150.0)
    assert integ.add(1.0, 500.0) == 0.0  # same timestamp: nothing added
    assert integ.add(101.0, 200.0) == pytest.approx(200.0 * 5.0)  # gap capped, power held flat
    assert integ.joules == pytest.approx(1150.0)


def test_monotonic_counter_wrap_and_reset():
    c = MonotonicCounter(wrap=100.0)
    c.update(90.0)
    assert c.update(95.0) == 5.0
    assert c.update(3.0) == pytest.approx(8.0)  # wrapped at 100
    r = MonotonicCounter()
    r.update(50.0)
    assert r.update(10.0) == 10.0  # reset: counts from zero
    assert r.total == 10.0


class FakeClock:
    def __init__(self) -> None:
        self.t = 1_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.mark.parametrize("hz", [10.0, 1.0])
def test_integrated_energy_matches_ground_truth(hz):
    """A GPU without a hardware counter: integrated power within 0.5 % of the truth."""
    clock = FakeClock()
    backend = SimulatedBackend(1, energy_counter=False, seed=3, warmup_s=20.0, cycle_s=6.0)
    registry = JobRegistry(GpuDirectory(tuple(backend.devices())), None, clock=clock)
    backend.set_busy(registry.busy)
    sampler = Sampler(backend, registry, gpu_hz=hz, clock=clock)
    rng = random.Random(1)
    sampler.sample_once()
    start_truth = backend.true_energy(0)
    registry.register(parse_job_spec({"job_id": "j", "epochs_planned": 5, "gpus": [0]}))
    for _ in range(int(600 * hz)):  # ten minutes of training, jittered sampling
        clock.t += (1.0 / hz) * (1.0 + rng.uniform(-0.2, 0.2))
        sampler.sample_once()
    snap = sampler.snapshot().gpus[0]
    truth = backend.true_energy(0) - start_truth
    measured = snap.integrated_energy_joules
    assert snap.counter_energy_joules is None and snap.energy_source == "power_integration"
    assert abs(measured - truth) / truth < 0.005
    # and the job received that energy (it is alone on the GPU)
    job = registry.get("j")
    assert abs(job.energy_joules - truth) / truth < 0.005
    assert 0 < job.idle_energy_joules < job.energy_joules


def test_hardware_counter_and_integration_side_by_side(make_exporter):
    """Served over HTTP: the NVML-style counter equals the truth; integration is beside it."""
    backend = SimulatedBackend(2, energy_counter=True, warmup_s=1.0, cycle_s=1.0)
    exp = make_exporter("--sampling.gpu-hz", "10", backend=backend)
    http("POST", exp.url + "/api/v1/jobs", {"job_id": "train", "epochs_planned": 3, "gpus": [1]})
    time.sleep(3.0)
    exp.sampler.sample_once()
    snap = exp.sampler.snapshot()
    text = scrape(exp.url)
    for g in snap.gpus:
        # The counter starts at the first read, as the simulated truth does: they agree exactly.
        assert g.counter_energy_joules == pytest.approx(backend.true_energy(g.info.index), rel=1e-9)
        # Integration over a few seconds of an uneven load is close, not equal: both are served.
        assert (
            abs(g.integrated_energy_joules - g.counter_energy_joules) / g.counter_energy_joules
            < 0.05
        )
    assert 'joulecast_gpu_power_integrated_energy_joules_total{gpu="1"' in text
    assert 'energy_source="nvml_counter"' in text and 'simulated="true"' in text
    # The busy GPU draws more than the idle one.
    assert snap.gpus[1].reading.power_watts > snap.gpus[0].reading.power_watts


def test_replayed_traces_are_served(make_exporter):
    traces = load_traces(shared_path("data/power_traces"))
    assert len(traces) == 10 and all(t.duration > 1000 for t in traces)
    backend = SimulatedBackend(2, traces=traces, time_scale=50.0)
    exp = make_exporter(backend=backend)
    http(
        "POST", exp.url + "/api/v1/jobs", {"job_id": "replay", "epochs_planned": 3, "gpus": [0, 1]}
    )
    time.sleep(1.0)
    exp.sampler.sample_once()
    snap = exp.sampler.snapshot()
    assert all(g.reading.power_watts > 0 for g in snap.gpus)
    assert exp.registry.get("replay").energy_joules > 0
