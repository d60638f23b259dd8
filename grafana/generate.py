"""Generates the provisioned Grafana dashboards in grafana/dashboards/ (run after edits).

    python grafana/generate.py

Dashboards are code so that panels stay consistent and every query is testable: the test
suite checks that the committed JSON equals this script's output, and runs every panel's
PromQL (variables substituted) against the real Prometheus of the integration test.
"""

from __future__ import annotations

import json
from pathlib import Path

OUT = Path(__file__).resolve().parent / "dashboards"
DS = {"type": "prometheus", "uid": "${datasource}"}


class Board:
    def __init__(self, uid: str, title: str, description: str, variables: list[dict]) -> None:
        self.uid, self.title, self.description = uid, title, description
        self.variables = variables
        self.panels: list[dict] = []
        self._y = 0
        self._x = 0
        self._row_h = 0

    def row(self, title: str) -> None:
        self._newline()
        self.panels.append(
            {
                "type": "row",
                "title": title,
                "collapsed": False,
                "gridPos": {"h": 1, "w": 24, "x": 0, "y": self._y},
                "id": len(self.panels) + 1,
                "panels": [],
            }
        )
        self._y += 1

    def _newline(self) -> None:
        if self._x:
            self._y += self._row_h
            self._x, self._row_h = 0, 0

    def panel(
        self,
        kind: str,
        title: str,
        targets: list[tuple[str, str]],
        *,
        unit: str = "short",
        w: int = 12,
        h: int = 8,
        description: str = "",
        stack: bool = False,
        fill: int = 10,
        overrides: list | None = None,
        decimals: int | None = None,
    ) -> None:
        if self._x + w > 24:
            self._newline()
        defaults: dict = {"unit": unit}
        if decimals is not None:
            defaults["decimals"] = decimals
        if kind == "timeseries":
            defaults["custom"] = {
                "fillOpacity": fill,
                "lineWidth": 1,
                "showPoints": "never",
                "stacking": {"mode": "normal" if stack else "none"},
            }
        self.panels.append(
            {
                "id": len(self.panels) + 1,
                "type": kind,
                "title": title,
                "description": description,
                "datasource": DS,
                "gridPos": {"h": h, "w": w, "x": self._x, "y": self._y},
                "fieldConfig": {"defaults": defaults, "overrides": overrides or []},
                "options": {
                    "legend": {
                        "displayMode": "table",
                        "placement": "bottom",
                        "calcs": ["lastNotNull"],
                    }
                }
                if kind == "timeseries"
                else {"reduceOptions": {"calcs": ["lastNotNull"]}},
                "targets": [
                    {
                        "refId": chr(65 + i),
                        "datasource": DS,
                        "expr": expr,
                        "legendFormat": legend,
                        **({"instant": True, "format": "table"} if kind == "table" else {}),
                    }
                    for i, (expr, legend) in enumerate(targets)
                ],
            }
        )
        self._x += w
        self._row_h = max(self._row_h, h)

    def json(self) -> dict:
        return {
            "uid": self.uid,
            "title": self.title,
            "description": self.description,
            "tags": ["joulecast", "energy", "gpu"],
            "timezone": "browser",
            "schemaVersion": 39,
            "version": 1,
            "refresh": "30s",
            "time": {"from": "now-3h", "to": "now"},
            "editable": True,
            "graphTooltip": 1,
            "templating": {"list": [datasource(), *self.variables]},
            "annotations": {"list": []},
            "links": [
                {
                    "title": "joulecast",
                    "type": "dashboards",
                    "tags": ["joulecast"],
                    "asDropdown": True,
                }
            ],
            "panels": self.panels,
        }


def datasource() -> dict:
    return {
        "name": "datasource",
        "label": "Data source",
        "type": "datasource",
        "query": "prometheus",
        "current": {},
        "hide": 0,
    }


def query_var(name: str, label: str, query: str, multi: bool = True) -> dict:
    return {
        "name": name,
        "label": label,
        "type": "query",
        "datasource": DS,
        "query": {"query": query, "refId": name},
        "definition": query,
        "refresh": 2,
        "includeAll": multi,
        "multi": multi,
        "allValue": ".*" if multi else None,
        "current": {},
        "sort": 1,
        "hide": 0,
    }


NODE = 'instance=~"$node"'
GPU = f'{NODE},gpu=~"$gpu"'


def node_board() -> Board:
    b = Board(
        "joulecast-node",
        "joulecast / Node",
        "Per-GPU power, energy, utilization, memory, temperature and host metrics of one node.",
        [
            query_var("node", "Node", "label_values(joulecast_gpu_info, instance)"),
            query_var("gpu", "GPU", 'label_values(joulecast_gpu_info{instance=~"$node"}, gpu)'),
        ],
    )
    b.row("Now")
    b.panel(
        "stat",
        "GPU power now",
        [(f"sum(joulecast_gpu_power_watts{{{GPU}}})", "")],
        unit="watt",
        w=6,
        h=4,
    )
    b.panel(
        "stat",
        "GPU energy, last 24 h",
        [(f"sum(increase(joulecast_gpu_energy_joules_total{{{GPU}}}[24h])) / 3.6e6", "")],
        unit="kwatth",
        w=6,
        h=4,
        decimals=2,
    )
    b.panel(
        "stat",
        "Simulated GPUs",
        [(f'count(joulecast_gpu_info{{{GPU},simulated="true"}}) or vector(0)', "")],
        w=6,
        h=4,
        description="GPUs served by the simulated backend (no real measurement).",
    )
    b.panel("stat", "Live jobs", [(f"sum(joulecast_exporter_live_jobs{{{NODE}}})", "")], w=6, h=4)
    b.row("GPUs")
    b.panel(
        "timeseries",
        "Power",
        [
            (f"joulecast_gpu_power_watts{{{GPU}}}", "{{instance}} GPU {{gpu}}"),
            (f"joulecast_gpu_default_power_limit_watts{{{GPU}}}", "TDP {{instance}} GPU {{gpu}}"),
        ],
        unit="watt",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Energy counter vs integrated power",
        [
            (
                f"rate(joulecast_gpu_energy_joules_total{{{GPU}}}[$__rate_interval])",
                "counter {{instance}} GPU {{gpu}}",
            ),
            (
                f"rate(joulecast_gpu_power_integrated_energy_joules_total{{{GPU}}}[$__rate_interval])",
                "integrated {{instance}} GPU {{gpu}}",
            ),
        ],
        unit="watt",
        fill=0,
        description="Mean power from the two energy counters; they should agree.",
    )
    b.panel(
        "timeseries",
        "Utilization",
        [(f"joulecast_gpu_utilization_ratio{{{GPU}}}", "{{instance}} GPU {{gpu}}")],
        unit="percentunit",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Memory used",
        [
            (
                f"joulecast_gpu_memory_used_bytes{{{GPU}}} / joulecast_gpu_memory_total_bytes{{{GPU}}}",
                "{{instance}} GPU {{gpu}}",
            )
        ],
        unit="percentunit",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Temperature",
        [(f"joulecast_gpu_temperature_celsius{{{GPU}}}", "{{instance}} GPU {{gpu}}")],
        unit="celsius",
        fill=0,
    )
    b.panel(
        "timeseries",
        "SM clock",
        [(f"joulecast_gpu_sm_clock_hertz{{{GPU}}}", "{{instance}} GPU {{gpu}}")],
        unit="hertz",
        fill=0,
    )
    b.panel(
        "timeseries",
        "NVML errors",
        [
            (
                f"sum by (instance, gpu, kind) (rate(joulecast_gpu_errors_total{{{GPU}}}[$__rate_interval])) or vector(0)",
                "{{instance}} GPU {{gpu}} {{kind}}",
            )
        ],
        unit="ops",
        fill=0,
    )
    b.panel("table", "GPUs", [(f"joulecast_gpu_info{{{GPU}}}", "")], w=12)
    b.row("Host")
    b.panel(
        "timeseries",
        "Host CPU",
        [(f"joulecast_host_cpu_utilization_ratio{{{NODE}}}", "{{instance}}")],
        unit="percentunit",
        w=8,
        fill=0,
    )
    b.panel(
        "timeseries",
        "Host RAM used",
        [(f"joulecast_host_memory_used_bytes{{{NODE}}}", "{{instance}}")],
        unit="bytes",
        w=8,
        fill=0,
    )
    b.panel(
        "timeseries",
        "CPU / DRAM power (RAPL)",
        [
            (
                f"sum by (instance, domain) (rate(joulecast_host_cpu_energy_joules_total{{{NODE}}}[$__rate_interval])) or vector(0)",
                "{{instance}} {{domain}}",
            )
        ],
        unit="watt",
        w=8,
        fill=0,
        description="Absent (0) where powercap is not readable.",
    )
    return b


JOB = 'job_id=~"$job_id"'


def jobs_board() -> Board:
    b = Board(
        "joulecast-jobs",
        "joulecast / Jobs",
        "Energy so far, epochs and each method's projected total per training job.",
        [query_var("job_id", "Job", "label_values(joulecast_job_info, job_id)")],
    )
    b.row("Progress")
    b.panel(
        "stat",
        "Energy so far",
        [(f"sum(joulecast_job_energy_joules_total{{{JOB}}}) / 3.6e6", "")],
        unit="kwatth",
        w=6,
        h=4,
        decimals=3,
    )
    b.panel(
        "stat",
        "Projected total (STEP)",
        [
            (
                f'max(joulecast_job_projected_energy_joules{{{JOB},method="step_epoch"}}) / 3.6e6 or vector(0)',
                "",
            )
        ],
        unit="kwatth",
        w=6,
        h=4,
        decimals=3,
    )
    b.panel(
        "stat",
        "Epochs",
        [
            (f"max(joulecast_job_epochs_completed{{{JOB}}})", "done"),
            (f"max(joulecast_job_epochs_planned{{{JOB}}})", "planned"),
        ],
        w=6,
        h=4,
    )
    b.panel(
        "stat",
        "Projected end",
        [
            (
                f'max(joulecast_job_projected_end_timestamp_seconds{{{JOB},method="step_epoch"}}) * 1000 or vector(0)',
                "",
            )
        ],
        unit="dateTimeFromNow",
        w=6,
        h=4,
    )
    b.row("Projections")
    b.panel(
        "timeseries",
        "Projected total energy by method",
        [
            (f"joulecast_job_projected_energy_joules{{{JOB}}}", "{{job_id}} {{method}}"),
            (
                f"joulecast_job_epoch_end_energy_joules{{{JOB}}}",
                "{{job_id}} measured at last epoch end",
            ),
        ],
        unit="joule",
        w=24,
        h=10,
        fill=0,
        description="STEP converges on the total; mlco2 (TDP x hours) and green_algorithms are the baselines.",
    )
    b.panel(
        "timeseries",
        "STEP interval",
        [
            (
                f'joulecast_job_projected_energy_lower_joules{{{JOB},method="step_epoch"}}',
                "{{job_id}} lower",
            ),
            (
                f'joulecast_job_projected_energy_joules{{{JOB},method="step_epoch"}}',
                "{{job_id}} projection",
            ),
            (
                f'joulecast_job_projected_energy_upper_joules{{{JOB},method="step_epoch"}}',
                "{{job_id}} upper",
            ),
        ],
        unit="joule",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Baseline / STEP",
        [
            (
                f'joulecast_job_projected_energy_joules{{{JOB},method=~"mlco2|green_algorithms"}} / ignoring(method) group_left '
                f'joulecast_job_projected_energy_joules{{{JOB},method="step_epoch"}}',
                "{{job_id}} {{method}}",
            ),
        ],
        unit="x",
        fill=0,
        description="How many times the TDP baselines overstate the STEP projection.",
    )
    b.panel(
        "timeseries",
        "Power of the job",
        [
            (f"rate(joulecast_job_energy_joules_total{{{JOB}}}[$__rate_interval])", "{{job_id}}"),
            (
                f"rate(joulecast_job_idle_energy_joules_total{{{JOB}}}[$__rate_interval])",
                "{{job_id}} idle part",
            ),
        ],
        unit="watt",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Epochs",
        [
            (f"joulecast_job_epochs_completed{{{JOB}}}", "{{job_id}} done"),
            (f"joulecast_job_stabilizing_epoch{{{JOB}}}", "{{job_id}} stable from"),
        ],
        fill=0,
    )
    b.panel(
        "timeseries",
        "Projected emissions",
        [
            (
                f'joulecast_job_projected_emissions_grams{{{JOB},method="step_epoch"}} or vector(0)',
                "{{job_id}}",
            )
        ],
        unit="massg",
        fill=0,
    )
    b.panel("table", "Jobs", [(f"joulecast_job_info{{{JOB}}}", "")])
    return b


def estimator_board() -> Board:
    b = Board(
        "joulecast-estimator",
        "joulecast / Estimator",
        "Each method's track record on finished jobs, and the estimator's health.",
        [],
    )
    b.row("Track record")
    b.panel(
        "timeseries",
        "Mean absolute error by method",
        [("joulecast_method_mean_absolute_error_ratio", "{{method}} @ {{unit}} {{at_epoch}}")],
        unit="percentunit",
        w=12,
        fill=0,
        description="Over the last 1,000 finished jobs.",
    )
    b.panel(
        "table",
        "Track record now",
        [
            ("joulecast_method_mean_absolute_error_ratio", ""),
            ("joulecast_method_evaluated_jobs", ""),
        ],
        w=12,
    )
    b.panel(
        "table",
        "Finished jobs: projection error",
        [("joulecast_job_projection_error_ratio", "")],
        w=24,
    )
    b.row("Health")
    b.panel("stat", "Stale", [("max(joulecast_estimator_stale)", "")], w=6, h=4)
    b.panel(
        "stat",
        "Last success",
        [("max(joulecast_estimator_last_success_timestamp_seconds) * 1000", "")],
        unit="dateTimeFromNow",
        w=6,
        h=4,
    )
    b.panel("stat", "Running jobs", [("sum(joulecast_estimator_running_jobs)", "")], w=6, h=4)
    b.panel(
        "stat", "Queries per cycle", [("max(joulecast_estimator_queries_per_cycle)", "")], w=6, h=4
    )
    b.panel(
        "timeseries",
        "Cycle duration",
        [("joulecast_estimator_cycle_duration_seconds", "{{instance}}")],
        unit="s",
        fill=0,
    )
    b.panel(
        "timeseries",
        "Errors",
        [
            (
                "sum by (kind) (rate(joulecast_estimator_errors_total[$__rate_interval])) or vector(0)",
                "{{kind}}",
            )
        ],
        unit="ops",
        fill=0,
    )
    return b


QJOB = 'job_id=~"$queued_job"'


def queue_board() -> Board:
    b = Board(
        "joulecast-queue",
        "joulecast / Queue",
        "PRE forecasts of queued jobs on every GPU model of the fleet: where would each cost least?",
        [
            query_var(
                "queued_job",
                "Queued job",
                "label_values(joulecast_queue_forecast_energy_joules, job_id)",
            ),
            query_var(
                "method",
                "Method",
                "label_values(joulecast_queue_forecast_energy_joules, method)",
                multi=False,
            ),
        ],
    )
    b.row("Placement")
    b.panel(
        "table",
        "Cheapest GPU model per queued job",
        [(f'joulecast_queue_best_gpu_info{{{QJOB},method=~"$method"}}', "")],
        w=12,
    )
    b.panel("stat", "Queued jobs", [("max(joulecast_estimator_queued_jobs)", "")], w=6, h=4)
    b.panel(
        "stat",
        "GPU models in the fleet",
        [("count(count by (model) (joulecast_gpu_info))", "")],
        w=6,
        h=4,
    )
    b.panel(
        "bargauge",
        "Forecast energy by GPU model",
        [
            (
                f'sort(joulecast_queue_forecast_energy_joules{{{QJOB},method=~"$method"}}) / 3.6e6',
                "{{job_id}} on {{gpu_model}}",
            )
        ],
        unit="kwatth",
        w=12,
        h=10,
        decimals=3,
    )
    b.panel(
        "bargauge",
        "Forecast duration by GPU model",
        [
            (
                f'sort(joulecast_queue_forecast_duration_seconds{{{QJOB},method=~"$method"}})',
                "{{job_id}} on {{gpu_model}}",
            )
        ],
        unit="s",
        w=12,
        h=10,
    )
    b.panel(
        "table",
        "Forecasts with intervals",
        [
            (f'joulecast_queue_forecast_energy_joules{{{QJOB},method=~"$method"}} / 3.6e6', ""),
            (
                f'joulecast_queue_forecast_energy_lower_joules{{{QJOB},method=~"$method"}} / 3.6e6',
                "",
            ),
            (
                f'joulecast_queue_forecast_energy_upper_joules{{{QJOB},method=~"$method"}} / 3.6e6',
                "",
            ),
            (f'joulecast_queue_forecast_power_watts{{{QJOB},method=~"$method"}}', ""),
        ],
        w=24,
    )
    return b


BOARDS = {
    "node.json": node_board,
    "jobs.json": jobs_board,
    "queue.json": queue_board,
    "estimator.json": estimator_board,
}


def render() -> dict[str, str]:
    return {
        name: json.dumps(fn().json(), indent=2, sort_keys=True) + "\n"
        for name, fn in BOARDS.items()
    }


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
