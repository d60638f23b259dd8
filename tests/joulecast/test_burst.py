"""Simultaneous epoch ends: many training processes, one exporter, no marker lost."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

SCRIPT = """
import sys, time, joulecast
url, job_id, t0 = sys.argv[1], sys.argv[2], float(sys.argv[3])
with joulecast.job(job_id, epochs=5, url=url, gpus=[0], flush_timeout=60) as job:
    for epoch in range(1, 6):
        time.sleep(max(0.0, t0 + epoch - time.time()))  # every process ends epoch k at t0 + k
        job.epoch_end({"loss": 1.0 / epoch})
"""


@pytest.mark.integration
def test_fifty_processes_ending_epochs_together_lose_no_marker(make_exporter):
    exp = make_exporter("--backend", "simulated", "--simulated.gpus", "1")
    n = 50
    t0 = time.time() + 6.0  # time for 50 interpreters to start on a small machine
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", SCRIPT, exp.url, f"burst-{i:02d}", str(t0)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for i in range(n)
    ]
    try:
        errors = [p.communicate(timeout=120)[1] for p in procs]
    finally:
        for p in procs:
            p.kill()
    assert all(p.returncode == 0 for p in procs), errors
    assert not [e for e in errors if "could not be delivered" in e], errors
    recorded = 0
    for i in range(n):
        job_id = f"burst-{i:02d}"
        epochs = exp.registry.epochs(job_id)
        assert [e["epoch"] for e in epochs] == [1, 2, 3, 4, 5], job_id
        for e in epochs:
            # charged at its own end time, however long the burst kept it waiting
            assert abs(e["timestamp"] - (t0 + e["epoch"])) < 0.5, (job_id, e)
        energies = [e["energy_joules"] for e in epochs]
        assert energies == sorted(energies)
        recorded += len(epochs)
        assert exp.registry.get(job_id).outcome == "finished"
    assert recorded == 5 * n
