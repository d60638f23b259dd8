"""kill -9 and restart: every acknowledged marker is still there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from joulecast.shards import bucket
from tests.conftest import http, scrape
from tests.stack import free_port


def start(state: Path, port: int) -> subprocess.Popen:
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "simulated",
            "--simulated.gpus",
            "2",
            "--web.listen-address",
            f"127.0.0.1:{port}",
            "--state.dir",
            str(state),
            "--no-collector.rapl",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    deadline = time.time() + 20
    while time.time() < deadline:
        try:
            if http("GET", f"http://127.0.0.1:{port}/healthz", timeout=1)[0] == 200:
                return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise AssertionError(proc.stderr.read().decode())


def test_kill_9_keeps_every_acknowledged_marker(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    proc = start(tmp_path, port)
    try:
        acked = []
        for j in range(3):
            code, _ = http(
                "POST",
                url + "/api/v1/jobs",
                {
                    "job_id": f"job-{j}",
                    "epochs_planned": 50,
                    "gpus": [j % 2],
                    "features": {"batch_size": 32},
                },
            )
            assert code == 201
        for epoch in range(1, 8):
            for j in range(3):
                code, body = http(
                    "POST",
                    f"{url}/api/v1/jobs/job-{j}/epochs",
                    {"epoch": epoch, "metrics": {"loss": 1.0 / epoch}},
                )
                assert code == 200
                acked.append((f"job-{j}", epoch, body["epoch_end_energy_joules"]))
        http("POST", url + "/api/v1/jobs/job-2/finish")
        time.sleep(0.5)
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = start(tmp_path, port)
    try:
        for j in range(3):
            code, body = http("GET", f"{url}/api/v1/jobs/job-{j}")
            assert code == 200
            assert body["epochs_completed"] == 7
            assert [e["epoch"] for e in body["epochs"]] == list(range(1, 8))
            assert body["features"] == {"batch_size": 32}
            last = [a for a in acked if a[0] == f"job-{j}"][-1]
            assert body["epoch_end_energy_joules"] == last[2]
            assert body["energy_joules"] >= body["epoch_end_energy_joules"]
        assert http("GET", f"{url}/api/v1/jobs/job-2")[1]["state"] == "finished"
        # the job carries on after the restart
        assert http("POST", f"{url}/api/v1/jobs/job-0/epochs", {"epoch": 8})[0] == 200
        assert http("POST", f"{url}/api/v1/jobs/job-0/epochs", {"epoch": 7})[0] == 409
        # ... and a retry of the last marker is recorded once
        assert http("POST", f"{url}/api/v1/jobs/job-0/epochs", {"epoch": 8})[0] == 200
        assert (
            f'joulecast_job_epochs_completed{{job_bucket="{bucket("job-0")}",job_id="job-0"}} 8.0'
            in scrape(url)
        )
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_kill_9_keeps_step_progress_liveness_and_the_run_summary(tmp_path):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    spec = {"job_id": "llm", "epochs_planned": 1, "steps_planned": 1000, "pids": [os.getpid()]}
    proc = start(tmp_path, port)
    try:
        assert http("POST", url + "/api/v1/jobs", spec)[0] == 201
        code, acked = http("POST", url + "/api/v1/jobs/llm/steps", {"step": 300, "tokens": 9})
        assert code == 200
        assert http("POST", url + "/api/v1/jobs", {**spec, "job_id": "done"})[0] == 201
        summary = {"summary": {"train_runtime": 3.5}}
        assert http("POST", url + "/api/v1/jobs/done/finish", summary)[0] == 200
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    proc = start(tmp_path, port)
    try:
        body = http("GET", f"{url}/api/v1/jobs/llm")[1]
        assert (body["steps_completed"], body["steps_planned"], body["tokens_completed"]) == (
            300,
            1000,
            9,
        )
        assert body["step_end_energy_joules"] == acked["step_end_energy_joules"]
        assert body["state"] == "running" and body["processes_alive"]  # this test's process
        assert http("GET", f"{url}/api/v1/jobs/done")[1]["summary"] == {"train_runtime": 3.5}
        assert http("POST", f"{url}/api/v1/jobs/llm/steps", {"step": 100})[0] == 409
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_unusable_state_dir_is_a_clear_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "simulated",
            "--state.dir",
            str(blocker / "sub"),
            "--web.listen-address",
            "127.0.0.1:0",
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1
    assert "cannot use state directory" in out.stderr and "Traceback" not in out.stderr


def test_bad_flag_and_env_are_clear_errors(tmp_path):
    env = {**os.environ, "JOULECAST_SAMPLING_GPU_HZ": "fast"}
    out = subprocess.run(
        [sys.executable, "-m", "joulecast.exporter"],
        capture_output=True,
        text=True,
        env=env,
        timeout=30,
    )
    assert (
        out.returncode == 2
        and "JOULECAST_SAMPLING_GPU_HZ" in out.stderr
        and "Traceback" not in out.stderr
    )
    out = subprocess.run(
        [sys.executable, "-m", "joulecast.exporter", "--web.listen-address", "nowhere"],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 2 and "HOST:PORT" in out.stderr
    out = subprocess.run(
        [
            sys.executable,
            "-m",
            "joulecast.exporter",
            "--backend",
            "simulated",
            "--simulated.traces-dir",
            str(tmp_path),
            "--state.dir",
            str(tmp_path / "s"),
        ],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert out.returncode == 1 and "no trace CSV files" in out.stderr
