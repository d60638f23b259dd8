"""Budgets that act inside the real frameworks (CPU builds) against a real exporter with a
simulated GPU: a budget far under the run's total stops Keras, Lightning (also under ddp on
2 processes) and the Hugging Face Trainer their own graceful way, within one epoch of the
decision, with the outcome ``budget_stopped``; a budget far above never fires; ``warn``
never stops. Each run is 12 epochs of 4 steps of 0.1 s (tests/frameworks/train.py)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import http
from tests.frameworks.runs import MARKS, command

pytestmark = MARKS
EPOCHS = 12
UNDER_KWH = 1e-7  # 0.36 J: far under any run's total
OVER_KWH = 1e3
CROSSED = re.compile(r"over its energy budget: .* after epoch (\d+)")


@pytest.fixture(scope="module")
def exporter(tmp_path_factory):
    from joulecast.exporter.cli import build, build_parser

    args = build_parser().parse_args(
        [
            *("--web.listen-address", "127.0.0.1:0", "--no-collector.rapl"),
            *("--state.dir", str(tmp_path_factory.mktemp("state"))),
            *("--backend", "simulated", "--simulated.warmup-seconds", "0.2"),
        ]
    )
    exp = build(args)
    exp.start()
    yield exp
    exp.stop()


def train(exporter, framework: str, mode: str, job_id: str, work: Path, kwh: float, action: str):
    cmd = command(exporter.url, framework, mode, job_id, work)
    cmd["env"].update(JOULECAST_TEST_BUDGET_KWH=str(kwh), JOULECAST_TEST_ON_BUDGET=action)
    run = subprocess.run(**cmd, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    status, body = http("GET", f"{exporter.url}/api/v1/jobs/{job_id}")
    assert status == 200, body
    return run, body


@pytest.mark.parametrize(
    "framework, mode",
    [("keras", "budget"), ("lightning", "budget"), ("lightning", "budget_ddp"), ("hf", "budget")],
)
def test_a_budget_under_the_total_stops_the_run_gracefully(exporter, framework, mode, tmp_path):
    job_id = f"{framework}-{mode}-stop"
    run, body = train(exporter, framework, mode, job_id, tmp_path, UNDER_KWH, "stop")
    crossed = [int(m) for m in CROSSED.findall(run.stderr)]
    assert len(crossed) == 1, run.stderr[-3000:]  # said once, by the node's first process
    assert body["state"] == "budget_stopped" and body["budget_over"] is True
    assert crossed[0] <= body["epochs_completed"] <= crossed[0] + 1  # within an epoch
    assert body["epochs_completed"] < EPOCHS
    assert body["budget_crossings"] == 1


def test_a_budget_above_the_total_never_fires(exporter, tmp_path):
    run, body = train(exporter, "keras", "budget", "keras-roomy", tmp_path, OVER_KWH, "stop")
    assert body["state"] == "finished" and body["epochs_completed"] == EPOCHS
    assert body["budget_over"] is None and "energy budget" not in run.stderr


def test_warn_says_so_and_never_stops(exporter, tmp_path):
    run, body = train(exporter, "hf", "budget", "hf-warned", tmp_path, UNDER_KWH, "warn")
    assert body["state"] == "finished" and body["epochs_completed"] == EPOCHS
    assert body["budget_over"] is True and "training goes on" in run.stderr
