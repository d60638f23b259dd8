"""Sharded estimators against a real Prometheus: two shards project every job exactly once,
each reading only its buckets; two replicas of one shard publish the same projections."""

from __future__ import annotations

import time

import pytest

from joulecast.estimator.cli import build, build_parser
from joulecast.shards import owns
from tests.conftest import exporter_in_process
from tests.stack import run_jobs, start_tsdb

pytestmark = pytest.mark.integration
JOBS = [f"run-{i}" for i in range(12)]


@pytest.fixture(scope="module")
def tsdb(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("shards")
    exp = exporter_in_process(tmp / "state", "--backend", "simulated", "--simulated.gpus", "2")
    db = start_tsdb("prometheus", tmp, {"exporter": [exp.url]})
    run_jobs(exp.url, db.url, JOBS, gpus=2, epochs=6, epoch_s=0.3)  # STEP projects them all
    time.sleep(1.5)  # a scrape after the last markers
    yield db
    db.stop()
    exp.stop()


def shard(db, index: int, count: int):
    args = build_parser().parse_args(
        ["--prometheus.url", db.url, "--web.listen-address", "127.0.0.1:0",
         "--shard.index", str(index), "--shard.count", str(count)]
    )  # fmt: skip
    return build(args).estimator


def test_two_shards_project_every_job_exactly_once_from_their_own_buckets(tsdb):
    now = time.time()
    snaps = [shard(tsdb, i, 2).cycle() for i in range(2)]
    mine = [set(s.jobs) for s in snaps]
    assert mine[0] | mine[1] == set(JOBS) and not mine[0] & mine[1]
    for i, jobs in enumerate(mine):
        assert jobs == {j for j in JOBS if owns(i, 2, j)}  # read only its own buckets
        assert all(snaps[i].jobs[j].methods for j in jobs)  # and projected them
    assert all(s.last_success_s and s.last_success_s >= now for s in snaps)


def test_two_replicas_of_a_shard_publish_the_same_projections(tsdb):
    at = time.time()
    a, b = shard(tsdb, 0, 2), shard(tsdb, 0, 2)
    a._clock = b._clock = lambda: at  # the same cycle time, as two replicas scraped together
    sa, sb = a.cycle(), b.cycle()
    assert set(sa.jobs) == set(sb.jobs)
    for job_id, result in sa.jobs.items():
        assert result.methods == sb.jobs[job_id].methods


def test_a_shard_index_past_the_count_stops_the_start(tsdb):
    with pytest.raises(ValueError, match="shard.index"):
        shard(tsdb, 2, 2)
