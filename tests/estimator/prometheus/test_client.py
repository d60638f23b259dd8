"""The Prometheus API client and the estimator's behaviour when the TSDB misbehaves."""

from __future__ import annotations

import contextlib
import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from joulecast.estimator.collector import EstimatorCollector
from joulecast.estimator.prometheus.client import PromClient, PromConfig, PromError
from joulecast.estimator.service import Estimator, EstimatorConfig

EMPTY_VECTOR = {"status": "success", "data": {"resultType": "vector", "result": []}}
EMPTY_MATRIX = {"status": "success", "data": {"resultType": "matrix", "result": []}}


def nan_answer(matrix: bool) -> dict:
    """Two running jobs; every value of job "bad" is NaN or Inf (a broken remote write)."""

    def value(job: str, v: float) -> str:
        return "NaN" if job == "bad" and v != 0 else ("+Inf" if job == "inf" else repr(v))

    if matrix:
        result = []
        for job in ("good", "bad", "inf"):
            for name, f in (
                ("joulecast_job_epochs_completed", lambda e: float(e)),
                ("joulecast_job_epoch_end_timestamp_seconds", lambda e: 1000.0 + 60 * e),
                ("joulecast_job_epoch_end_energy_joules", lambda e: 9000.0 * e),
            ):
                points = [[1000.0 + 60 * e, value(job, f(e))] for e in range(1, 13)]
                result.append({"metric": {"__name__": name, "job_id": job}, "values": points})
        return {"status": "success", "data": {"resultType": "matrix", "result": result}}
    result = []
    for job in ("good", "bad", "inf"):
        for name, v in (
            ("joulecast_job_epochs_planned", 50.0),
            ("joulecast_job_epochs_completed", 12.0),
            ("joulecast_job_running", 1.0),
            ("joulecast_job_start_timestamp_seconds", 1000.0),
            ("joulecast_job_energy_joules_total", 108000.0),
        ):
            sample = value(job, v) if name != "joulecast_job_running" else "1"
            result.append({"metric": {"__name__": name, "job_id": job}, "value": [1800, sample]})
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


ODD_JOB_IDS = [7, 2.5, True, None, {"x": 1}, ["a"], "\ud800", "ok\udfffbad"]


def odd_label_answer(matrix: bool) -> dict:
    """Job "good" plus copies of its series whose job_id is a number, an object, a lone
    surrogate...: what a broken remote write or a hand-made TSDB can serve."""
    answer = nan_answer(matrix)
    good = [r for r in answer["data"]["result"] if r["metric"]["job_id"] == "good"]
    odd = [
        {**r, "metric": {**r["metric"], "job_id": job_id}} for job_id in ODD_JOB_IDS for r in good
    ]
    odd.append({**good[0], "metric": "not an object"})
    answer["data"]["result"] = good + odd
    return answer


class FakeTSDB:
    """A scripted HTTP endpoint standing in for a TSDB that fails in ways a real one rarely does."""

    def __init__(self) -> None:
        self.mode = "ok"
        self.requests: list[dict] = []
        outer = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                with contextlib.suppress(BrokenPipeError, ConnectionResetError):
                    self._answer()  # the client may have timed out first

            def _answer(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0))).decode()
                outer.requests.append(
                    {"path": self.path, "headers": dict(self.headers), "body": body}
                )
                mode = outer.mode
                if mode == "slow":
                    time.sleep(1.0)
                if mode == "500":
                    self.send_response(503)
                    self.end_headers()
                    return
                if mode == "garbage":
                    payload = b"<html>proxy error</html>"
                elif mode == "wrong-shape":
                    payload = json.dumps({"status": "success", "data": {"result": 3}}).encode()
                elif mode == "query-error":
                    self.send_response(400)
                    payload = json.dumps(
                        {"status": "error", "errorType": "bad_data", "error": "parse error"}
                    ).encode()
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)
                    return
                elif mode == "nan":
                    payload = json.dumps(nan_answer("%5B" in body)).encode()
                elif mode == "odd-labels":
                    payload = json.dumps(odd_label_answer("%5B" in body)).encode()
                elif mode == "trickle":  # one byte at a time, each well within the timeout
                    payload = json.dumps(EMPTY_VECTOR).encode()
                    self.send_response(200)
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    for i in range(len(payload)):
                        self.wfile.write(payload[i : i + 1])
                        self.wfile.flush()
                        time.sleep(0.1)
                    return
                elif mode == "huge":
                    series = [
                        {"metric": {"job_id": f"j{i}"}, "value": [1, "1"]} for i in range(500)
                    ]
                    payload = json.dumps(
                        {"status": "success", "data": {"resultType": "vector", "result": series}}
                    ).encode()
                else:
                    payload = json.dumps(EMPTY_MATRIX if "%5B" in body else EMPTY_VECTOR).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), H)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def tsdb():
    t = FakeTSDB()
    yield t
    t.close()


def client(url, **kw):
    return PromClient(
        PromConfig(
            url,
            timeout_s=kw.pop("timeout_s", 0.3),
            retries=kw.pop("retries", 2),
            backoff_s=0.01,
            **kw,
        )
    )


def test_auth_and_tenant_headers_are_sent(tsdb):
    c = client(tsdb.url, bearer_token="tok", headers={"X-Scope-OrgID": "team-a"})
    c.query("up")
    h = tsdb.requests[-1]["headers"]
    assert h["Authorization"] == "Bearer tok" and h["X-Scope-OrgID"] == "team-a"
    c = client(tsdb.url, username="u", password="p")
    c.query("up")
    assert tsdb.requests[-1]["headers"]["Authorization"].startswith("Basic ")


@pytest.mark.parametrize(
    "mode, kind, attempts",
    [
        ("500", "http_status", 3),
        ("slow", "timeout", 3),
        ("garbage", "bad_response", 1),
        ("wrong-shape", "bad_response", 1),
        ("query-error", "query_error", 1),
    ],
)
def test_failures_map_to_kinds_and_retry_only_transient(tsdb, mode, kind, attempts):
    tsdb.mode = mode
    c = client(tsdb.url)
    with pytest.raises(PromError) as err:
        c.query("up")
    assert err.value.kind == kind
    assert len(tsdb.requests) == attempts


def test_a_trickling_answer_trips_the_deadline_of_the_whole_query(tsdb):
    tsdb.mode = "trickle"
    c = client(tsdb.url, timeout_s=0.5, retries=1)
    started = time.monotonic()
    with pytest.raises(PromError) as err:
        c.query("up")
    assert err.value.kind == "timeout"
    assert time.monotonic() - started < 3  # 2 attempts of 0.5 s, not 2 x 4 s of trickle


def test_an_answer_past_the_size_cap_fails_its_query(tsdb):
    tsdb.mode = "huge"
    with pytest.raises(PromError) as err:
        client(tsdb.url, max_answer_bytes=4096).query("up")
    assert err.value.kind == "bad_response" and "larger than 4096" in str(err.value)
    assert len(tsdb.requests) == 1
    assert len(client(tsdb.url).query("up")) == 500


def test_series_with_odd_labels_are_left_out_and_every_other_job_projects(tsdb):
    from prometheus_client.parser import text_string_to_metric_families

    tsdb.mode = "odd-labels"
    est = Estimator(client(tsdb.url, retries=0), EstimatorConfig())
    for _ in range(2):
        snap = est.cycle()
        assert not snap.stale and not snap.errors
    assert set(snap.jobs) == {"good"}
    assert snap.jobs["good"].methods["step_epoch"].energy_j == pytest.approx(50 * 9000.0, rel=0.01)
    assert snap.skipped_samples["bad_label"] >= len(ODD_JOB_IDS)
    text = render(est)
    families = {f.name for f in text_string_to_metric_families(text)}
    assert "joulecast_job_projected_energy_joules" in families
    assert 'joulecast_estimator_skipped_samples_total{kind="bad_label"}' in text


def test_unreachable():
    with pytest.raises(PromError) as err:
        client("http://127.0.0.1:9", retries=0).query("up")
    assert err.value.kind == "unreachable"


def render(est: Estimator) -> str:
    reg = CollectorRegistry()
    reg.register(EstimatorCollector(est.snapshot, "test"))
    return generate_latest(reg).decode()


def test_estimator_serves_stale_values_and_recovers(tsdb, caplog):
    est = Estimator(client(tsdb.url, retries=0), EstimatorConfig())
    assert not est.cycle().stale
    text = render(est)
    assert (
        "joulecast_estimator_stale 0.0" in text
        and "joulecast_estimator_last_success_timestamp_seconds" in text
    )
    caplog.set_level("WARNING", logger="joulecast.estimator")
    for mode in ("500", "garbage", "slow"):
        tsdb.mode = mode
        snap = est.cycle()
        assert snap.stale
    warnings = [r for r in caplog.records if "serving the last estimates as stale" in r.message]
    assert len(warnings) == 1  # logged once per outage
    text = render(est)
    assert "joulecast_estimator_stale 1.0" in text
    assert 'joulecast_estimator_errors_total{kind="http_status"} 1.0' in text
    assert 'joulecast_estimator_errors_total{kind="bad_response"} 1.0' in text
    assert 'joulecast_estimator_errors_total{kind="timeout"} 1.0' in text
    tsdb.mode = "ok"
    assert not est.cycle().stale
    assert "joulecast_estimator_stale 0.0" in render(est)


def test_non_finite_samples_skip_their_series_and_every_other_job_projects(tsdb):
    tsdb.mode = "nan"
    est = Estimator(client(tsdb.url, retries=0), EstimatorConfig())
    for _ in range(2):
        snap = est.cycle()
        assert not snap.stale and not snap.errors
    good = snap.jobs["good"].methods["step_epoch"].energy_j
    assert good == pytest.approx(50 * 9000.0, rel=0.01)
    assert (
        "step_epoch" not in snap.jobs.get("bad", snap.jobs["good"]).methods
        or "bad" not in snap.jobs
    )
    text = render(est)
    assert 'joulecast_estimator_skipped_samples_total{kind="non_finite"}' in text
    assert snap.skipped_samples["non_finite"] > 0
