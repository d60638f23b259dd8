"""``joulecast step evaluate`` and the interval coverage of STEP."""

from __future__ import annotations

import json
import random
import subprocess
import sys

import pytest

from joulecast.step import Progress, StepConfig, project
from joulecast.traces import Trace, score
from tests.conftest import shared_path


def run(*args):
    return subprocess.run(
        [sys.executable, "-m", "joulecast", *args], capture_output=True, text=True, timeout=60
    )


def test_evaluate_on_the_real_traces():
    path = shared_path("data/traces/eatit_vgg16_rtx3090.csv")
    out = run("step", "evaluate", str(path), "--at-epoch", "15", "--json")
    assert out.returncode == 0, out.stderr
    res = json.loads(out.stdout)
    assert res["jobs"] == 36 and res["skipped_too_short"] == 0
    m = res["methods"]
    # extrapolating from the first epoch is far off; STEP is within a few percent
    assert m["first_epoch"]["mape"] > 100
    assert m["step_epoch"]["mape"] < 5 and m["step_power"]["mape"] < 5
    paper = json.loads(
        run("step", "evaluate", str(path), "--at-epoch", "15", "--json", "--paper").stdout
    )
    # the paper's configuration reproduces its published figure on this set (3.9 % / 4.0 %)
    assert abs(paper["methods"]["step_power"]["mape"] - 3.9) < 0.1
    assert abs(paper["methods"]["step_epoch"]["mape"] - 4.0) < 0.1
    text = run("step", "evaluate", str(path), "--at-epoch", "10")
    assert "step_epoch" in text.stdout and "MAPE" in text.stdout


@pytest.mark.parametrize("k", [10, 15, 20, 30])
def test_default_against_the_papers_configuration_and_calibrated_coverage(k):
    """At every projection point: the default at or below the paper's configuration, two
    methods that differ, and calibrated 90 % intervals that cover 85-95 % of the runs."""
    path = shared_path("data/traces/eatit_vgg16_rtx3090.csv")
    ours = json.loads(run("step", "evaluate", str(path), "--at-epoch", str(k), "--json").stdout)
    paper = json.loads(
        run("step", "evaluate", str(path), "--at-epoch", str(k), "--json", "--paper").stdout
    )
    m, pm = ours["methods"], paper["methods"]
    for method in ("step_epoch", "step_power"):
        if method in pm:  # the paper's configuration projects from epoch 15 on
            assert m[method]["mape"] <= pm[method]["mape"], (k, method)
        assert 0.85 <= m[method]["calibrated_coverage"] <= 0.95, (k, method)
    assert m["step_epoch"]["mape"] != m["step_power"]["mape"]


def test_evaluate_bad_input_is_a_clear_error(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("job_id,epoch,energy\nA,1,3\n")
    out = run("step", "evaluate", str(bad))
    assert out.returncode == 1 and "missing column" in out.stderr and "Traceback" not in out.stderr
    bad.write_text("job_id,epoch,epoch_end_time_s,epoch_energy_j\nA,1,1.0,x\n")
    out = run("step", "evaluate", str(bad))
    assert out.returncode == 1 and "bad.csv:2" in out.stderr
    bad.write_text("job_id,epoch,epoch_end_time_s,epoch_energy_j\nA,1,1.0,3\nA,3,2.0,3\n")
    out = run("step", "evaluate", str(bad))
    assert out.returncode == 1 and "without gaps" in out.stderr
    out = run("step", "evaluate", str(tmp_path / "missing.csv"))
    assert out.returncode == 1 and "No such file" in out.stderr
    out = run("step", "evaluate", str(bad), "--at-epoch", "0")
    assert out.returncode == 2


def test_interval_coverage_on_stationary_jobs():
    """With i.i.d. epoch noise (the interval's assumption), coverage is near its level."""
    rng = random.Random(42)
    traces = []
    for j in range(400):
        base = rng.uniform(100, 5000)
        n = rng.randint(20, 60)
        es = [base * 2.0] + [base * (1 + rng.gauss(0, 0.05)) for _ in range(n - 1)]
        ts = [10.0 * (i + 1) for i in range(n)]
        traces.append(Trace(f"j{j}", tuple(es), tuple(ts)))
    scores, _ = score(traces, 15, StepConfig(level=0.9))
    cov = scores["step_epoch"].coverage
    assert 0.82 <= cov <= 0.97, cov


def test_projection_improves_as_epochs_accumulate():
    rng = random.Random(1)
    es = [900.0] + [300 * (1 + rng.gauss(0, 0.03)) for _ in range(49)]
    p = Progress.from_epoch_energies(es, [float(i + 1) for i in range(50)], 50)
    widths = [project(p.truncated(k))["step_epoch"] for k in (10, 20, 40)]
    assert widths[0].upper_j - widths[0].lower_j > widths[2].upper_j - widths[2].lower_j
