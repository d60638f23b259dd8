"""The marker API against the real running HTTP server: every bad input gets a clear 4xx."""

from __future__ import annotations

import http.client as httpclient
import json
import socket

import pytest

from joulecast.shards import bucket
from tests.conftest import http, scrape


@pytest.fixture
def exp(make_exporter):
    return make_exporter("--backend", "simulated", "--simulated.gpus", "4", "--jobs.max-live", "5")


def post(exp, path, body=None, **kw):
    return http("POST", exp.url + path, body, **kw)


def register(exp, job_id="job-1", **extra):
    return post(exp, "/api/v1/jobs", {"job_id": job_id, "epochs_planned": 10, "gpus": [0], **extra})


def test_register_mark_finish_list(exp):
    code, body = register(
        exp, features={"model_gflops": 15.5, "batch_size": 64, "model_name": "vgg16"}
    )
    assert code == 201 and body["attributed_gpus"] == [0]
    assert (
        register(exp, features={"model_gflops": 15.5, "batch_size": 64, "model_name": "vgg16"})[0]
        == 200
    )
    code, body = post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1, "metrics": {"loss": 0.5}})
    assert code == 200 and body["epochs_completed"] == 1 and body["last_metrics"] == {"loss": 0.5}
    code, body = http("GET", exp.url + "/api/v1/jobs/job-1")
    assert code == 200 and [e["epoch"] for e in body["epochs"]] == [1]
    assert post(exp, "/api/v1/jobs/job-1/finish", {})[0] == 200
    code, body = http("GET", exp.url + "/api/v1/jobs")
    assert code == 200 and body["jobs"][0]["state"] == "finished"


@pytest.mark.parametrize(
    "payload, fragment",
    [
        ({"epochs_planned": 5}, "'job_id' is required"),
        ({"job_id": "a"}, "'epochs_planned' is required"),
        ({"job_id": "a", "epochs_planned": "ten"}, "must be a number"),
        ({"job_id": "a", "epochs_planned": True}, "must be a number"),
        ({"job_id": "a", "epochs_planned": -3}, "between 0 and"),
        ({"job_id": "a", "epochs_planned": 10**12}, "between 0 and"),
        ({"job_id": "a", "epochs_planned": float("nan")}, "must be finite"),
        ({"job_id": "a b", "epochs_planned": 5}, "'job_id' must be"),
        ({"job_id": 'x"}\n', "epochs_planned": 5}, "'job_id' must be"),
        ({"job_id": "a" * 200, "epochs_planned": 5}, "'job_id' must be"),
        ({"job_id": "a", "epochs_planned": 5, "gpus": [99]}, "unknown GPU index 99"),
        ({"job_id": "a", "epochs_planned": 5, "gpus": [0, 0]}, "duplicate"),
        ({"job_id": "a", "epochs_planned": 5, "gpus": "GPU-nope"}, "unknown GPU UUID"),
        ({"job_id": "a", "epochs_planned": 5, "pids": [-1]}, "between 0"),
        (
            {"job_id": "a", "epochs_planned": 5, "features": {"batch_size": 0}},
            "features.batch_size",
        ),
        (
            {"job_id": "a", "epochs_planned": 5, "features": {"model_gflops": -1.0}},
            "features.model_gflops",
        ),
        ({"job_id": "a", "epochs_planned": 5, "features": {"model_name": "a\nb"}}, "printable"),
        ({"job_id": "a", "epochs_planned": 5, "features": {"colour": 1}}, "unknown field"),
        ({"job_id": "a", "epochs_planned": 5, "surprise": 1}, "unknown field"),
        ([1, 2], "must be a JSON object"),
    ],
)
def test_bad_job_specs_are_400(exp, payload, fragment):
    code, body = post(exp, "/api/v1/jobs", payload)
    assert code == 400, body
    assert fragment in body["error"]


def test_malformed_json_and_empty_body(exp):
    code, body = post(exp, "/api/v1/jobs", raw=b"{not json")
    assert code == 400 and "not valid JSON" in body["error"]
    code, body = post(exp, "/api/v1/jobs", raw=b"\xff\xfe")
    assert code == 400
    code, body = post(exp, "/api/v1/jobs", raw=b"")
    assert code == 400 and "JSON object" in body["error"]
    code, body = post(exp, "/api/v1/jobs", raw=b"NaN")
    assert code == 400


def test_oversized_body_is_413(exp):
    code, body = post(exp, "/api/v1/jobs", raw=b'{"job_id": "' + b"a" * 70_000 + b'"}')
    assert code == 413 and "larger than" in body["error"]


def test_epoch_marker_errors(exp):
    assert register(exp)[0] == 201
    assert post(exp, "/api/v1/jobs/nope/epochs", {"epoch": 1})[0] == 404
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1})[0] == 200
    # the same marker again (a retry whose answer was lost) is recorded once, not refused
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1})[0] == 200
    code, body = post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1, "metrics": {"loss": 2}})
    assert code == 409 and "already marked" in body["error"]
    # a forward gap (markers lost while the exporter was away) is accepted ...
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 3})[0] == 200
    # ... going backwards is not
    code, body = post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 2})
    assert code == 409 and "out of order" in body["error"]
    for bad in (
        {"epoch": 0},
        {"epoch": "4"},
        {"epoch": None},
        {},
        {"epoch": 4, "metrics": {"loss": "x"}},
        {"epoch": 4, "metrics": {"bad key": 1}},
        {"epoch": 4, "metrics": [1]},
    ):
        code, body = post(exp, "/api/v1/jobs/job-1/epochs", bad)
        assert code == 400, (bad, body)
        assert body["error"]
    # a rejected marker changed nothing
    assert http("GET", exp.url + "/api/v1/jobs/job-1")[1]["epochs_completed"] == 3
    assert post(exp, "/api/v1/jobs/job-1/finish")[0] == 200
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 4})[0] == 409
    assert post(exp, "/api/v1/jobs/bad%20id/finish")[0] in (400, 404)
    assert post(exp, "/api/v1/jobs/nope/finish")[0] == 404


def test_planned_epochs_can_change(exp):
    register(exp)
    code, body = post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1, "epochs_planned": 30})
    assert code == 200 and body["epochs_planned"] == 30


def test_same_job_id_continues_the_job(exp):
    """Another rank, or a restarted run: its PIDs join, the plan follows, nothing is lost."""
    register(exp)
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 1})[0] == 200
    code, body = post(
        exp, "/api/v1/jobs", {"job_id": "job-1", "epochs_planned": 99, "pids": [4242]}
    )
    assert code == 200 and body["epochs_planned"] == 99 and 4242 in body["pids"]
    assert body["epochs_completed"] == 1 and body["state"] == "running"


def test_failed_job_resumes_from_its_start_epoch(exp):
    register(exp)
    for e in (1, 2, 3):
        assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": e, "metrics": {"e": e}})[0] == 200
    code, body = post(exp, "/api/v1/jobs/job-1/finish", {"outcome": "failed"})
    assert code == 200 and body["state"] == "failed"
    assert f'joulecast_job_failed{{job_bucket="{bucket("job-1")}",job_id="job-1"}} 1.0' in scrape(
        exp.url
    )
    # resumed from the checkpoint of epoch 2: epoch 3 is trained again
    spec = {"job_id": "job-1", "epochs_planned": 5, "start_epoch": 2}
    code, body = post(exp, "/api/v1/jobs", spec)
    assert code == 200 and body["state"] == "running" and body["epochs_completed"] == 2
    assert post(exp, "/api/v1/jobs/job-1/epochs", {"epoch": 3, "metrics": {"e": 33}})[0] == 200
    epochs = http("GET", exp.url + "/api/v1/jobs/job-1")[1]["epochs"]
    assert [(e["epoch"], e["metrics"]["e"]) for e in epochs] == [(1, 1), (2, 2), (3, 33)]
    assert post(exp, "/api/v1/jobs/job-1/finish", {"outcome": "crashed"})[0] == 400


def test_live_job_cap_is_429(exp):
    for i in range(5):
        assert register(exp, f"j{i}")[0] == 201
    code, body = register(exp, "j5")
    assert code == 429 and "limit" in body["error"]
    post(exp, "/api/v1/jobs/j0/finish")
    assert register(exp, "j5")[0] == 201


def test_methods_and_paths(exp):
    assert http("DELETE", exp.url + "/api/v1/jobs")[0] == 405
    assert http("GET", exp.url + "/api/v1/jobs/job-1/epochs")[0] == 405
    assert http("GET", exp.url + "/api/v2/whatever")[0] == 404
    assert http("GET", exp.url + "/nothing")[0] == 404
    assert http("GET", exp.url + "/healthz")[0] == 200


def test_bad_content_length_and_chunked(exp):
    host, port = exp.server.server_address[:2]
    for headers in ({"Content-Length": "abc"}, {"Transfer-Encoding": "chunked"}):
        conn = httpclient.HTTPConnection(host, port, timeout=5)
        conn.putrequest("POST", "/api/v1/jobs")
        for k, v in headers.items():
            conn.putheader(k, v)
        conn.endheaders()
        resp = conn.getresponse()
        assert resp.status in (400, 411)
        assert "error" in json.loads(resp.read())
        conn.close()


def test_garbage_request_does_not_kill_server(exp):
    host, port = exp.server.server_address[:2]
    with socket.create_connection((host, port), timeout=5) as s:
        s.sendall(b"\x00\x01garbage\r\n\r\n")
        s.recv(1024)
    assert http("GET", exp.url + "/healthz")[0] == 200


def test_bearer_token_guards_the_api(make_exporter):
    exp = make_exporter("--backend", "simulated", "--web.api-token", "s3cret")
    body = {"job_id": "a", "epochs_planned": 3}
    assert http("POST", exp.url + "/api/v1/jobs", body)[0] == 401
    assert (
        http("POST", exp.url + "/api/v1/jobs", body, headers={"Authorization": "Bearer wrong"})[0]
        == 401
    )
    assert (
        http("POST", exp.url + "/api/v1/jobs", body, headers={"Authorization": "Bearer s3cret"})[0]
        == 201
    )
    assert "joulecast_gpu_power_watts" in scrape(exp.url)  # metrics stay open


def test_finished_jobs_expire(make_exporter):
    exp = make_exporter("--backend", "simulated", "--jobs.finished-ttl", "0.2")
    http("POST", exp.url + "/api/v1/jobs", {"job_id": "a", "epochs_planned": 3})
    http("POST", exp.url + "/api/v1/jobs/a/finish")
    import time

    time.sleep(0.3)
    assert exp.registry.expire() == ["a"]
    assert http("GET", exp.url + "/api/v1/jobs/a")[0] == 404


def test_fractional_plans_and_overruns(exp):
    """A step budget ending mid-epoch plans 2.5 epochs; a run past a whole plan is planned
    at what it ran."""
    assert post(exp, "/api/v1/jobs", {"job_id": "half", "epochs_planned": 2.5})[0] == 201
    for e in (1, 2, 3):
        code, body = post(exp, "/api/v1/jobs/half/epochs", {"epoch": e})
        assert code == 200
    assert body["epochs_planned"] == 2.5
    assert post(exp, "/api/v1/jobs", {"job_id": "over", "epochs_planned": 2})[0] == 201
    for e in (1, 2, 3):
        code, body = post(exp, "/api/v1/jobs/over/epochs", {"epoch": e})
    assert body["epochs_planned"] == 3
    # 0: the plan is not known (yet); epochs ran do not make it up
    assert post(exp, "/api/v1/jobs", {"job_id": "zero", "epochs_planned": 0})[0] == 201
    code, body = post(exp, "/api/v1/jobs/zero/epochs", {"epoch": 1})
    assert code == 200 and body["epochs_planned"] == 0
    assert post(exp, "/api/v1/jobs", {"job_id": "neg", "epochs_planned": -1})[0] == 400


def test_step_heartbeat_and_summary_errors(exp):
    assert register(exp, steps_planned=100, heartbeat_s=5)[0] == 201
    assert post(exp, "/api/v1/jobs/nope/steps", {"step": 1})[0] == 404
    assert post(exp, "/api/v1/jobs/nope/heartbeat")[0] == 404
    assert post(exp, "/api/v1/jobs/job-1/steps", {"step": 10, "tokens": 4096})[0] == 200
    for bad in (
        {"step": 0},
        {"step": "11"},
        {},
        {"step": 11, "tokens": -1},
        {"step": 11, "steps_planned": 0},
        {"step": 11, "extra": 1},
        {"step": 10**13},
    ):
        code, body = post(exp, "/api/v1/jobs/job-1/steps", bad)
        assert code == 400 and body["error"], (bad, body)
    code, body = post(exp, "/api/v1/jobs/job-1/steps", {"step": 5})
    assert code == 409 and "out of order" in body["error"]
    for bad_spec in ({"heartbeat_s": 0}, {"steps_planned": 1.5}, {"heartbeat_s": "x"}):
        code, body = register(exp, "job-2", **bad_spec)
        assert code == 400 and body["error"], (bad_spec, body)
    assert post(exp, "/api/v1/jobs/job-1/heartbeat")[0] == 200
    assert http("GET", exp.url + "/api/v1/jobs/job-1/steps")[0] == 405
    code, body = post(exp, "/api/v1/jobs/job-1/finish", {"summary": {"train runtime": 1}})
    assert code == 400 and body["error"]
    code, body = post(exp, "/api/v1/jobs/job-1/finish", {"summary": {"train_runtime": 12.5}})
    assert code == 200 and body["summary"] == {"train_runtime": 12.5}
    assert post(exp, "/api/v1/jobs/job-1/steps", {"step": 20})[0] == 409
    assert post(exp, "/api/v1/jobs/job-1/heartbeat")[0] == 409
    body = http("GET", exp.url + "/api/v1/jobs/job-1")[1]
    assert body["steps_completed"] == 10 and body["tokens_completed"] == 4096
