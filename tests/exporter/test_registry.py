"""Energy attribution of the job registry: equal split, MIG shares, TDP of a MIG job."""

from __future__ import annotations

import pytest

from joulecast.exporter.devices.base import GpuInfo, MigInstance
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.schema import parse_job_spec

GiB = 2**30


def mig_board() -> GpuDirectory:
    instances = (
        MigInstance("MIG-1g", 1, 0, 10 * GiB),
        MigInstance("MIG-2g", 2, 0, 20 * GiB),
        MigInstance("MIG-4g", 3, 0, 40 * GiB),
    )
    board = GpuInfo(
        index=0,
        uuid="GPU-board",
        model="NVIDIA A100-SXM4-80GB",
        memory_total_bytes=80 * GiB,
        default_power_limit_watts=400.0,
        mig=instances,
    )
    other = GpuInfo(1, "GPU-plain", "NVIDIA A100-SXM4-80GB", 80 * GiB, 400.0)
    return GpuDirectory((board, other))


def register(reg: JobRegistry, job_id: str, gpus: list) -> None:
    reg.register(parse_job_spec({"job_id": job_id, "epochs_planned": 3, "gpus": gpus}))


def test_mig_jobs_get_their_slice_of_idle_and_share_the_active_energy():
    reg = JobRegistry(mig_board())
    register(reg, "small", ["MIG-1g"])
    register(reg, "large", ["MIG-4g"])
    # 700 J in the interval, 140 J of it idle power: slices of 1/7, 2/7 (unused), 4/7
    reg.attribute(0, joules=700.0, idle_joules=140.0, utilization=0.9, dt=1.0)
    small, large = reg.get("small"), reg.get("large")
    assert small.idle_energy_joules == pytest.approx(20.0)
    assert large.idle_energy_joules == pytest.approx(80.0)
    assert small.energy_joules == pytest.approx(20.0 + 560.0 * 1 / 5)
    assert large.energy_joules == pytest.approx(80.0 + 560.0 * 4 / 5)
    # the unused 2g slice's idle energy is nobody's; nothing is counted twice
    assert small.energy_joules + large.energy_joules == pytest.approx(700.0 - 40.0)


def test_mig_job_baselines_count_its_share_of_the_board():
    reg = JobRegistry(mig_board())
    register(reg, "small", ["MIG-1g"])
    register(reg, "both", ["MIG-1g", "MIG-2g"])
    assert reg.get("small").tdp_watts == pytest.approx(400.0 / 7)
    assert reg.get("small").gpu_memory_bytes == 10 * GiB
    assert reg.get("both").tdp_watts == pytest.approx(400.0 * 3 / 7)
    assert reg.get("both").gpu_memory_bytes == 30 * GiB


def test_shared_board_without_mig_is_split_equally():
    reg = JobRegistry(mig_board())
    register(reg, "a", [1])
    register(reg, "b", ["GPU-plain"])
    reg.attribute(1, joules=300.0, idle_joules=60.0, utilization=None, dt=1.0)
    for job in ("a", "b"):
        assert reg.get(job).energy_joules == pytest.approx(150.0)
        assert reg.get(job).idle_energy_joules == pytest.approx(30.0)
    assert reg.get("a").tdp_watts == 400.0


def test_a_whole_board_claim_beside_mig_jobs_falls_back_to_equal_split():
    reg = JobRegistry(mig_board())
    register(reg, "mig", ["MIG-1g"])
    register(reg, "board", [0])
    reg.attribute(0, joules=300.0, idle_joules=0.0, utilization=None, dt=1.0)
    assert reg.get("mig").energy_joules == pytest.approx(150.0)
    assert reg.get("board").energy_joules == pytest.approx(150.0)


def test_finished_mig_job_leaves_the_active_energy_to_the_others():
    reg = JobRegistry(mig_board())
    register(reg, "small", ["MIG-1g"])
    register(reg, "large", ["MIG-4g"])
    reg.finish("small")
    reg.attribute(0, joules=700.0, idle_joules=140.0, utilization=None, dt=1.0)
    assert reg.get("small").energy_joules == 0.0
    assert reg.get("large").energy_joules == pytest.approx(80.0 + 560.0)


def test_pid_only_job_gets_every_gpu_where_processes_cannot_be_seen():
    infos = mig_board().infos
    spec = parse_job_spec({"job_id": "p", "epochs_planned": 3, "pids": [4242]})
    blind = JobRegistry(GpuDirectory(infos, lists_processes=False))  # simulated GPUs
    blind.register(spec)
    assert blind.get("p").gpus == (0, 1)
    seeing = JobRegistry(GpuDirectory(infos))  # NVML: placed by its processes instead
    seeing.register(spec)
    assert seeing.get("p").gpus == ()
