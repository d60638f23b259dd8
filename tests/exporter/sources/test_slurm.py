"""The Slurm source against a real Slurm (munge, slurmctld, slurmd from Debian's packages):
every kind of job is found, labelled, ended with Slurm's outcome, and charged once."""

from __future__ import annotations

import shutil
import sys
import tempfile
import time
from pathlib import Path

import pytest

from joulecast.shards import bucket
from tests.conftest import scrape
from tests.slurmcluster import SlurmCluster, start_slurm
from tests.stack import ROOT, free_port

pytestmark = pytest.mark.integration
HOOK_PORT = free_port()  # the exporter the prolog and epilog wake

CLIENT = (
    f"{sys.executable} -c 'import joulecast,time\n"
    'with joulecast.job(None, epochs=3, url="{url}", flush_timeout=20) as job:\n'
    "    for _ in range(3):\n"
    "        time.sleep(0.7); job.epoch_end()\n'"
)


@pytest.fixture(scope="module")
def slurm() -> SlurmCluster:
    hooks = Path(tempfile.mkdtemp(prefix="joulecast-hooks-"))
    hook = hooks / "joulecast-prolog"
    shutil.copy(ROOT / "deploy" / "slurm" / "joulecast-prolog", hook)
    (hooks / "joulecast-prolog.env").write_text(f"JOULECAST_URL=http://127.0.0.1:{HOOK_PORT}\n")
    cluster = start_slurm(gpus=4, extra=f"Prolog={hook}\nEpilog={hook}")
    yield cluster
    cluster.stop()
    shutil.rmtree(hooks, ignore_errors=True)


def _wait(check, what: str, timeout: float = 120.0):
    deadline = time.time() + timeout
    while time.time() < deadline:
        out = check()
        if out:
            return out
        time.sleep(0.3)
    raise AssertionError(f"{what} not seen in {timeout}s")


def _record(exp, job_id):
    try:
        return exp.registry.get(job_id)
    except Exception:
        return None


def test_every_kind_of_slurm_job_is_found_labelled_ended_and_charged_once(slurm, make_exporter):
    exp = make_exporter(*slurm.exporter_flags(4))
    g0 = sum(s.energy_joules for s in exp.sampler.snapshot().gpus)
    timeout = slurm.sbatch(
        "--gres=gpu:1", "-A", "ml", "-J", "overrun", "-t", "1", "--wrap", "sleep 300"
    )
    cancelled = slurm.sbatch("--gres=gpu:1", "-A", "ml", "-J", "cancelme", "--wrap", "sleep 300")
    plain = slurm.sbatch(
        "--gres=gpu:1", "-A", "vision", "-p", "gpu", "-J", "plain", "--wrap", "sleep 3"
    )
    multi = slurm.sbatch("--gres=gpu:2", "-A", "vision", "-J", "multi", "--wrap", "sleep 3")
    failing = slurm.sbatch("--gres=gpu:1", "-A", "ml", "-J", "crash", "--wrap", "sleep 2; exit 3")
    array = slurm.sbatch(
        "--gres=gpu:1", "-A", "ml", "-J", "sweep", "--array=0-1", "--wrap", "sleep 2"
    )
    client = slurm.sbatch(
        "--gres=gpu:1", "-A", "nlp", "-J", "instrumented", "--wrap", CLIENT.format(url=exp.url)
    )
    slurm.wait_state(cancelled, {"RUNNING"})
    _wait(lambda: _record(exp, cancelled), "the cancelled job while it runs")
    time.sleep(2.0)  # Slurm's times are whole seconds: a life long enough to measure
    slurm.run("scancel", cancelled)
    ended = {
        plain: "finished", multi: "finished", failing: "failed", f"{array}_0": "finished",
        f"{array}_1": "finished", client: "finished", cancelled: "cancelled", timeout: "timeout",
    }  # fmt: skip

    def all_ended():
        records = {j: _record(exp, j) for j in ended}
        return (
            records
            if all(r is not None and not r.live and r.outcome for r in records.values())
            else None
        )

    records = _wait(all_ended, "every job ended", timeout=150)
    assert {j: r.outcome for j, r in records.items()} == ended, slurm.output(client)
    squeue = slurm.jobs()
    for job_id, r in records.items():
        s = r.spec.scheduler
        assert (
            s is not None and s.scheduler == "slurm" and s.user == "root" and s.partition == "gpu"
        )
        assert s.job_name == squeue[job_id]["name"] and s.account == squeue[job_id]["account"]
        assert r.created_at == pytest.approx(squeue[job_id]["start_time"], abs=1.5)
        assert r.finished_at == pytest.approx(squeue[job_id]["end_time"], abs=1.5)
        assert len(r.gpus) == (2 if job_id == multi else 1)
        assert r.energy_joules > 0
    assert records[f"{array}_1"].spec.scheduler.array_job_id == array
    assert records[f"{array}_1"].spec.scheduler.array_task_id == "1"
    assert records[client].epochs_completed == 3 and records[client].epochs_planned == 3
    assert records[plain].epochs_planned == 0  # not known: nothing said it
    # nothing counted twice: the jobs' energy is part of the GPUs' energy over the period
    g1 = sum(s.energy_joules for s in exp.sampler.snapshot().gpus)
    total = sum(r.energy_joules for r in records.values())
    assert 0 < total <= (g1 - g0) * 1.001
    # each job is charged its own GPUs over its own life: between idle and full power
    for r in records.values():
        watts = r.energy_joules / max(r.finished_at - r.created_at, 1e-9) / len(r.gpus)
        assert 30 <= watts <= 420, (r.job_id, watts)
    text = scrape(exp.url)
    (info,) = [
        line
        for line in text.splitlines()
        if line.startswith("joulecast_job_info{") and f'job_id="{failing}"' in line
    ]
    for label in (
        'state="failed"',
        'scheduler="slurm"',
        'user="root"',
        'account="ml"',
        'partition="gpu"',
        'job_name="crash"',
    ):
        assert label in info, info
    assert f'joulecast_job_failed{{job_bucket="{bucket(failing)}",job_id="{failing}"}} 1.0' in text
    # the instrumented job's client may register before the source polls: then it merges
    registered = 'joulecast_source_jobs_total{action="registered",source="slurm"} '
    (line,) = [x for x in text.splitlines() if x.startswith(registered)]
    assert float(line.split()[-1]) in (7.0, 8.0)
    assert 'joulecast_source_poll_errors_total{source="slurm"} 0.0' in text


def test_the_prolog_and_epilog_make_a_short_job_seen_at_once(slurm, make_exporter):
    """With a poll interval far longer than the job, the hooks alone make the exporter see
    a 3 s job start and end, with its outcome."""
    exp = make_exporter(
        "--web.listen-address", f"127.0.0.1:{HOOK_PORT}", *slurm.exporter_flags(4, poll_s=300)
    )
    time.sleep(1.0)  # the first poll, at start, is done
    job = slurm.sbatch("--gres=gpu:1", "-A", "ml", "-J", "short", "--wrap", "sleep 3")
    running = _wait(lambda: _record(exp, job), "the job, woken by the prolog", timeout=30)
    assert running.live
    ended = _wait(
        lambda: (r := _record(exp, job)) is not None and not r.live and r, "its end", timeout=30
    )
    assert ended.outcome == "finished" and ended.energy_joules > 0
