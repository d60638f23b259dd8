"""End to end: a job's projected energy goes over its budget and the alert reaches a webhook
through a real Prometheus and a real Alertmanager."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

import joulecast
from tests.stack import (
    free_port,
    start_estimator,
    start_exporter,
    stop_all,
    wait_for,
    wait_http,
)
from tests.webhook import Webhook

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.integration
@pytest.mark.skipif(
    shutil.which("prometheus-alertmanager") is None or shutil.which("prometheus") is None,
    reason="needs Debian's prometheus and prometheus-alertmanager",
)
def test_projected_energy_alert_reaches_the_webhook(tmp_path):
    hook = Webhook()
    procs = []
    try:
        am_port = free_port()
        (tmp_path / "am.yml").write_text(
            json.dumps(
                {
                    "route": {
                        "receiver": "hook",
                        "group_wait": "1s",
                        "group_interval": "1s",
                        "repeat_interval": "1h",
                    },
                    "receivers": [{"name": "hook", "webhook_configs": [{"url": hook.url}]}],
                }
            )
        )
        am = subprocess.Popen(
            [
                "prometheus-alertmanager",
                f"--config.file={tmp_path / 'am.yml'}",
                f"--storage.path={tmp_path / 'am'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            stdout=(tmp_path / "am.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        procs.append(am)
        wait_http(f"http://127.0.0.1:{am_port}/-/ready", am)

        exporter = start_exporter(
            tmp_path,
            "--backend",
            "simulated",
            "--simulated.warmup-seconds",
            "0.5",
            "--simulated.cycle-seconds",
            "0.5",
        )
        procs.append(exporter.proc)
        est_port, prom_port = free_port(), free_port()
        # The shipped rules, with `for:` shortened so the test need not wait minutes.
        rules = re.sub(
            r"for: \d+m",
            "for: 0s",
            (ROOT / "prometheus" / "rules" / "joulecast.rules.yml").read_text(),
        )
        (tmp_path / "rules.yml").write_text(rules)
        (tmp_path / "prom.yml").write_text(
            json.dumps(
                {
                    "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
                    "rule_files": [str(tmp_path / "rules.yml")],
                    "alerting": {
                        "alertmanagers": [
                            {"static_configs": [{"targets": [f"127.0.0.1:{am_port}"]}]}
                        ]
                    },
                    "scrape_configs": [
                        {
                            "job_name": "joulecast-exporter",
                            "static_configs": [{"targets": [exporter.url.split("//")[1]]}],
                        },
                        {
                            "job_name": "joulecast-estimator",
                            "static_configs": [{"targets": [f"127.0.0.1:{est_port}"]}],
                        },
                    ],
                }
            )
        )
        prom = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={tmp_path / 'prom.yml'}",
                f"--storage.tsdb.path={tmp_path / 'pd'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            stdout=(tmp_path / "prom.log").open("w"),
            stderr=subprocess.STDOUT,
        )
        procs.append(prom)
        wait_http(f"http://127.0.0.1:{prom_port}/-/ready", prom)
        estimator = start_estimator(
            tmp_path, f"http://127.0.0.1:{prom_port}", "--cycle.interval", "1", port=est_port
        )
        procs.append(estimator.proc)

        from tests.stack import prom_query

        wait_for(
            lambda: len(prom_query(f"http://127.0.0.1:{prom_port}", "up == 1")) == 2, timeout=30
        )
        # 0.0005 kWh = 1.8 kJ: the simulated A100 will need far more for 30 epochs.
        job = joulecast.job(
            "over-budget", epochs=30, url=exporter.url, gpus=[0], features={"budget_kwh": 0.0005}
        )
        with job:
            for _ in range(12):
                time.sleep(0.5)
                job.epoch_end()
            wait_for(
                lambda: any(
                    a["labels"].get("alertname") == "JoulecastJobProjectedOverBudget"
                    for a in hook.alerts
                ),
                timeout=45,
            )
        alert = next(
            a for a in hook.alerts if a["labels"]["alertname"] == "JoulecastJobProjectedOverBudget"
        )
        assert alert["status"] == "firing" and alert["labels"]["job_id"] == "over-budget"
        assert (
            "runbook_url" in alert["annotations"]
            and "over its budget" in alert["annotations"]["summary"]
        )
    finally:
        stop_all(procs)
        hook.server.shutdown()
