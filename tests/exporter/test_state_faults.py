"""A full state disk, and a flood of finished jobs: what the exporter says and publishes."""

from __future__ import annotations

import contextlib
import subprocess
from pathlib import Path

import pytest

from tests.conftest import http, scrape


@pytest.fixture
def small_disk(tmp_path: Path):
    """A 1 MiB tmpfs (needs the right to mount: root on a machine that allows it)."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    yield mnt
    subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


@pytest.mark.integration
def test_full_state_disk_gives_503_an_error_count_and_a_degraded_health(make_exporter, small_disk):
    exp = make_exporter("--backend", "simulated", state_dir=small_disk / "state")
    spec = {"job_id": "disk", "epochs_planned": 1000, "gpus": [0]}
    assert http("POST", exp.url + "/api/v1/jobs", spec)[0] == 201
    filler = small_disk / "filler"
    with contextlib.suppress(OSError), filler.open("wb") as f:
        while True:
            f.write(b"\0" * 65536)
            f.flush()
    statuses = []
    for epoch in range(1, 200):
        status, body = http(
            "POST", exp.url + "/api/v1/jobs/disk/epochs", {"epoch": epoch, "metrics": {"x": 1.0}}
        )
        statuses.append(status)
        if status == 503:
            assert "not recorded" in body["error"]
            break
    assert statuses[-1] == 503, statuses
    status, health = http("GET", exp.url + "/healthz")
    assert status == 503 and health["status"] == "degraded" and "full" in health["detail"]
    text = scrape(exp.url)
    count = next(
        float(line.split()[-1])
        for line in text.splitlines()
        if line.startswith('joulecast_exporter_errors_total{kind="state_write"}')
    )
    assert count >= 1
    filler.unlink()  # the disk recovers: markers are recorded again, health is ok
    assert http("POST", exp.url + "/api/v1/jobs/disk/epochs", {"epoch": 500})[0] == 200
    assert http("GET", exp.url + "/healthz")[0] == 200


def test_finished_jobs_are_capped_oldest_first(make_exporter):
    exp = make_exporter("--backend", "simulated", "--jobs.max-finished", "5")
    for i in range(20):
        job = f"done-{i:02d}"
        assert (
            http("POST", exp.url + "/api/v1/jobs", {"job_id": job, "epochs_planned": 1})[0] == 201
        )
        assert http("POST", exp.url + f"/api/v1/jobs/{job}/finish", {})[0] == 200
    assert http("POST", exp.url + "/api/v1/jobs", {"job_id": "live", "epochs_planned": 1})[0] == 201
    published = {
        line.split('job_id="')[1].split('"')[0]
        for line in scrape(exp.url).splitlines()
        if line.startswith("joulecast_job_running{")
    }
    assert published == {"live", *(f"done-{i:02d}" for i in range(15, 20))}
