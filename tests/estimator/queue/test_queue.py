"""The queue API against a real running estimator server: validation and durability."""

from __future__ import annotations

import json

import pytest

from joulecast.estimator.cli import build, build_parser
from tests.conftest import http

SPEC = {
    "job_id": "q-1",
    "epochs": 30,
    "gpu_model": "NVIDIA A100-SXM4-80GB",
    "features": {
        "model_gflops": 4.1,
        "batch_size": 64,
        "train_samples": 50000,
        "eval_samples": 10000,
        "input_height": 224,
        "input_width": 224,
    },
}


@pytest.fixture
def service(tmp_path):
    args = build_parser().parse_args(
        [
            "--prometheus.url",
            "http://127.0.0.1:9",
            "--web.listen-address",
            "127.0.0.1:0",
            "--queue.dir",
            str(tmp_path / "queue"),
            "--prometheus.retries",
            "0",
        ]
    )
    svc = build(args)
    svc.server.serve_in_thread()
    yield svc, tmp_path / "queue"
    svc.server.shutdown()
    svc.server.server_close()


def test_post_list_delete(service):
    svc, qdir = service
    code, body = http("POST", svc.url + "/api/v1/queue", SPEC)
    assert code == 201 and body["gpu_model"] == "NVIDIA A100 SXM4 80GB"
    assert json.loads((qdir / "q-1.json").read_text())["epochs"] == 30  # durable before the answer
    assert http("POST", svc.url + "/api/v1/queue", SPEC)[0] == 200  # replaced
    code, body = http("GET", svc.url + "/api/v1/queue")
    assert code == 200 and [j["job_id"] for j in body["jobs"]] == ["q-1"]
    assert http("DELETE", svc.url + "/api/v1/queue/q-1")[0] == 200
    assert http("DELETE", svc.url + "/api/v1/queue/q-1")[0] == 404
    assert not (qdir / "q-1.json").exists()


@pytest.mark.parametrize(
    "change, fragment",
    [
        ({"epochs": 0}, "'epochs'"),
        ({"epochs": "30"}, "'epochs'"),
        ({"job_id": "bad id"}, "'job_id'"),
        ({"gpu_model": "Radeon 7900"}, "GPU spec table"),
        ({"features": {"batch_size": 64}}, "model_gflops"),
        ({"features": {**SPEC["features"], "batch_size": -2}}, "features.batch_size"),
        ({"surprise": True}, "unknown field"),
    ],
)
def test_bad_specs_are_400(service, change, fragment):
    svc, qdir = service
    code, body = http("POST", svc.url + "/api/v1/queue", {**SPEC, **change})
    assert code == 400 and fragment in body["error"]
    assert not list(qdir.glob("*.json"))


def test_malformed_and_oversized(service):
    svc, _ = service
    assert http("POST", svc.url + "/api/v1/queue", raw=b"{nope")[0] == 400
    assert http("POST", svc.url + "/api/v1/queue", raw=b"x" * 70_000)[0] == 413
    assert http("PUT", svc.url + "/api/v1/queue")[0] == 405
    assert http("GET", svc.url + "/healthz")[0] == 200


def test_invalid_file_in_queue_dir_is_reported_not_fatal(service):
    svc, qdir = service
    (qdir / "broken.json").write_text("{")
    http("POST", svc.url + "/api/v1/queue", SPEC)
    code, body = http("GET", svc.url + "/api/v1/queue")
    assert code == 200 and "broken.json" in body["invalid_files"] and len(body["jobs"]) == 1
