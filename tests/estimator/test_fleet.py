"""A fleet's deployment, end to end on real parts: a Prometheus in agent mode scrapes the
exporter and remote-writes into a real VictoriaMetrics; two estimator shards, shard 0 as a
replica pair, read it through a proxy that stands in for a cluster store (a tenant path and
header, a series limit, partial responses); a Prometheus evaluates the shipped rules over
the three replicas and sends to a clustered Alertmanager pair.

Every job is projected by exactly one shard (and identically by both replicas of it), the
budget alert reaches the webhook once, and a restarted shard publishes what it published
before."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

import joulecast
from joulecast.shards import owns
from tests.conftest import exporter_in_process
from tests.stack import free_port, prom_query, start_estimator, stop_all, wait_for, wait_http
from tests.storeproxy import PREFIX, StoreProxy
from tests.webhook import Webhook

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        any(
            shutil.which(b) is None
            for b in ("prometheus", "victoria-metrics", "prometheus-alertmanager")
        ),
        reason="needs Debian's prometheus, victoria-metrics and prometheus-alertmanager",
    ),
]
ROOT = Path(__file__).resolve().parents[2]
JOBS = [f"{c}-fleet" for c in "abcmxZ7q"]  # first characters apart: a split can part them
OVER = "o-over-budget"  # 0.0005 kWh: far less than 10 simulated epochs need
TENANT = "team-a"


def _spawn(procs: list, tmp: Path, name: str, args: list[str]) -> subprocess.Popen:
    proc = subprocess.Popen(args, stdout=(tmp / f"{name}.log").open("w"), stderr=subprocess.STDOUT)
    procs.append(proc)
    return proc


def _victoria(procs, tmp) -> str:
    port = free_port()
    proc = _spawn(procs, tmp, "vm", ["victoria-metrics", f"-storageDataPath={tmp / 'vm'}",
        f"-httpListenAddr=127.0.0.1:{port}", "-search.latencyOffset=0s", "-search.disableCache"])  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/health", proc)
    return f"http://127.0.0.1:{port}"


def _agent(procs, tmp, exporter: str, vm: str) -> None:
    port = free_port()
    cfg = {
        "global": {"scrape_interval": "1s"},
        "scrape_configs": [
            {"job_name": "joulecast-exporter", "static_configs": [{"targets": [exporter]}]}
        ],
        "remote_write": [
            {"url": vm + "/api/v1/write", "queue_config": {"batch_send_deadline": "1s"}}
        ],
    }
    (tmp / "agent.yml").write_text(json.dumps(cfg))
    proc = _spawn(procs, tmp, "agent", ["prometheus", "--enable-feature=agent",
        f"--config.file={tmp / 'agent.yml'}", f"--storage.agent.path={tmp / 'agent'}",
        f"--web.listen-address=127.0.0.1:{port}"])  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/-/ready", proc)


def _alertmanagers(procs, tmp, hook: str) -> list[str]:
    (tmp / "am.yml").write_text(json.dumps({
        "route": {"receiver": "hook", "group_wait": "1s", "group_interval": "1s",
                  "repeat_interval": "1h"},
        "receivers": [{"name": "hook", "webhook_configs": [{"url": hook}]}],
    }))  # fmt: skip
    web, mesh = [free_port(), free_port()], [free_port(), free_port()]
    for i in range(2):
        proc = _spawn(procs, tmp, f"am{i}", ["prometheus-alertmanager",
            f"--config.file={tmp / 'am.yml'}", f"--storage.path={tmp / f'am{i}'}",
            f"--web.listen-address=127.0.0.1:{web[i]}",
            f"--cluster.listen-address=127.0.0.1:{mesh[i]}",
            f"--cluster.advertise-address=127.0.0.1:{mesh[i]}",
            f"--cluster.peer=127.0.0.1:{mesh[1 - i]}", "--cluster.peer-timeout=2s",
            "--cluster.gossip-interval=100ms", "--cluster.pushpull-interval=1s"])  # fmt: skip
        wait_http(f"http://127.0.0.1:{web[i]}/-/ready", proc)

    def clustered() -> bool:
        with urllib.request.urlopen(f"http://127.0.0.1:{web[0]}/api/v2/status", timeout=5) as r:
            return len(json.loads(r.read())["cluster"].get("peers") or []) == 2

    wait_for(clustered, timeout=30)
    return [f"127.0.0.1:{p}" for p in web]


def _rules_prometheus(procs, tmp, estimators: list[str], exporter: str, ams: list[str]) -> str:
    rules = re.sub(
        r"for: \d+m", "for: 0s", (ROOT / "prometheus" / "rules" / "joulecast.rules.yml").read_text()
    )
    (tmp / "rules.yml").write_text(rules)
    port = free_port()
    (tmp / "prom.yml").write_text(json.dumps({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(tmp / "rules.yml")],
        "alerting": {"alertmanagers": [{"static_configs": [{"targets": ams}]}]},
        "scrape_configs": [{"job_name": "joulecast-estimator", "static_configs": [
            {"targets": [e.split("//")[1] for e in estimators]}]},
            {"job_name": "joulecast-exporter", "static_configs": [{"targets": [exporter]}]}],
    }))  # fmt: skip
    proc = _spawn(procs, tmp, "prom", ["prometheus", f"--config.file={tmp / 'prom.yml'}",
        f"--storage.tsdb.path={tmp / 'prom'}", f"--web.listen-address=127.0.0.1:{port}"])  # fmt: skip
    wait_http(f"http://127.0.0.1:{port}/-/ready", proc)
    return f"http://127.0.0.1:{port}"


def _run_jobs(exporter: str, vm: str) -> None:
    jobs = [joulecast.job(j, epochs=20, url=exporter, gpus=[i % 2]) for i, j in enumerate(JOBS)]
    jobs.append(
        joulecast.job(OVER, epochs=30, url=exporter, gpus=[0], features={"budget_kwh": 0.0005})
    )
    for job in jobs:
        job.register()
    for _ in range(8):
        time.sleep(1.2)  # past the agent's 1 s scrape: every epoch end is seen
        for job in jobs:
            job.epoch_end()
    for job in jobs:
        job.flush()
    wait_for(
        lambda: len(prom_query(vm, "joulecast_job_epochs_completed == 8")) == len(jobs), timeout=60
    )


def projections(url: str) -> dict[str, float]:
    """The STEP projections an estimator publishes, by job."""
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return {
        s.labels["job_id"]: s.value
        for fam in text_string_to_metric_families(text)
        if fam.name == "joulecast_job_projected_energy_joules"
        for s in fam.samples
        if s.labels.get("method") == "step_epoch"
    }


def counter(url: str, name: str) -> float:
    with urllib.request.urlopen(url + "/metrics", timeout=10) as r:
        text = r.read().decode()
    return sum(
        s.value for fam in text_string_to_metric_families(text) if fam.name == name
        for s in fam.samples if s.name == name + "_total"
    )  # fmt: skip


def all_projected(published: list[dict[str, float]]) -> bool:
    a, b, other = (set(p) for p in published)
    return a | other == {*JOBS, OVER} and a == b


def _estimator(tmp, proxy: StoreProxy, index: int, port: int | None = None):
    return start_estimator(tmp, proxy.url + PREFIX, "--prometheus.tenant", TENANT,
        "--shard.count", "2", "--shard.index", str(index), "--cycle.interval", "1",
        "--prometheus.retries", "0", port=port)  # fmt: skip


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("fleet")
    procs: list = []
    hook = Webhook()
    exp = exporter_in_process(tmp / "state", "--backend", "simulated", "--simulated.gpus", "2")
    proxy = None
    try:
        vm = _victoria(procs, tmp)
        _agent(procs, tmp, exp.url.split("//")[1], vm)
        _run_jobs(exp.url, vm)
        proxy = StoreProxy(vm, TENANT)
        proxy.max_series, proxy.warn = 40, True  # every cycle split, every answer partial
        shards = [_estimator(tmp, proxy, 0), _estimator(tmp, proxy, 0), _estimator(tmp, proxy, 1)]
        procs += [s.proc for s in shards]
        ams = _alertmanagers(procs, tmp, hook.url)
        _rules_prometheus(procs, tmp, [s.url for s in shards], exp.url.split("//")[1], ams)
        wait_for(lambda: all_projected([projections(s.url) for s in shards]), 60)
        yield {"shards": shards, "proxy": proxy, "hook": hook, "procs": procs, "tmp": tmp}
    finally:
        stop_all(procs)
        if proxy is not None:
            proxy.close()
        hook.server.shutdown()
        exp.stop()


def test_every_job_is_projected_by_exactly_one_shard_and_both_replicas(fleet):
    a, b, other = (projections(s.url) for s in fleet["shards"])
    everyone = set(JOBS) | {OVER}
    assert set(a) | set(other) == everyone and not set(a) & set(other)
    assert set(a) == {j for j in everyone if owns(0, 2, j)}
    assert a == b  # the pair publishes identical series
    assert fleet["proxy"].refused > 0  # the series limit was met, and split around
    for s in fleet["shards"]:
        assert counter(s.url, "joulecast_estimator_query_splits") > 0
        assert counter(s.url, "joulecast_estimator_partial_responses") > 0


def test_the_pairs_alert_reaches_the_alertmanager_pair_once(fleet):
    hook = fleet["hook"]

    def fired() -> list[dict]:
        return [
            a for a in hook.alerts
            if a["labels"].get("alertname") == "JoulecastJobProjectedOverBudget"
            and a["labels"].get("job_id") == OVER and a["status"] == "firing"
        ]  # fmt: skip

    wait_for(lambda: fired(), timeout=60)
    time.sleep(6)  # past the second Alertmanager's wait for its peer (2 s peer timeout)
    assert len(fired()) == 1


def test_a_restarted_shard_publishes_what_it_published_before(fleet):
    old = fleet["shards"][2]
    before = projections(old.url)
    port = int(old.url.rsplit(":", 1)[1])
    old.proc.terminate()
    old.proc.wait(timeout=10)
    new = _estimator(fleet["tmp"], fleet["proxy"], 1, port=port)
    fleet["procs"].append(new.proc)
    wait_for(lambda: set(projections(new.url)) == set(before), timeout=30)
    assert projections(new.url) == pytest.approx(before, rel=1e-6)
