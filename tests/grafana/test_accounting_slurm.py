"""The Accounting dashboard against a real Slurm: jobs of two accounts, one that fails,
measured by the exporter's Slurm source and scraped by Prometheus with the recording
rules; every panel's query returns data, and the period's energy by account adds up to
what the exporter charged each job."""

from __future__ import annotations

import time

import pytest

from tests.grafana.dashboards import DASHBOARDS, check_all
from tests.slurmcluster import start_slurm
from tests.stack import prom_query, start_tsdb, wait_for

pytestmark = pytest.mark.integration
RULES = DASHBOARDS.parents[1] / "prometheus" / "rules" / "joulecast.rules.yml"
ALL = {"scheduler": ".*", "account": ".*", "user": ".*", "partition": ".*"}


@pytest.fixture(scope="module")
def slurm():
    cluster = start_slurm(gpus=2)
    yield cluster
    cluster.stop()


def _query(expr: str) -> str:
    for name, value in {**ALL, "__range": "1h"}.items():
        expr = expr.replace(f"${name}", value)
    return expr


def test_every_accounting_panel_has_data_and_accounts_add_up(slurm, make_exporter, tmp_path):
    exp = make_exporter(*slurm.exporter_flags(2))
    db = start_tsdb(
        "prometheus", tmp_path, {"exporter": [exp.url]}, "500ms", rule_files=[str(RULES)]
    )
    try:
        wait_for(lambda: prom_query(db.url, "up == 1"), timeout=30)
        t0 = time.time()
        jobs = {
            "physics": [
                slurm.sbatch("--gres=gpu:1", "-A", "physics", "-J", "sim", "--wrap", "sleep 6"),
                slurm.sbatch(
                    "--gres=gpu:1", "-A", "physics", "-J", "crash", "--wrap", "sleep 5; exit 3"
                ),
            ],
            "bio": [slurm.sbatch("--gres=gpu:1", "-A", "bio", "-J", "fold", "--wrap", "sleep 6")],
        }
        ended = 'count(joulecast_job_info{scheduler="slurm",state!="running"})'
        wait_for(lambda: (r := prom_query(db.url, ended)) and r[0]["value"][1] == "3", timeout=90)
        time.sleep(3)  # a few samples of the ended counters, and rule evaluations
        failures = check_all(db.url, t0, time.time(), ALL, boards=("accounting.json",))
        assert not failures, "\n".join(failures)

        charged = {
            a: sum(exp.registry.get(j).energy_joules for j in ids) for a, ids in jobs.items()
        }
        assert all(v > 0 for v in charged.values())
        by_account = _query(
            "sum by (account) (increase(joulecast_job_energy_joules_total[$__range])"
            " * on (job_id) group_left (account)"
            ' max by (job_id, account) (last_over_time(joulecast_job_info{scheduler!=""}[$__range])))'
        )
        got = {r["metric"]["account"]: float(r["value"][1]) for r in prom_query(db.url, by_account)}
        assert set(got) == set(charged)
        # increase() misses what a job used before its first scrape, less the half
        # interval Prometheus extrapolates back: a few % of a 6 s job, nothing of an hour's
        for account, joules in charged.items():
            assert got[account] == pytest.approx(joules, rel=0.1), account
        crashed = exp.registry.get(jobs["physics"][1]).energy_joules
        not_finished = _query(
            "sum(increase(joulecast_job_energy_joules_total[$__range]) * on (job_id) group_left ()"
            ' max by (job_id) (last_over_time(joulecast_job_info{state!~"running|finished"}[$__range])))'
        )
        assert float(prom_query(db.url, not_finished)[0]["value"][1]) == pytest.approx(
            crashed, rel=0.1
        )
    finally:
        slurm.run("scancel", "--user=root", check=False)
        db.stop()
