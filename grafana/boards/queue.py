"""joulecast / Queue: forecasts of queued and pending jobs on every GPU model of the fleet."""

from __future__ import annotations

from boards.common import Board, Query, query_var

QJOB = 'job_id=~"$queued_job",method=~"$method"'


def board() -> Board:
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
    b.table(
        "Cheapest GPU model per queued job", [Query(f"joulecast_queue_best_gpu_info{{{QJOB}}}")]
    )
    b.stat("Queued jobs", [Query("max(joulecast_estimator_queued_jobs)")])
    b.stat("GPU models in the fleet", [Query("count(count by (model) (joulecast_gpu_info))")])
    b.bargauge(
        "Forecast energy by GPU model",
        [
            Query(
                f"sort(joulecast_queue_forecast_energy_joules{{{QJOB}}}) / 3.6e6",
                "{{job_id}} on {{gpu_model}}",
            )
        ],
        unit="kwatth",
        decimals=3,
    )
    b.bargauge(
        "Forecast duration by GPU model",
        [
            Query(
                f"sort(joulecast_queue_forecast_duration_seconds{{{QJOB}}})",
                "{{job_id}} on {{gpu_model}}",
            )
        ],
        unit="s",
    )
    b.table(
        "Forecasts with intervals",
        [
            Query(f"joulecast_queue_forecast_energy_joules{{{QJOB}}} / 3.6e6"),
            Query(f"joulecast_queue_forecast_energy_lower_joules{{{QJOB}}} / 3.6e6"),
            Query(f"joulecast_queue_forecast_energy_upper_joules{{{QJOB}}} / 3.6e6"),
            Query(f"joulecast_queue_forecast_power_watts{{{QJOB}}}"),
        ],
        w=24,
    )
    return b
