"""joulecast / Accounting: GPU energy of scheduler jobs by Slurm account, user and
partition and by Kubernetes namespace over the period picked, the jobs that cost most, and those over their budget.

A job's energy is never copied per label: each query multiplies the job's own counter by
its ``joulecast_job_info`` labels (``max by`` one series per job), then sums.
"""

from __future__ import annotations

from boards.common import Board, Query, query_var

ACCOUNT = 'scheduler=~"$scheduler",account=~"$account",scheduler!=""'
SCHED = f'{ACCOUNT},user=~"$user",partition=~"$partition"'
INFO = f"joulecast_job_info{{{SCHED}}}"
NOT_FINISHED = f'joulecast_job_info{{{SCHED},state!~"running|finished"}}'


def by(*labels: str, info: str = INFO) -> str:
    """The period's GPU energy (kWh) of the jobs ``info`` selects, summed by ``labels``
    (labels that never change during a job: a job's state does)."""
    keep = ", ".join(labels)
    inner = f"max by (job_id{', ' if keep else ''}{keep}) (last_over_time({info}[$__range]))"
    return (
        f"sum by ({keep}) (increase(joulecast_job_energy_joules_total[$__range])"
        f" * on (job_id) group_left ({keep}) {inner}) / 3.6e6"
    )


def board() -> Board:
    b = Board(
        "joulecast-accounting",
        "joulecast / Accounting",
        "GPU energy of scheduler jobs by account, user and partition over the period picked.",
        [
            query_var(
                "scheduler",
                "Scheduler",
                'label_values(joulecast_job_info{scheduler!=""}, scheduler)',
            ),
            query_var("account", "Account", "label_values(joulecast_job_info, account)"),
            query_var("user", "User", "label_values(joulecast_job_info, user)"),
            query_var("partition", "Partition", "label_values(joulecast_job_info, partition)"),
        ],
    )
    period(b)
    breakdown(b)
    jobs(b)
    return b


def period(b: Board) -> None:
    b.row("The period picked")
    b.stat("GPU energy", [Query(by())], unit="kwatth", decimals=2)
    b.stat(
        "Jobs",
        [Query(f"count(max by (job_id) (last_over_time({INFO}[$__range])))")],
        description="Scheduler jobs seen in the period.",
    )
    b.stat(
        "Energy of jobs that did not finish",
        [Query(f"{by(info=NOT_FINISHED)} or vector(0)")],
        unit="kwatth",
        decimals=2,
        description="Failed, cancelled, timed out, preempted, node failure, out of memory, lost.",
    )
    b.stat(
        "Running jobs over their budget",
        [
            Query(
                'count((max by (job_id) (joulecast_job_projected_energy_joules{method="step_epoch"})'
                " > on (job_id) joulecast:job_energy_budget:joules)"
                f" * on (job_id) group_left () max by (job_id) ({INFO})) or vector(0)"
            )
        ],
        description="STEP projection above the job's budget (its own, its account's or the fleet's).",
    )


def breakdown(b: Board) -> None:
    b.row("By account, user, partition (Slurm) and namespace (Kubernetes)")
    for label in ("account", "user", "partition", "namespace"):
        b.bargauge(
            f"GPU energy by {label}",
            [Query(f"sort_desc({by('scheduler', label)})", f"{{{{scheduler}}}} {{{{{label}}}}}")],
            unit="kwatth",
            decimals=2,
            w=6,
        )
    b.timeseries(
        "GPU energy of the last day, by account",
        [Query(f"joulecast:account_energy_1d:kwh{{{ACCOUNT}}}", "{{account}}")],
        unit="kwatth",
        w=24,
        description="The recording rule joulecast:account_energy_1d:kwh (a rolling day).",
    )


def jobs(b: Board) -> None:
    b.row("Jobs")
    labels = "job_id, user, account, partition, job_name"
    b.table(
        "Jobs that cost most in the period",
        [
            Query(
                f"topk(20, sum by (job_id) (increase(joulecast_job_energy_joules_total[$__range]))"
                f" * on (job_id) group_left (user, account, partition, job_name)"
                f" max by ({labels}) (last_over_time({INFO}[$__range]))) / 3.6e6"
            )
        ],
        w=24,
    )
