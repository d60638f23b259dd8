"""Jobs killed without a word: not charged once their processes are gone, lost after the
grace period, continued by a resume; heartbeats for processes the exporter cannot see."""

from __future__ import annotations

from joulecast.exporter.devices.base import GpuInfo
from joulecast.exporter.jobs.registry import GpuDirectory, JobRegistry
from joulecast.schema import StepMarker, parse_job_spec


class Table:
    """A process table the test controls: pid -> start time."""

    def __init__(self) -> None:
        self.procs: dict[int, float] = {}

    def __call__(self, pid: int) -> float | None:
        return self.procs.get(pid)


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def registry(table: Table, clock: Clock) -> JobRegistry:
    gpus = GpuDirectory((GpuInfo(0, "GPU-a", "Sim", 1, 300.0),), lists_processes=False)
    return JobRegistry(gpus, lost_after_s=30.0, clock=clock, processes=table)


def spec(job_id: str, **extra):
    return parse_job_spec({"job_id": job_id, "epochs_planned": 5, "gpus": [0], **extra})


def test_a_killed_job_stops_being_charged_then_is_lost_and_a_resume_continues_it():
    table, clock = Table(), Clock()
    table.procs[4242] = 50.0
    reg = registry(table, clock)
    reg.register(spec("run", pids=[4242]))
    reg.attribute(0, 100.0, 20.0, 1.0, 1.0)
    del table.procs[4242]  # SIGKILL
    clock.t += 1
    assert reg.check_liveness() == []  # gone, within the grace period
    record = reg.get("run")
    assert record.gone_since == 1000.0 and record.live
    reg.attribute(0, 100.0, 20.0, 1.0, 1.0)
    assert reg.get("run").energy_joules == 100.0  # not charged while gone
    clock.t += 30
    assert reg.check_liveness() == ["run"]
    lost = reg.get("run")
    assert lost.outcome == "lost" and lost.finished_at == 1000.0
    table.procs[5151] = 1031.0  # the resumed run
    record, created = reg.register(spec("run", pids=[5151]))
    assert not created and record.live and record.gone_since is None
    reg.attribute(0, 100.0, 20.0, 1.0, 1.0)
    assert reg.get("run").energy_joules == 200.0


def test_a_reused_pid_is_not_the_job():
    table, clock = Table(), Clock()
    table.procs[77] = 10.0
    reg = registry(table, clock)
    reg.register(spec("run", pids=[77]))
    table.procs[77] = 999.0  # another process got the PID
    assert reg.check_liveness() == []
    assert reg.get("run").gone_since is not None


def test_a_job_without_visible_processes_lives_by_its_heartbeat():
    table, clock = Table(), Clock()
    reg = registry(table, clock)
    reg.register(spec("beats", pids=[12345], heartbeat_s=2))  # PID from another namespace
    assert reg.get("beats").processes == ()
    for _ in range(5):
        clock.t += 2
        reg.heartbeat("beats")
        assert reg.check_liveness() == [] and reg.get("beats").gone_since is None
    last = clock.t
    clock.t += 7  # three beats missed
    reg.check_liveness()
    assert reg.get("beats").gone_since == last
    clock.t += 30
    assert reg.check_liveness() == ["beats"]


def test_a_job_with_nothing_to_judge_it_by_is_never_lost():
    table, clock = Table(), Clock()
    reg = registry(table, clock)
    reg.register(spec("by-hand"))
    clock.t += 3600
    assert reg.check_liveness() == [] and reg.get("by-hand").live


def test_step_markers_charge_their_own_time_and_rewind_only_after_a_resume():
    table, clock = Table(), Clock()
    reg = registry(table, clock)
    reg.register(spec("llm", steps_planned=1000))
    for _ in range(10):
        clock.t += 0.1
        reg.attribute(0, 10.0, 2.0, 1.0, 0.1)
        reg.note_sample(clock.t)
    record = reg.mark_steps("llm", StepMarker(50, time=1000.5, tokens=4096))
    assert record.steps_completed == 50 and record.step_end_timestamp == 1000.5
    assert abs(record.step_end_energy_joules - 50.0) < 1e-6
    assert reg.mark_steps("llm", StepMarker(50)).steps_completed == 50  # a retry: no-op
    try:
        reg.mark_steps("llm", StepMarker(40))
        raise AssertionError("a step going back without a resume was accepted")
    except Exception as err:
        assert getattr(err, "status", None) == 409
    reg.register(spec("llm"))  # resumed from a checkpoint at step 40
    assert reg.mark_steps("llm", StepMarker(41)).steps_completed == 41
    assert reg.get("llm").steps_planned == 1000  # a plan is kept when not restated


def test_an_epoch_that_ended_before_the_first_reading_keeps_its_own_time():
    from joulecast.schema import EpochMarker

    table, clock = Table(), Clock()
    reg = registry(table, clock)
    reg.register(spec("late"))  # registered (first reading) at t=1000
    record = reg.mark_epoch("late", EpochMarker(1, time=990.0))
    assert record.epoch_end_timestamp == 990.0 and record.epoch_end_energy_joules == 0.0
