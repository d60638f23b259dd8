"""The sync of a job source into the registry, with a source that says what it is told."""

from __future__ import annotations

from dataclasses import dataclass, field

from joulecast.exporter.devices.base import GpuInfo
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.exporter.sources.base import FoundJob
from joulecast.exporter.sources.sync import SourceSync
from joulecast.schema import FinishMarker, JobSpec, SchedulerLabels

SLURM = SchedulerLabels(scheduler="slurm", user="ada", account="ml")


@dataclass
class Told:
    name: str = "slurm"
    jobs: list[FoundJob] = field(default_factory=list)

    def poll(self) -> list[FoundJob]:
        return list(self.jobs)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def setup():
    clock = Clock()
    gpus = GpuDirectory(
        tuple(GpuInfo(i, f"GPU-{i}", "NVIDIA A100-SXM4-80GB", 80, 400.0) for i in range(2))
    )
    reg = JobRegistry(gpus, clock=clock)
    source = Told()
    return clock, reg, source, SourceSync(reg, source)


def running(job_id: str, gpu: int = 0, at: float = 990.0) -> FoundJob:
    return FoundJob(JobSpec(job_id, 0, gpus=(gpu,), scheduler=SLURM), started_at=at)


def test_found_then_ended_with_the_source_outcome_and_times():
    clock, reg, source, sync = setup()
    source.jobs = [running("7")]
    sync.apply(source.poll())
    r = reg.get("7")
    assert r.live and r.created_at == 990.0 and r.spec.scheduler == SLURM and r.epochs_planned == 0
    reg.attribute(0, 100.0, 20.0, 1.0, 1.0)
    clock.now = 1010.0
    source.jobs = [FoundJob(running("7").spec, 990.0, ended_at=1005.0, outcome="timeout")]
    sync.apply(source.poll())
    r = reg.get("7")
    assert not r.live and r.outcome == "timeout" and r.finished_at == 1005.0
    assert sync.counts.registered == 1 and sync.counts.ended == 1


def test_the_scheduler_corrects_the_outcome_its_client_gave_and_never_reopens():
    clock, reg, source, sync = setup()
    source.jobs = [running("8")]
    sync.apply(source.poll())
    reg.finish("8", FinishMarker("finished"))  # the client's word
    sync.apply(source.poll())  # Slurm still says running: the ended job stays ended
    assert not reg.get("8").live
    source.jobs = [FoundJob(running("8").spec, 990.0, ended_at=1000.0, outcome="cancelled")]
    sync.apply(source.poll())
    assert reg.get("8").outcome == "cancelled"


def test_a_run_its_budget_stopped_keeps_that_outcome_over_slurms_completed():
    clock, reg, source, sync = setup()
    source.jobs = [running("9"), running("10", gpu=1)]
    sync.apply(source.poll())
    for job_id in ("9", "10"):
        reg.finish(job_id, FinishMarker("budget_stopped"))
    ended = {"9": "finished", "10": "timeout"}  # COMPLETED; killed at its limit meanwhile
    source.jobs = [
        FoundJob(running(j).spec, 990.0, ended_at=1000.0, outcome=o) for j, o in ended.items()
    ]
    sync.apply(source.poll())
    assert reg.get("9").outcome == "budget_stopped" and reg.get("10").outcome == "timeout"


def test_a_client_job_gains_the_labels_and_a_vanished_job_ends_lost():
    clock, reg, source, sync = setup()
    reg.register(JobSpec("9", 5, gpus=(1,)))  # the client registered first
    source.jobs = [running("9", gpu=1), running("10")]
    sync.apply(source.poll())
    assert reg.get("9").spec.scheduler == SLURM and reg.get("9").epochs_planned == 5
    source.jobs = [running("9", gpu=1)]
    sync.apply(source.poll())
    assert reg.get("10").live  # absent once: not yet
    sync.apply(source.poll())
    assert reg.get("10").outcome == "lost" and sync.counts.lost == 1


def test_ended_jobs_never_seen_running_are_not_invented():
    clock, reg, source, sync = setup()
    source.jobs = [FoundJob(running("11").spec, 990.0, ended_at=995.0, outcome="finished")]
    sync.apply(source.poll())
    assert reg.snapshot() == [] and sync.counts.missed == 1
    source.jobs = [running("12", gpu=7)]  # a GPU this node does not have
    sync.apply(source.poll())
    assert reg.snapshot() == [] and sync.counts.refused == 1
