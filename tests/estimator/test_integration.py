"""The whole loop with real processes: exporter (simulated GPUs) -> TSDB -> estimator -> TSDB.

Runs against Prometheus and against VictoriaMetrics: the estimator is not tied to one TSDB.
"""

from __future__ import annotations

import time

import pytest

import joulecast
from tests.conftest import http
from tests.grafana.dashboards import DASHBOARDS, check_all, load_renderer
from tests.stack import (
    free_port,
    prom_query,
    prom_query_range,
    start_estimator,
    start_exporter,
    start_tsdb,
    wait_for,
)

RULES = DASHBOARDS.parents[1] / "prometheus" / "rules" / "joulecast.rules.yml"
BOARDS = sorted(p.name for p in DASHBOARDS.glob("*.json"))
EPOCH_S = 1.2
EPOCHS = 16


@pytest.mark.integration
@pytest.mark.parametrize("tsdb", ["prometheus", "victoriametrics"])
def test_projection_reaches_the_tsdb_and_is_accurate(tmp_path, tsdb):
    procs = []
    try:
        exporter = start_exporter(
            tmp_path,
            "--backend",
            "simulated",
            "--simulated.gpus",
            "2",
            "--simulated.warmup-seconds",
            "1",
            "--simulated.cycle-seconds",
            str(EPOCH_S),
        )
        procs.append(exporter)
        est_port = free_port()  # the scrape config names the estimator before it starts
        budgets = tmp_path / "budgets.yml"
        budgets.write_text("default_kwh: 50\naccounts: {physics: 20}\n")
        db = start_tsdb(
            tsdb,
            tmp_path,
            {
                "joulecast-exporter": [exporter.url],
                "joulecast-estimator": [f"127.0.0.1:{est_port}"],
            },
            rule_files=[str(RULES)] if tsdb == "prometheus" else None,
        )
        procs.append(db)
        estimator = start_estimator(
            tmp_path,
            db.url,
            "--cycle.interval",
            "1",
            "--carbon.intensity",
            "400",
            "--track.epochs",
            "8,12",
            "--queue.dir",
            str(tmp_path / "queue"),
            "--pre.history-file",
            str(tmp_path / "history.csv"),
            "--pre.retrain-interval",
            "2",
            "--budgets.file",
            str(budgets),
            port=est_port,
        )
        procs.append(estimator)

        # Start training once the TSDB scrapes both targets.
        wait_for(lambda: len(prom_query(db.url, "up == 1")) == 2, timeout=30)
        t0 = time.time()
        job = joulecast.job(
            "sim-train",
            epochs=EPOCHS,
            url=exporter.url,
            gpus=[1],
            features={
                "model_gflops": 4.1,
                "batch_size": 64,
                "host_ram_gb": 16,
                "train_samples": 20000,
                "eval_samples": 5000,
            },
        )
        with job:
            for _ in range(EPOCHS):
                time.sleep(EPOCH_S)
                job.epoch_end({"loss": 1.0})
            time.sleep(0.5)
            true_total = http("GET", exporter.url + "/api/v1/jobs/sim-train")[1][
                "epoch_end_energy_joules"
            ]

            # every method in its domain appears in the TSDB while the job runs: the
            # simulated A100 is not a GPU pre_paper was trained on, so it says nothing
            def methods():
                res = prom_query(
                    db.url, 'joulecast_job_projected_energy_joules{job_id="sim-train"}'
                )
                return {r["metric"]["method"] for r in res}

            wanted = {"step_power", "step_epoch", "mlco2", "green_algorithms", "pre_physics"}
            got_methods = wait_for(lambda: methods() >= wanted and methods(), timeout=20)
            assert "pre_paper" not in got_methods
        t1 = time.time()

        # A queued job gets forecasts for its requested GPU and for the fleet's GPU model.
        spec = {
            "job_id": "queued-1",
            "epochs": 20,
            "gpu_model": "NVIDIA GeForce RTX 3090",
            "features": {"model_gflops": 4.1, "batch_size": 64, "train_samples": 20000},
        }
        assert http("POST", estimator.url + "/api/v1/queue", spec)[0] == 201

        def queue_forecasts():
            res = prom_query(db.url, 'joulecast_queue_forecast_energy_joules{job_id="queued-1"}')
            return {(r["metric"]["gpu_model"], r["metric"]["method"]) for r in res}

        got = wait_for(lambda: len(queue_forecasts()) >= 3 and queue_forecasts(), timeout=20)
        assert got == {
            ("GeForce RTX 3090", "pre_paper"),  # a GPU and a job inside its training data
            ("GeForce RTX 3090", "pre_physics"),
            ("NVIDIA A100 SXM4 80GB", "pre_physics"),  # pre_paper never saw an A100
        }
        best = 'joulecast_queue_best_gpu_info{job_id="queued-1",method="pre_physics"}'
        assert len(prom_query(db.url, best)) == 1

        # The first STEP projection (end of the first complete window) is within 3 % of the truth.
        series = prom_query_range(
            db.url, 'joulecast_job_projected_energy_joules{job_id="sim-train"}', t0, t1, 1.0
        )
        first = {}
        for s in series:
            m = s["metric"]["method"]
            if m.startswith("step_"):
                first[m] = float(s["values"][0][1])
        assert set(first) == {"step_power", "step_epoch"}
        for m, v in first.items():
            assert abs(v - true_total) / true_total < 0.03, (m, v, true_total)
        # The TDP baselines are far above (the simulated GPU runs below its TDP).
        mlco2 = prom_query(db.url, 'joulecast_job_projected_energy_joules{method="mlco2"}')
        assert not mlco2 or float(mlco2[0]["value"][1]) > true_total
        # intervals, emissions, stabilizing epoch are published too
        assert prom_query_range(
            db.url, 'joulecast_job_projected_energy_upper_joules{method="step_epoch"}', t0, t1, 1.0
        )
        assert prom_query_range(db.url, "joulecast_job_stabilizing_epoch", t0, t1, 1.0)
        assert prom_query_range(
            db.url, 'joulecast_job_projected_emissions_grams{method="step_epoch"}', t0, t1, 1.0
        )

        # Once finished, the track record of every method at epochs 8 and 12 is published.
        def scored():
            res = prom_query(db.url, 'joulecast_job_projection_error_ratio{job_id="sim-train"}')
            return {
                (r["metric"]["method"], r["metric"]["at_epoch"]): float(r["value"][1]) for r in res
            }

        errors = wait_for(lambda: (e := scored()) and ("step_epoch", "12") in e and e, timeout=20)
        if tsdb == "prometheus":
            # Every Grafana panel's query parses and returns data against this Prometheus
            # (with the recording rules); the accounting board needs scheduler jobs: it is
            # checked against a real Slurm (tests/exporter/sources/test_slurm.py).
            time.sleep(3)  # let range-query steps pass the newest samples
            failures = check_all(
                db.url,
                t0,
                time.time(),
                {
                    "node": ".*",
                    "gpu": ".*",
                    "job_id": "sim-train",
                    "queued_job": ".*",
                    "method": "pre_physics",
                },
                boards=tuple(b for b in BOARDS if b != "accounting.json"),
            )
            assert not failures, "\n".join(failures)
            # ... and the same queries render the Jobs dashboard to a picture
            (png,) = load_renderer().render_all(
                db.url, t0, t1, {"job_id": "sim-train"}, tmp_path, ["jobs.json"]
            )
            assert png.read_bytes()[:4] == b"\x89PNG" and png.stat().st_size > 20_000
        assert abs(errors[("step_epoch", "12")]) < 0.03
        # The finished job became a PRE training row and the retrain loop runs on schedule.
        wait_for(lambda: prom_query(db.url, "joulecast_pre_history_rows >= 1"), timeout=20)
        assert wait_for(lambda: prom_query(db.url, "joulecast_pre_retrains_total"), timeout=20)
        assert errors[("mlco2", "12")] > 0.3  # TDP x hours overestimates by far
        health = prom_query(db.url, "joulecast_estimator_queries_per_cycle")
        # history, live state, what changed, and the fleet's GPUs for the queue
        assert 1 <= float(health[0]["value"][1]) <= 4
    finally:
        for p in reversed(procs):
            p.stop()


@pytest.mark.integration
def test_estimator_survives_prometheus_restart(tmp_path):
    from joulecast.estimator.prometheus.client import PromClient, PromConfig
    from joulecast.estimator.service import Estimator, EstimatorConfig

    exporter = start_exporter(tmp_path, "--backend", "simulated")
    db = start_tsdb("prometheus", tmp_path, {"joulecast-exporter": [exporter.url]})
    try:
        est = Estimator(PromClient(PromConfig(db.url, timeout_s=1, retries=0)), EstimatorConfig())
        assert not est.cycle().stale
        db.stop()
        snap = est.cycle()
        assert snap.stale and snap.errors == {"unreachable": 1}
        db.proc = __import__("subprocess").Popen(
            db.proc.args, stdout=db.log.open("a"), stderr=__import__("subprocess").STDOUT
        )
        wait_for(lambda: not est.cycle().stale, timeout=30)
    finally:
        db.stop()
        exporter.stop()
