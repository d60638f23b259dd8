"""joulecast / Jobs: energy so far, progress, each method's projected total, the budget,
and the nodes a job runs on."""

from __future__ import annotations

from boards.common import Board, Query, query_var

JOB = 'job_id=~"$job_id"'
STEP = f'{JOB},method="step_epoch"'


def board() -> Board:
    b = Board(
        "joulecast-jobs",
        "joulecast / Jobs",
        "Energy so far, epochs and each method's projected total per training job.",
        [query_var("job_id", "Job", "label_values(joulecast_job_info, job_id)")],
    )
    progress(b)
    projections(b)
    nodes(b)
    return b


def progress(b: Board) -> None:
    b.row("Progress")
    b.stat(
        "Energy so far",
        [Query(f"sum(joulecast_job_energy_joules_total{{{JOB}}}) / 3.6e6")],
        unit="kwatth",
        decimals=3,
    )
    b.stat(
        "Projected total (STEP)",
        [Query(f"max(joulecast_job_projected_energy_joules{{{STEP}}}) / 3.6e6 or vector(0)")],
        unit="kwatth",
        decimals=3,
    )
    b.stat(
        "Epochs",
        [
            Query(f"max(joulecast_job_epochs_completed{{{JOB}}})", "done"),
            Query(f"max(joulecast_job_epochs_planned{{{JOB}}})", "planned"),
        ],
    )
    b.stat(
        "Projected end",
        [
            Query(
                f"max(joulecast_job_projected_end_timestamp_seconds{{{STEP}}}) * 1000 or vector(0)"
            )
        ],
        unit="dateTimeFromNow",
    )


def projections(b: Board) -> None:
    b.row("Projections")
    b.timeseries(
        "Projected total energy by method",
        [
            Query(f"joulecast_job_projected_energy_joules{{{JOB}}}", "{{job_id}} {{method}}"),
            Query(
                f"joulecast_job_epoch_end_energy_joules{{{JOB}}}",
                "{{job_id}} measured at last epoch end",
            ),
        ],
        unit="joule",
        w=24,
        h=10,
        description="STEP converges on the total; mlco2 (TDP x hours) and green_algorithms "
        "are the baselines.",
    )
    b.timeseries(
        "STEP interval",
        [
            Query(f"joulecast_job_projected_energy_lower_joules{{{STEP}}}", "{{job_id}} lower"),
            Query(f"joulecast_job_projected_energy_joules{{{STEP}}}", "{{job_id}} projection"),
            Query(f"joulecast_job_projected_energy_upper_joules{{{STEP}}}", "{{job_id}} upper"),
        ],
        unit="joule",
    )
    b.timeseries(
        "Baseline / STEP",
        [
            Query(
                f'joulecast_job_projected_energy_joules{{{JOB},method=~"mlco2|green_algorithms"}}'
                " / ignoring(method) group_left "
                f"joulecast_job_projected_energy_joules{{{STEP}}}",
                "{{job_id}} {{method}}",
            )
        ],
        unit="x",
        description="How many times the TDP baselines overstate the STEP projection.",
    )
    b.timeseries(
        "Projection / budget",
        [
            Query(
                f"max by (job_id) (joulecast_job_projected_energy_joules{{{STEP}}})"
                " / on (job_id) joulecast:job_energy_budget:joules",
                "{{job_id}}",
            )
        ],
        unit="percentunit",
        description="The STEP projection as a share of the job's budget: its own budget_kwh, "
        "else its account's default, else the fleet's (docs/alerts.md). Above 100 % for 2 "
        "minutes, JoulecastJobProjectedOverBudget fires.",
    )
    b.timeseries(
        "Share of the run done",
        [Query(f"joulecast_job_progress_ratio{{{JOB}}}", "{{job_id}} by {{unit}}")],
        unit="percentunit",
        description="Epochs, or optimizer steps for runs of one or two epochs, done of those planned.",
    )
    b.timeseries(
        "Epochs",
        [
            Query(f"joulecast_job_epochs_completed{{{JOB}}}", "{{job_id}} done"),
            Query(f"joulecast_job_stabilizing_epoch{{{JOB}}}", "{{job_id}} stable from"),
        ],
    )
    b.timeseries(
        "Projected emissions",
        [Query(f"joulecast_job_projected_emissions_grams{{{STEP}}} or vector(0)", "{{job_id}}")],
        unit="massg",
    )


def nodes(b: Board) -> None:
    b.row("Nodes and power")
    b.timeseries(
        "Power of the job by node",
        [
            Query(
                f"sum by (job_id, instance) (rate(joulecast_job_energy_joules_total{{{JOB}}}[$__rate_interval]))",
                "{{job_id}} on {{instance}}",
            ),
            Query(
                "sum by (job_id) "
                f"(rate(joulecast_job_idle_energy_joules_total{{{JOB}}}[$__rate_interval]))",
                "{{job_id}} idle part",
            ),
        ],
        unit="watt",
        stack=True,
        fill=20,
        description="Each node's exporter measures the job's GPUs on that node; the estimator "
        "projects the sum.",
    )
    b.stat(
        "Nodes",
        [Query(f"max(joulecast_job_nodes{{{JOB}}})")],
        description="Exporters the job's figures are summed over.",
    )
    b.stat("GPUs", [Query(f"sum(joulecast_job_gpus{{{JOB}}})")])
    b.table("Jobs", [Query(f"joulecast_job_info{{{JOB}}}")], w=24)
