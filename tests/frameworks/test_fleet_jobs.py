"""Jobs as clusters run them, in the real frameworks against a real stack: two exporters
standing for two GPU nodes (simulated GPUs), a real Prometheus scraping both, the real
estimator. A torchrun job split over both nodes, a run killed with SIGKILL, and step-based
runs of one epoch or less."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.conftest import http
from tests.frameworks.runs import HERE, MARKS, PYTHON, ROOT, command
from tests.stack import (
    free_port,
    prom_query,
    prom_query_range,
    start_estimator,
    start_exporter,
    start_tsdb,
    wait_for,
)

LOST_AFTER_S = 3.0
STEP_S = 0.3

pytestmark = MARKS


@pytest.fixture(scope="module")
def stack(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    procs = []
    try:
        nodes = []
        for _ in range(2):
            nodes.append(
                start_exporter(
                    tmp,
                    "--backend",
                    "simulated",
                    "--simulated.gpus",
                    "1",
                    "--simulated.warmup-seconds",
                    "0.5",
                    "--jobs.lost-after",
                    str(LOST_AFTER_S),
                )
            )
            procs.append(nodes[-1])
        est_port = free_port()
        db = start_tsdb(
            "prometheus",
            tmp,
            {
                "joulecast-exporter": [n.url for n in nodes],
                "joulecast-estimator": [f"127.0.0.1:{est_port}"],
            },
            interval="250ms",
        )
        procs.append(db)
        estimator = start_estimator(
            tmp, db.url, "--cycle.interval", "0.5", "--track.epochs", "4,6", port=est_port
        )
        procs.append(estimator)
        wait_for(lambda: len(prom_query(db.url, "up == 1")) == 3, timeout=30)
        yield nodes, db, estimator
    finally:
        for p in reversed(procs):
            p.stop()


def job_on(node, job_id: str) -> dict:
    status, body = http("GET", f"{node.url}/api/v1/jobs/{job_id}")
    assert status == 200, body
    return body


def value(db, expr: str) -> float | None:
    res = prom_query(db.url, expr)
    return float(res[0]["value"][1]) if res else None


def test_a_torchrun_job_over_two_nodes_is_one_job_summed_over_both(stack, tmp_path):
    nodes, db, _ = stack
    job_id, epochs, epoch_s = "ddp-2nodes", 8, 1.0
    port = free_port()
    procs = []
    for rank, node in enumerate(nodes):
        env = {**os.environ, "PYTHONPATH": str(ROOT), "JOULECAST_URL": node.url}
        for var in ("RANK", "LOCAL_RANK", "WORLD_SIZE"):
            env.pop(var, None)
        args = [
            str(Path(PYTHON).with_name("torchrun")),
            "--nnodes=2",
            f"--node-rank={rank}",
            "--nproc-per-node=2",
            "--master-addr=127.0.0.1",
            f"--master-port={port}",
            str(HERE / "ddp_plain.py"),
            job_id,
            str(epochs),
            str(epoch_s),
        ]
        procs.append(
            subprocess.Popen(
                args,
                env=env,
                cwd=tmp_path,
                stderr=subprocess.PIPE,
                text=True,
                start_new_session=True,  # its ranks are killed with it if it overruns
            )
        )
    try:
        errs = [p.communicate(timeout=180)[1] for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    assert [p.returncode for p in procs] == [0, 0], errs[0][-2000:] + errs[1][-2000:]
    on = [job_on(n, job_id) for n in nodes]
    for body in on:  # each node's first rank marked every epoch and the finish
        assert body["state"] == "finished"
        assert [e["epoch"] for e in body["epochs"]] == list(range(1, epochs + 1))
        assert len(body["pids"]) == 2  # both local ranks attached
    total = sum(b["epoch_end_energy_joules"] for b in on)
    assert min(b["epoch_end_energy_joules"] for b in on) > 0.3 * total  # two real halves

    # Scored once, against the sum over both nodes: at epoch 6 of 8 the projection's error
    # is small; against one node it would be about +100 %.
    err = (
        'joulecast_job_projection_error_ratio{job_id="ddp-2nodes",method="step_epoch",at_epoch="6"}'
    )
    scored = wait_for(lambda: prom_query(db.url, err), timeout=20)
    assert len(scored) == 1
    assert abs(float(scored[0]["value"][1])) < 0.15, scored
    evaluated = 'joulecast_method_evaluated_jobs{method="step_epoch",at_epoch="6",unit="epoch"}'
    assert value(db, evaluated) == 1.0

    # What was published while it ran: two nodes, and projections of the whole job.
    end = time.time()
    nodes_seen = prom_query_range(
        db.url, 'joulecast_job_nodes{job_id="ddp-2nodes"}', end - 60, end, 0.5
    )
    # The two exporters are scraped apart: for a moment at the start one node may have
    # reported alone; once both have, the job stays on two, and no projection came from one.
    seen = [(t, float(v)) for s in nodes_seen for t, v in s["values"]]
    counts = [n for _, n in seen]
    assert counts and set(counts) <= {1.0, 2.0} and counts[-1] == 2.0, counts
    assert 1.0 not in counts[counts.index(2.0) :], counts
    proj = prom_query_range(
        db.url,
        'joulecast_job_projected_energy_joules{job_id="ddp-2nodes",method="step_epoch"}',
        end - 60,
        end,
        0.5,
    )
    on_nodes = dict(seen)
    assert all(on_nodes.get(t) == 2.0 for t, _ in proj[0]["values"]), (seen, proj)
    last = float(proj[0]["values"][-1][1])
    assert abs(last - total) / total < 0.1, (last, total)


def test_a_run_killed_with_sigkill_is_lost_not_charged_and_resumed(stack, tmp_path):
    nodes, db, _ = stack
    node, job_id = nodes[0], "keras-sigkill"
    first = subprocess.run(
        **command(node.url, "keras", "kill", job_id, tmp_path), capture_output=True, timeout=300
    )
    assert first.returncode != 0
    killed = job_on(node, job_id)["epochs"][-1]["timestamp"] + 0.5  # die(): 0.5 s after epoch 3

    body = wait_for(lambda: job_on(node, job_id)["state"] == "lost" and job_on(node, job_id))
    assert body["gone_since"] - killed < 1.5  # found gone within the liveness interval
    charged = body["energy_joules"]
    time.sleep(1.5)
    assert job_on(node, job_id)["energy_joules"] == charged  # no more energy once gone
    assert value(db, f'joulecast_job_lost{{job_id="{job_id}"}}') == 1.0

    resumed = subprocess.run(
        **command(node.url, "keras", "resume", job_id, tmp_path),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    body = job_on(node, job_id)
    assert body["state"] == "finished"
    assert [e["epoch"] for e in body["epochs"]] == [1, 2, 3, 4, 5]
    # the resumed epochs start from the energy of the moment the run died, not above it
    assert body["epochs"][1]["energy_joules"] <= charged


@pytest.mark.parametrize(
    ("framework", "mode", "epochs", "steps"),
    [("hf", "short", 0.75, 75), ("hf", "one", 1, 100), ("lightning", "short", 0.8, 80)],
)
def test_a_step_based_run_is_projected_early_with_its_plan_from_the_start(
    stack, tmp_path, framework, mode, epochs, steps
):
    nodes, db, _ = stack
    job_id = f"{framework}-{mode}-steps"
    spec = command(nodes[1].url, framework, mode, job_id, tmp_path)
    spec["env"]["JOULECAST_TEST_STEP_SECONDS"] = str(STEP_S)
    t0 = time.time()
    run = subprocess.run(**spec, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr[-3000:]
    t1 = time.time()
    body = job_on(nodes[1], job_id)
    assert body["state"] == "finished"
    assert body["steps_completed"] == steps and body["steps_planned"] == steps

    def series(name: str) -> dict[float, float]:
        res = prom_query_range(db.url, f'{name}{{job_id="{job_id}"}}', t0, t1, 0.25)
        return {float(t): float(v) for s in res for t, v in s["values"]}

    # The framework's plan is the job's from the first step on (not the 100 epochs the
    # script's job says, not only once the first epoch ended).
    done = series("joulecast_job_steps_completed")
    planned_epochs = series("joulecast_job_epochs_planned")
    planned_steps = series("joulecast_job_steps_planned")
    stepping = [t for t, v in done.items() if v >= 1]
    assert stepping
    assert {planned_epochs[t] for t in stepping if t in planned_epochs} == {epochs}
    assert {planned_steps[t] for t in stepping if t in planned_steps} == {steps}

    # A STEP projection was published while at most a tenth of the run was done.
    projected = series_step(db, job_id, t0, t1)
    assert projected, "no STEP projection"
    ratio = series("joulecast_job_progress_ratio")
    first = min(t for t in projected if t in ratio)
    assert ratio[first] <= 0.10, (first, ratio[first])
    assert "refused" not in run.stderr


def series_step(db, job_id: str, t0: float, t1: float) -> list[float]:
    res = prom_query_range(
        db.url,
        f'joulecast_job_projected_energy_joules{{job_id="{job_id}",method="step_epoch"}}',
        t0,
        t1,
        0.25,
    )
    return [float(t) for s in res for t, _ in s["values"]]
