"""The README's main command: the demo runs the whole loop and writes its chart."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
def test_demo_runs_end_to_end(tmp_path):
    if shutil.which("prometheus") is None:
        pytest.skip("prometheus is not installed")
    out = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "demo.py"),
            "--epochs",
            "12",
            "--epoch-seconds",
            "0.8",
            "--backend",
            "simulated",
            "--no-wait",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=180,
        stdin=subprocess.DEVNULL,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert "SIMULATED" in out.stdout
    assert (
        "STEP " in out.stdout and "kJ [" in out.stdout
    )  # a projection with its interval was shown
    assert "measured total" in out.stdout
    assert "projection at epoch 10 by step_epoch" in out.stdout
    png = tmp_path / "demo-job.png"
    assert png.stat().st_size > 20_000 and png.read_bytes()[:4] == b"\x89PNG"
    # everything it started is stopped
    assert subprocess.run(["pgrep", "-f", str(tmp_path)], capture_output=True).returncode == 1
