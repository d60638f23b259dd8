"""The training-side client against a real exporter, and with the exporter down."""

from __future__ import annotations

import logging
import subprocess
import sys
import time

import pytest

import joulecast
from joulecast.client import Response, gpus_from_environment, rank_from_environment
from tests.conftest import http
from tests.stack import Forwarder, free_port


def test_context_manager_posts_markers(make_exporter):
    exp = make_exporter("--backend", "simulated", "--simulated.gpus", "2")
    with joulecast.job(
        "run-42", epochs=3, url=exp.url, gpus=[1], features={"batch_size": 64, "model_gflops": 4.1}
    ) as job:
        for _ in range(3):
            job.epoch_end({"loss": 0.1, "not_a_number": "x"})
    record = exp.registry.get("run-42")
    assert record.epochs_completed == 3 and not record.live and record.gpus == (1,)
    assert record.spec.features.batch_size == 64
    assert record.last_metrics == {"loss": 0.1}


def test_exporter_down_warns_once_and_reports_what_was_not_delivered(caplog):
    caplog.set_level(logging.WARNING, logger="joulecast")
    started = time.monotonic()
    with joulecast.job(
        "offline", epochs=5, url="http://127.0.0.1:9", gpus=[0], flush_timeout=0.5
    ) as job:
        for _ in range(5):
            job.epoch_end()
    assert job.epoch == 5
    assert time.monotonic() - started < 10  # training never waited on the network
    messages = [r.message for r in caplog.records]
    assert sum("unreachable" in m for m in messages) == 1
    lost = [m for m in messages if "could not be delivered" in m]
    assert len(lost) == 1 and "7 marker(s)" in lost[0]  # registration, 5 epochs, finish


def test_markers_queued_while_the_exporter_is_away_are_all_delivered(make_exporter):
    """The exporter is unreachable for the first half of the run: every epoch is recorded,
    charged the job's energy at its own end time, not at its late delivery."""
    exp = make_exporter("--backend", "simulated")
    port = free_port()
    job = joulecast.job(
        "late", epochs=6, url=f"http://127.0.0.1:{port}", gpus=[0], flush_timeout=20
    )
    assert http("POST", exp.url + "/api/v1/jobs", job.spec().as_dict())[0] == 201
    job.__enter__()  # cannot reach the exporter: queued
    ends = []
    for half in (0, 1):
        if half == 1:
            forwarder = Forwarder(port, int(exp.url.rsplit(":", 1)[1]))
        for _ in range(3):
            time.sleep(0.4)
            job.epoch_end({"loss": 1.0})
            ends.append(time.time())
    job.__exit__(None, None, None)
    forwarder.close()
    record = exp.registry.get("late")
    assert record.epochs_completed == 6 and record.outcome == "finished"
    epochs = exp.registry.epochs("late")
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5, 6]
    for e, end in zip(epochs, ends, strict=True):
        assert end - 0.05 < e["timestamp"] <= end, (epochs, ends)
    energies = [0.0] + [e["energy_joules"] for e in epochs]
    per_epoch = [b - a for a, b in zip(energies, energies[1:], strict=False)]
    # equal epochs at a steady simulated load: no burst of near-zero deltas at delivery
    assert min(per_epoch[1:]) > 0.5 * max(per_epoch[1:]), per_epoch


def test_crash_marks_the_job_failed_and_resume_continues_it(make_exporter):
    exp = make_exporter("--backend", "simulated")
    with (
        pytest.raises(RuntimeError),
        joulecast.job("crashy", epochs=6, url=exp.url, gpus=[0]) as job,
    ):
        for epoch in range(1, 7):
            job.epoch_end({"e": epoch})
            if epoch == 3:
                raise RuntimeError("out of memory")
    assert exp.registry.get("crashy").outcome == "failed"
    # the script restarts from its checkpoint of epoch 2 (epoch 3 is trained again)
    with joulecast.job("crashy", epochs=6, url=exp.url, gpus=[0], start_epoch=2) as job:
        for epoch in range(3, 7):
            job.epoch_end({"e": 10 * epoch})
    record = exp.registry.get("crashy")
    assert record.epochs_completed == 6 and record.outcome == "finished"
    got = [(e["epoch"], e["metrics"]["e"]) for e in exp.registry.epochs("crashy")]
    assert got == [(1, 1), (2, 2), (3, 30), (4, 40), (5, 50), (6, 60)]


def test_kill_then_rerun_continues_from_the_recorded_epoch(make_exporter):
    """No finish was posted (kill -9); a plain loop without start_epoch continues."""
    exp = make_exporter("--backend", "simulated")
    first = joulecast.job("killed", epochs=5, url=exp.url, gpus=[0])
    first.__enter__()
    first.epoch_end()
    first.epoch_end()
    assert first.flush(5)
    with joulecast.job("killed", epochs=5, url=exp.url, gpus=[0]) as job:
        assert job.epoch == 2
        for _ in range(3):
            job.epoch_end()
    assert [e["epoch"] for e in exp.registry.epochs("killed")] == [1, 2, 3, 4, 5]


def test_odd_metric_names_and_non_finite_values(make_exporter, caplog):
    caplog.set_level(logging.WARNING, logger="joulecast")
    exp = make_exporter("--backend", "simulated")
    with joulecast.job("odd", epochs=2, url=exp.url, gpus=[0]) as job:
        job.epoch_end({"val_acc@1": 0.5, "val/loss": 1.5, "inf": float("inf")})
        job.epoch_end({"val_acc@1": 0.6, "nan": float("nan"), "1st": 2})
    epochs = exp.registry.epochs("odd")
    assert [e["metrics"] for e in epochs] == [
        {"val_acc_1": 0.5, "val_loss": 1.5},
        {"val_acc_1": 0.6, "_1st": 2.0},
    ]
    assert sum("non-finite" in r.message for r in caplog.records) == 1


def test_a_refused_marker_is_a_warning_that_names_it(make_exporter, caplog):
    caplog.set_level(logging.WARNING, logger="joulecast")
    exp = make_exporter("--backend", "simulated")
    with joulecast.job("refused", epochs=3, url=exp.url, gpus=[0]) as job:
        job.epoch_end()
        job.epoch_end(epoch=1, metrics={"other": 1})  # conflicts with the recorded epoch 1
    refused = [r.message for r in caplog.records if "refused" in r.message]
    assert len(refused) == 1 and "epoch 1 of job refused (HTTP 409" in refused[0]


def test_only_rank_zero_posts_markers_and_every_rank_attaches(make_exporter):
    exp = make_exporter("--backend", "simulated", "--simulated.gpus", "2")
    rank1 = joulecast.job("ddp", epochs=2, url=exp.url, gpus=[1], rank=1)
    rank1.__enter__()
    with joulecast.job("ddp", epochs=2, url=exp.url, gpus=[0], rank=0) as job:
        job.epoch_end()
        rank1.epoch_end()
        job.epoch_end()
        rank1.epoch_end()
    rank1.__exit__(None, None, None)
    record = exp.registry.get("ddp")
    assert record.gpus == (0, 1) and record.epochs_completed == 2 and not record.live


def test_a_job_pickles_without_its_sender(make_exporter):
    import pickle

    exp = make_exporter("--backend", "simulated")
    with joulecast.job("pickled", epochs=3, url=exp.url, gpus=[0]) as job:
        job.epoch_end()
        clone = pickle.loads(pickle.dumps(job))
        clone.epoch_end()
        assert clone.flush(5)
    assert exp.registry.get("pickled").epochs_completed == 2


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
    assert len(reports) == 1 and "after epoch 4/20" in reports[0]
    assert "22.00 kJ" in reports[0]  # 22 kJ, not "0.006 kWh"
    final = [r.message for r in caplog.records if "measured total" in r.message]
    assert final == [
        "joulecast: measured total 22.00 kJ over 20 epochs; "
        "the first projection (epoch 4) was +0.0% off"
    ]
    assert not [r for r in caplog.records if "unreachable" in r.message]  # no exporter asked


def test_embedded_mode_without_nvml_never_raises(monkeypatch, caplog):
    import sys

    caplog.set_level(logging.WARNING, logger="joulecast")
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import fails as without the package
    with joulecast.job(
        "no-gpu", epochs=3, url="http://127.0.0.1:9", embedded=True, flush_timeout=0.2
    ) as job:
        for _ in range(3):
            job.epoch_end()
    assert job.embedded is None
    assert sum("cannot measure GPU energy" in r.message for r in caplog.records) == 1


@pytest.mark.parametrize(
    "env, rank",
    [({}, 0), ({"RANK": "3"}, 3), ({"LOCAL_RANK": "1"}, 1), ({"SLURM_PROCID": "2"}, 2)],
)
def test_rank_from_environment(env, rank):
    assert rank_from_environment(env) == rank


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


def test_step_progress_posts_one_marker_per_segment_of_the_plan():
    posted: list[tuple[str, dict]] = []

    def post(url, payload, token, timeout):
        posted.append((url.rsplit("/", 1)[-1], payload))
        return Response(200, {})

    job = joulecast.job("llm", epochs=1, steps=1000, url="http://127.0.0.1:1", post=post)
    with job:
        t = time.time()
        for i in range(1, 1001):
            job.progress(i, tokens=512 * i, at=t + i)  # every optimizer step, 1 s each
        job.flush(5)
    steps = [p for what, p in posted if what == "steps"]
    assert [p["step"] for p in steps] == list(range(10, 1001, 10))  # a hundredth each
    assert all(p["time"] == pytest.approx(t + p["step"]) for p in steps)
    assert steps[-1]["tokens"] == 512_000 and steps[0]["steps_planned"] == 1000
    assert posted[0][1]["steps_planned"] == 1000 and posted[0][1]["heartbeat_s"] == 10.0


def test_a_plan_known_at_train_begin_is_registered_before_any_marker():
    posted: list[dict] = []

    def post(url, payload, token, timeout):
        posted.append(payload)
        return Response(200, {})

    with joulecast.job("p", epochs=100, url="http://127.0.0.1:1", post=post) as job:
        job.begin(15, 3000)  # what a framework callback does at train begin
        job.epoch_end()
        job.flush(5)
    assert posted[1]["epochs_planned"] == 15 and posted[1]["steps_planned"] == 3000
    assert "start_epoch" not in posted[1]
    assert posted[2]["epoch"] == 1


def test_the_first_process_of_each_node_posts(monkeypatch):
    from joulecast.environment import local_rank_from_environment

    assert local_rank_from_environment({"RANK": "3", "LOCAL_RANK": "0"}) == 0
    assert local_rank_from_environment({"SLURM_PROCID": "5", "SLURM_LOCALID": "1"}) == 1
    assert local_rank_from_environment({"RANK": "2"}) == 2  # one node: the global rank
    monkeypatch.setenv("RANK", "2")
    monkeypatch.setenv("LOCAL_RANK", "0")
    assert joulecast.job("x", epochs=1).posts  # node B's first rank posts node B's markers


EXIT_FORMS = {
    "plain": "for e in range(100):\n    job.epoch_end({'e': e})\n",
    "sys-exit": "import sys\nfor e in range(100):\n    job.epoch_end({'e': e})\n    if e == 99:\n        sys.exit(0)\n",
    "exception": "for e in range(100):\n    job.epoch_end({'e': e})\nraise RuntimeError('after the loop')\n",
}  # fmt: skip


@pytest.mark.parametrize("form", sorted(EXIT_FORMS))
def test_a_script_that_exits_without_closing_delivers_every_marker(make_exporter, form):
    """No with, no finish(), no close(): the exit hook delivers the queue (bounded)."""
    exp = make_exporter("--backend", "simulated")
    script = (
        "import joulecast\n"
        f"job = joulecast.job('exit-{form}', epochs=100, url={exp.url!r}, gpus=[0])\n"
        "job.register()\n" + EXIT_FORMS[form]
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert (done.returncode == 0) is (form != "exception"), done.stderr
    assert [e["epoch"] for e in exp.registry.epochs(f"exit-{form}")] == list(range(1, 101))
    assert "could not be delivered" not in done.stderr


def test_what_cannot_be_delivered_at_exit_is_named(tmp_path):
    script = (
        "import joulecast\n"
        "job = joulecast.job('nowhere', epochs=5, url='http://127.0.0.1:9', gpus=[0],"
        " flush_timeout=0.5)\n"
        "job.register()\n"
        "for e in range(3):\n    job.epoch_end()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0
    assert "could not be delivered" in done.stderr and "epoch 3" in done.stderr


def test_a_beat_after_the_finish_never_reopens_the_job():
    """The exporter answers 409 to beats of an ended job; the client, having finished it
    itself, must not register it again (that would reopen it as a live job)."""
    posted: list[str] = []
    ended = False

    def post(url, payload, token, timeout):
        nonlocal ended
        what = url.rsplit("/", 1)[-1]
        posted.append(what)
        if what == "finish":
            ended = True
        if what == "heartbeat" and ended:
            return Response(409, {"error": "ended"})
        time.sleep(0.01)
        return Response(200, {})

    for _ in range(20):  # the beat falls due right as the finish is delivered, in some rounds
        posted.clear()
        ended = False
        with joulecast.job(
            "b", epochs=1, url="http://127.0.0.1:1", post=post, heartbeat=0.01
        ) as job:
            time.sleep(0.03)
            job.epoch_end()
        assert posted[-1] == "finish", posted
