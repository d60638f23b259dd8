"""Incremental state reads against a real Prometheus and a real VictoriaMetrics: between
whole reads a cycle reads every job's live series and only what changed of the rest, and
ends up knowing exactly what a whole read knows; its answer grows with what changed."""

from __future__ import annotations

import time
from collections import Counter
from dataclasses import asdict

import pytest

import joulecast
from joulecast.estimator.prometheus.changes import (
    MAX_IDS_CHARS,
    fetch_live,
    fetch_settled,
    id_matchers,
)
from joulecast.estimator.prometheus.client import PromClient, PromConfig
from joulecast.estimator.service import Estimator, EstimatorConfig
from tests.conftest import exporter_in_process
from tests.stack import prom_query, start_tsdb, wait_for

pytestmark = pytest.mark.integration


@pytest.fixture(params=["prometheus", "victoriametrics"])
def fleet(request, tmp_path):
    exp = exporter_in_process(tmp_path / "state", "--backend", "simulated", "--simulated.gpus", "2")
    db = start_tsdb(request.param, tmp_path, {"exporter": [exp.url]})
    yield exp, db
    db.stop()
    exp.stop()


def states(est: Estimator) -> dict[str, dict]:
    """What the estimator's book knows of each job, but for the figures that move with
    every scrape (energy, utilisation) and the time a node was last seen."""
    out = {}
    for job_id, st in est.book.combined(time.time()).states.items():
        d = asdict(st)
        for moving in ("energy_j", "gpu_utilization"):
            d.pop(moving)
        out[job_id] = d
    return out


def epochs(est: Estimator) -> dict[str, list[tuple]]:
    """Each job's epoch checkpoints as the book combines them."""
    return {
        job_id: [(p.epoch, p.time_s, p.energy_j) for _, p in sorted(points.items())]
        for job_id, points in est.book.combined(time.time()).epochs.items()
    }


def scraped(db, query: str, n: int) -> None:
    wait_for(lambda: len(prom_query(db.url, query)) == n, timeout=30)
    time.sleep(1.5)


def test_incremental_reads_know_what_whole_reads_know(fleet):
    exp, db = fleet
    client = PromClient(PromConfig(db.url))
    inc = Estimator(client, EstimatorConfig(lookback_s=600, overlap_s=5, resync_s=3600))
    a = joulecast.job("inc-a", epochs=6, url=exp.url, gpus=[0])
    a.register()
    scraped(db, 'joulecast_job_running{job_id="inc-a"}', 1)
    inc.cycle()  # the first cycle reads everything
    b = joulecast.job("inc-b", epochs=8, url=exp.url, gpus=[1])  # a new job
    b.register()
    a.set_planned(epochs=9)  # a plan that changes
    a.epoch_end()
    a.flush()
    scraped(db, 'joulecast_job_epochs_planned{job_id="inc-a"} == 9', 1)
    scraped(db, 'joulecast_job_running{job_id="inc-b"}', 1)
    inc.cycle()
    b.finish("failed")  # an outcome that changes
    for epoch in (2, 3):  # two epochs scraped between two cycles: the first one is raw only
        a.epoch_end()
        a.flush()
        scraped(db, f'joulecast_job_epochs_completed{{job_id="inc-a"}} == {epoch}', 1)
    scraped(db, 'joulecast_job_failed{job_id="inc-b"} == 1', 1)
    scraped(db, 'joulecast_job_end_timestamp_seconds{job_id="inc-b"}', 1)
    inc.cycle()

    def whole_read() -> dict[str, dict]:
        whole = Estimator(client, EstimatorConfig(lookback_s=600, incremental=False))
        whole.cycle()
        return {**states(whole), "epochs": epochs(whole)}

    # VictoriaMetrics may answer a moment without the newest samples of a series
    want = wait_for(lambda: len(whole_read()) == 3 and whole_read(), timeout=10)
    got = {**states(inc), "epochs": epochs(inc)}
    assert [p[0] for p in got["epochs"]["inc-a"]] == [0, 1, 2, 3]
    for job_id in want:  # the first difference, named
        for k, v in want[job_id].items():
            assert got[job_id][k] == v, (job_id, k, got[job_id][k], v)
    assert set(got) == {"inc-a", "inc-b", "epochs"} == set(want)
    assert got == want
    assert got["inc-a"]["epochs_planned"] == 9 and got["inc-b"]["failed"]
    assert got["inc-b"]["features"] == want["inc-b"]["features"] != {}
    a.finish()


def test_only_started_and_ended_jobs_have_their_settled_series_read(fleet):
    exp, db = fleet
    client = PromClient(PromConfig(db.url))
    est = Estimator(client, EstimatorConfig(lookback_s=600, overlap_s=5, resync_s=3600))
    jobs = [joulecast.job(f"still-{i}", epochs=5, url=exp.url, gpus=[i % 2]) for i in range(4)]
    for j in jobs:
        j.register()
    scraped(db, 'joulecast_job_running{job_id=~"still-.*"}', 4)
    est.cycle()  # a whole read: the book knows every job
    live, _ = fetch_live(client, time.time(), Counter(), Counter())
    assert not {j for j in est.book.needs_state(live) if j.startswith("still-")}
    jobs[2].finish()
    new = joulecast.job("still-new", epochs=5, url=exp.url, gpus=[0])
    new.register()
    scraped(db, 'joulecast_job_running{job_id="still-2"} == 0', 1)
    scraped(db, 'joulecast_job_running{job_id="still-new"}', 1)

    def needed() -> set[str]:
        live, _ = fetch_live(client, time.time(), Counter(), Counter())
        return {j for j in est.book.needs_state(live) if j.startswith("still-")}

    # VictoriaMetrics may answer a moment without the newest samples of a series
    wait_for(lambda: needed() == {"still-2", "still-new"}, timeout=10)
    wanted = needed()
    settled = fetch_settled(client, wanted, time.time(), Counter(), Counter())
    assert set(settled) == wanted
    (ended,) = settled["still-2"].values()
    assert ended["end_s"] > 0 and ended["features"]["state"] == "finished"
    for j in jobs[:2] + jobs[3:] + [new]:
        j.finish()


def test_job_ids_are_matched_whole_in_queries_of_bounded_length():
    ids = [f"run.{i:05d}-x" for i in range(3000)]
    matchers = id_matchers(ids)
    assert len(matchers) > 1 and all(len(m) <= MAX_IDS_CHARS + 20 for m in matchers)
    pattern = "|".join(m[len('job_id=~"') : -1] for m in matchers).replace("\\\\", "\\")
    import re

    assert all(re.fullmatch(pattern, j) for j in ids[:50])
    assert not re.fullmatch(pattern, "runX00001-x")  # the dot is a dot


def test_the_incremental_reads_cover_every_series_of_the_whole_read():
    import re

    from joulecast.estimator.prometheus import changes, queries

    def names(selector: str) -> set[str]:
        (alts,) = re.findall(r"joulecast_job_\((.*)\)", selector)
        return {f"joulecast_job_{n}" for n in alts.split("|")}

    incremental = names(changes.LIVE) | set(changes.SETTLED)
    last_epoch = set(queries.EPOCH_SERIES) - names(queries.STATE)
    assert incremental == names(queries.STATE) | last_epoch
    assert not names(changes.LIVE) & set(changes.SETTLED)
    checkpoints = names(changes.EPOCH_HISTORY) | names(changes.STEP_HISTORY)
    assert checkpoints == names(queries.HISTORY)
    assert names(changes.settled_selector()) == set(changes.SETTLED)
