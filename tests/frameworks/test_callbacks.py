"""The callbacks inside the real frameworks (CPU builds): Keras 3 on JAX, PyTorch Lightning,
Hugging Face Trainer. Each run is a user's script (tests/frameworks/train.py) started with
the frameworks' virtual environment, posting to a real exporter.

``scripts/test.sh`` makes that environment (cached under the user's cache directory, keyed
by tests/frameworks/requirements.txt) and names its Python in JOULECAST_FRAMEWORKS_PYTHON.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import http
from tests.frameworks.runs import MARKS, command
from tests.stack import Forwarder, free_port

pytestmark = MARKS


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    from joulecast.exporter.cli import build, build_parser

    state = tmp_path_factory.mktemp("state")
    args = build_parser().parse_args(
        [
            "--web.listen-address",
            "127.0.0.1:0",
            "--state.dir",
            str(state),
            "--no-collector.rapl",
            "--backend",
            "simulated",
        ]
    )
    exp = build(args)
    exp.start()
    yield exp
    exp.stop()


def train(
    exporter, framework: str, mode: str, job_id: str, work: Path
) -> subprocess.CompletedProcess:
    return subprocess.run(
        **command(exporter.url, framework, mode, job_id, work),
        capture_output=True,
        text=True,
        timeout=300,
    )


def job(exporter, job_id: str) -> dict:
    status, body = http("GET", f"{exporter.url}/api/v1/jobs/{job_id}")
    assert status == 200, body
    return body


FRAMEWORKS = ["keras", "lightning", "hf"]


@pytest.mark.parametrize("framework", FRAMEWORKS)
def test_plain_run_marks_every_epoch_with_the_frameworks_plan(exporter, framework, tmp_path):
    run = train(exporter, framework, "plain", f"{framework}-plain", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    body = job(exporter, f"{framework}-plain")
    assert body["state"] == "finished"
    assert body["epochs_planned"] == 5  # fit(epochs=5) / max_epochs / num_train_epochs, not 100
    assert [e["epoch"] for e in body["epochs"]] == [1, 2, 3, 4, 5]
    times = [e["timestamp"] for e in body["epochs"]]
    assert times == sorted(times)
    assert all(e["metrics"] for e in body["epochs"])


def test_hugging_face_markers_carry_their_own_epochs_evaluation(exporter, tmp_path):
    run = train(exporter, "hf", "plain", "hf-eval", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    history = json.loads((tmp_path / "hf_log_history.json").read_text())
    evals = {round(h["epoch"]): h["eval_loss"] for h in history if "eval_loss" in h}
    losses = {round(h["epoch"]): h["loss"] for h in history if "loss" in h}
    epochs = job(exporter, "hf-eval")["epochs"]
    assert len(evals) == 5 and len(epochs) == 5
    for e in epochs:  # marker N has epoch N's evaluation, the last one included
        assert e["metrics"]["eval_loss"] == pytest.approx(evals[e["epoch"]])
        assert e["metrics"]["loss"] == pytest.approx(losses[e["epoch"]])


@pytest.mark.parametrize("framework", ["keras", "lightning"])
def test_early_stopping_finishes_with_the_epochs_really_run(exporter, framework, tmp_path):
    run = train(exporter, framework, "early", f"{framework}-early", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    body = job(exporter, f"{framework}-early")
    assert body["state"] == "finished" and body["epochs_completed"] == 2
    assert body["epochs_planned"] == 5


@pytest.mark.parametrize("framework", ["keras", "lightning"])
@pytest.mark.parametrize("how", ["crash", "kill"])
def test_a_run_resumed_from_its_checkpoint_continues_the_job(exporter, framework, how, tmp_path):
    job_id = f"{framework}-{how}"
    first = train(exporter, framework, how, job_id, tmp_path)
    assert first.returncode != 0
    if how == "crash":
        assert job(exporter, job_id)["state"] == "failed"
    resumed = train(exporter, framework, "resume", job_id, tmp_path)  # from epoch 2
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    body = job(exporter, job_id)
    assert body["state"] == "finished"
    assert [e["epoch"] for e in body["epochs"]] == [1, 2, 3, 4, 5]
    assert "refused" not in resumed.stderr
    # epochs 3-5 are the resumed run's: they ended after it started
    first_end = body["epochs"][1]["timestamp"]
    assert all(e["timestamp"] > first_end for e in body["epochs"][2:])


def test_lightning_metric_names_and_non_finite_values(exporter, tmp_path):
    run = train(exporter, "lightning", "odd", "lightning-odd", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert run.stderr.count("non-finite metric 'exploded'") == 1
    epochs = job(exporter, "lightning-odd")["epochs"]
    assert len(epochs) == 5
    for e in epochs:
        assert "val_acc_1" in e["metrics"] and "val_loss" in e["metrics"]
        assert "exploded" not in e["metrics"]


@pytest.mark.parametrize("strategy", ["ddp", "ddp_spawn"])
def test_lightning_ddp_two_processes(exporter, strategy, tmp_path):
    job_id = f"lightning-{strategy}"
    run = train(exporter, "lightning", strategy, job_id, tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    assert "refused" not in run.stderr
    body = job(exporter, job_id)
    assert [e["epoch"] for e in body["epochs"]] == [1, 2, 3, 4, 5]  # once each, by rank 0
    assert body["state"] == "finished"
    # every rank's process is attributed (ddp_spawn: the launcher and both ranks)
    assert len(body["pids"]) == (2 if strategy == "ddp" else 3), body["pids"]


def test_exporter_away_for_the_first_half_of_a_keras_run(exporter, tmp_path):
    """Every epoch recorded, each charged the energy at its own end time."""
    port = free_port()
    spec = {"job_id": "keras-away", "epochs_planned": 5, "gpus": [0]}
    assert http("POST", exporter.url + "/api/v1/jobs", spec)[0] == 201
    proc = subprocess.Popen(
        **command(f"http://127.0.0.1:{port}", "keras", "slow", "keras-away", tmp_path),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    ends_file = tmp_path / "ends.txt"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        if ends_file.exists() and len(ends_file.read_text().split()) >= 2:
            break
        time.sleep(0.05)
    forwarder = Forwarder(port, int(exporter.url.rsplit(":", 1)[1]))  # the exporter is back
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        forwarder.close()
    assert proc.returncode == 0, err[-3000:]
    assert "unreachable" in err  # it was away, said so once, and training went on
    ends = [float(t) for t in ends_file.read_text().split()]
    epochs = job(exporter, "keras-away")["epochs"]
    assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5]
    for e, end in zip(epochs, ends, strict=True):
        assert abs(e["timestamp"] - end) < 0.2, (e, end)
    energies = [e["energy_joules"] for e in epochs]
    per_epoch = [b - a for a, b in zip(energies, energies[1:], strict=False)]
    assert min(per_epoch) > 0.5 * max(per_epoch), per_epoch  # not bunched at delivery


def test_hugging_face_max_steps_plans_fractional_epochs(exporter, tmp_path):
    """max_steps=10 with 4 steps an epoch: 2.5 epochs planned, not 5 and not 3."""
    run = train(exporter, "hf", "steps", "hf-steps", tmp_path)
    assert run.returncode == 0, run.stderr[-3000:]
    body = job(exporter, "hf-steps")
    assert body["epochs_planned"] == 2.5
    assert [e["epoch"] for e in body["epochs"]] == [1, 2, 3]  # the third is the half epoch
    assert body["state"] == "finished"
