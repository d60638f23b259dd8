"""The estimator against the stores fleets run, through a proxy in front of a real
Prometheus that stands in for their paths, tenant header, series limit and partial
responses (VictoriaMetrics cluster, Mimir and Thanos are not packaged here): a path prefix
and a tenant from a file reach the store, a query refused for its series limit is split
until it passes and no job is lost, a partial response is used and counted."""

from __future__ import annotations

import pytest

from joulecast.estimator.cli import build, build_parser
from tests.conftest import exporter_in_process
from tests.stack import run_jobs, start_tsdb
from tests.storeproxy import PREFIX, StoreProxy

pytestmark = pytest.mark.integration
JOBS = ["a-1", "b-2", "m-3", "x-4", "Z-5", "7-g"]


@pytest.fixture(scope="module")
def store(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("backends")
    exp = exporter_in_process(tmp / "state", "--backend", "simulated", "--simulated.gpus", "1")
    db = start_tsdb("prometheus", tmp, {"exporter": [exp.url]})
    run_jobs(exp.url, db.url, JOBS, gpus=1, epochs=3, epoch_s=0.4)
    proxy = StoreProxy(db.url, "team-a")
    yield proxy, tmp
    proxy.close()
    db.stop()
    exp.stop()


def estimator(proxy: StoreProxy, tmp, *flags: str):
    args = build_parser().parse_args(
        ["--prometheus.url", proxy.url + PREFIX, "--web.listen-address", "127.0.0.1:0",
         "--prometheus.retries", "0", *flags]
    )  # fmt: skip
    return build(args).estimator


def test_a_path_prefix_and_a_tenant_from_a_file_reach_the_store(store):
    proxy, tmp = store
    (tmp / "tenant").write_text("team-a\n")
    snap = estimator(proxy, tmp, "--prometheus.tenant-file", str(tmp / "tenant")).cycle()
    assert not snap.stale and set(JOBS) <= set(snap.jobs)
    wrong = estimator(proxy, tmp, "--prometheus.tenant", "team-b").cycle()
    assert wrong.stale and wrong.errors  # refused by the store: said, not guessed


def test_a_query_over_the_series_limit_is_split_until_it_passes(store):
    proxy, tmp = store
    proxy.max_series = 25  # a job has about a dozen state series: two jobs a query at most
    try:
        est = estimator(proxy, tmp, "--prometheus.tenant", "team-a")
        snap = est.cycle()
        assert not snap.stale and set(JOBS) <= set(snap.jobs)  # no job lost
        assert snap.limit_splits > 0 and proxy.refused > 0
        assert all(snap.jobs[j].epochs_completed == 3 for j in JOBS)
    finally:
        proxy.max_series = None


def test_a_partial_response_is_used_and_counted(store):
    proxy, tmp = store
    proxy.warn = True
    try:
        est = estimator(proxy, tmp, "--prometheus.tenant", "team-a")
        snap = est.cycle()
        assert not snap.stale and set(JOBS) <= set(snap.jobs)
        assert snap.partial_responses >= 2  # every query of the cycle came with warnings
    finally:
        proxy.warn = False
