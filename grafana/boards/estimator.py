"""joulecast / Estimator: each method's track record on finished jobs, and the estimator's health."""

from __future__ import annotations

from boards.common import Board, Query


def board() -> Board:
    b = Board(
        "joulecast-estimator",
        "joulecast / Estimator",
        "Each method's track record on finished jobs, and the estimator's health.",
        [],
    )
    track_record(b)
    health(b)
    return b


def track_record(b: Board) -> None:
    b.row("Track record")
    b.timeseries(
        "Mean absolute error by method",
        [Query("joulecast_method_mean_absolute_error_ratio", "{{method}} @ {{unit}} {{at_epoch}}")],
        unit="percentunit",
        description="Over the last 1,000 finished jobs.",
    )
    b.table(
        "Track record now",
        [
            Query("joulecast_method_mean_absolute_error_ratio"),
            Query("joulecast_method_evaluated_jobs"),
        ],
    )
    b.table(
        "Finished jobs: projection error", [Query("joulecast_job_projection_error_ratio")], w=24
    )


def health(b: Board) -> None:
    b.row("Health")
    b.stat("Stale", [Query("max(joulecast_estimator_stale)")])
    b.stat(
        "Last success",
        [Query("max(joulecast_estimator_last_success_timestamp_seconds) * 1000")],
        unit="dateTimeFromNow",
    )
    b.stat("Running jobs", [Query("sum(joulecast_estimator_running_jobs)")])
    b.stat("Queries per cycle", [Query("max(joulecast_estimator_queries_per_cycle)")])
    b.timeseries(
        "Cycle duration",
        [Query("joulecast_estimator_cycle_duration_seconds", "{{instance}}")],
        unit="s",
    )
    b.timeseries(
        "Errors",
        [
            Query(
                "sum by (kind) (rate(joulecast_estimator_errors_total[$__rate_interval])) or vector(0)",
                "{{kind}}",
            )
        ],
        unit="ops",
    )
    b.stat(
        "Jobs left out",
        [Query("max(joulecast_estimator_jobs_dropped)")],
        description="Jobs not tracked past --jobs.max-tracked.",
    )
    b.stat(
        "Budgets file",
        [Query("min(joulecast_budgets_last_reload_successful) or vector(1)")],
        description="0 when the last edit of --budgets.file did not parse and older budgets "
        "are in force.",
    )
