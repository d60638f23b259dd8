"""Every file the estimator reads at start-up or in a cycle, spoiled: the daemon starts,
sets the file aside (renamed ``*.rejected-*``) with a warning naming it, counts it, keeps
forecasting the other queued jobs, and its ``/metrics`` stays 200 and parseable."""

from __future__ import annotations

import json
import urllib.request
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from joulecast.estimator.cli import build, build_parser
from tests.conftest import http
from tests.estimator.prometheus.test_client import FakeTSDB
from tests.estimator.queue.test_queue import SPEC

DEEP = "[" * 100_000 + "]" * 100_000


@pytest.fixture
def tsdb():
    t = FakeTSDB()
    yield t
    t.close()


def start(tmp_path: Path, tsdb: FakeTSDB):
    args = build_parser().parse_args(
        [
            "--prometheus.url", tsdb.url,
            "--web.listen-address", "127.0.0.1:0",
            "--queue.dir", str(tmp_path / "queue"),
            "--step.calibration-file", str(tmp_path / "calibration.json"),
            "--pre.history-file", str(tmp_path / "history.csv"),
            "--prometheus.retries", "0",
        ]
    )  # fmt: skip
    svc = build(args)
    svc.server.serve_in_thread()
    return svc


def metrics(svc) -> dict:
    with urllib.request.urlopen(svc.url + "/metrics", timeout=5) as resp:
        assert resp.status == 200
        text = resp.read().decode()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    return {s.labels["kind"]: s.value for s in families["joulecast_files_rejected"].samples}


def stop(svc) -> None:
    svc.server.shutdown()
    svc.server.server_close()


@pytest.mark.parametrize(
    "content",
    ["[]", "null", '{"scores": [{"method": "m", "at_epoch": 1e400, "scores": [1]}]}', DEEP,
     '{"scores": [{"method": "m", "at_epoch": 5, "scores": "abc"}]}', "\x00\x01", "{"],
    ids=["list", "null", "1e400", "deep", "scores-text", "binary", "truncated"],
)  # fmt: skip
def test_a_spoiled_calibration_file_is_set_aside_and_calibration_starts_afresh(
    tmp_path, tsdb, content, caplog
):
    (tmp_path / "calibration.json").write_text(content)
    svc = start(tmp_path, tsdb)
    try:
        assert metrics(svc)["calibration"] == 1
        assert not (tmp_path / "calibration.json").exists()
        assert list(tmp_path.glob("calibration.json.rejected-*"))
        assert "calibration.json" in caplog.text
        assert not svc.estimator.cycle().stale
    finally:
        stop(svc)


@pytest.mark.parametrize(
    "content",
    ["gpu_model,epoch_energy_j\nA100,5\n", "job_id,gpu_model\x00\n\x00\x00", ""],
    ids=["no-job-id", "nul-bytes", "empty"],
)
def test_a_spoiled_history_file_is_set_aside_and_a_new_one_started(tmp_path, tsdb, content):
    (tmp_path / "history.csv").write_text(content)
    svc = start(tmp_path, tsdb)
    try:
        assert metrics(svc)["history"] == 1
        assert list(tmp_path.glob("history.csv.rejected-*"))
    finally:
        stop(svc)


@pytest.mark.parametrize("meta", ["[]", "null", '{"format": 2, "methods": ["knn"]}', DEEP])
def test_a_retrained_model_with_spoiled_metadata_is_set_aside_for_the_seed(tmp_path, tsdb, meta):
    bad = tmp_path / "pre-models" / "20991231T000000"
    bad.mkdir(parents=True)
    (bad / "metadata.json").write_text(meta)
    svc = start(tmp_path, tsdb)
    try:
        assert metrics(svc)["model"] == 1
        assert not bad.exists() and list(bad.parent.glob("20991231T000000.rejected-*"))
        assert svc.estimator.pre.enabled  # the seed model serves
    finally:
        stop(svc)


@pytest.mark.parametrize(
    "content",
    [DEEP, "[]", '{"job_id": "x"}', "\xff\xfe", '{"job_id": "nl\\n", "epochs": 3}', "{" * 3],
    ids=["deep", "list", "incomplete", "not-utf8", "newline-id", "truncated"],
)
def test_one_spoiled_queue_file_never_stops_the_other_forecasts(tmp_path, tsdb, content):
    svc = start(tmp_path, tsdb)
    try:
        assert http("POST", svc.url + "/api/v1/queue", SPEC)[0] == 201
        (tmp_path / "queue" / "spoiled.json").write_bytes(
            content.encode("utf-8", "surrogateescape")
        )
        snap = svc.estimator.cycle()
        assert not snap.stale and "q-1" in snap.queue and snap.queue["q-1"]
        code, body = http("GET", svc.url + "/api/v1/queue")
        assert code == 200 and [j["job_id"] for j in body["jobs"]] == ["q-1"]
        assert "spoiled.json" in body["invalid_files"]
        assert metrics(svc)["queue"] == 1
        assert list((tmp_path / "queue").glob("spoiled.json.rejected-*"))
        assert http("GET", svc.url + "/healthz")[0] == 200
    finally:
        stop(svc)


def test_a_queue_file_too_large_to_be_a_spec_is_set_aside(tmp_path, tsdb):
    svc = start(tmp_path, tsdb)
    try:
        (tmp_path / "queue" / "big.json").write_text(json.dumps({"pad": "x" * 2_000_000}))
        assert svc.estimator.cycle().queue == {}
        assert (
            "larger than" in http("GET", svc.url + "/api/v1/queue")[1]["invalid_files"]["big.json"]
        )
    finally:
        stop(svc)
