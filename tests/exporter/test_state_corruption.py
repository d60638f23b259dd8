"""A spoiled state file and spoiled rows: the exporter starts, names what it set aside,
counts it, keeps every other job; and the API's bounds on ids, GPU lists and epoch pages."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import http, scrape


def rejected(url: str) -> dict[str, float]:
    families = {f.name: f for f in text_string_to_metric_families(scrape(url))}
    return {s.labels["kind"]: s.value for s in families["joulecast_files_rejected"].samples}


def with_two_jobs(make_exporter, state: Path):
    exp = make_exporter("--backend", "simulated", state_dir=state)
    for job in ("good", "bad"):
        assert (
            http("POST", exp.url + "/api/v1/jobs", {"job_id": job, "epochs_planned": 9})[0] == 201
        )
        for epoch in (1, 2, 3):
            marker = {"epoch": epoch, "metrics": {"loss": 1.0 / epoch}}
            assert http("POST", f"{exp.url}/api/v1/jobs/{job}/epochs", marker)[0] == 200
    exp.stop()


@pytest.mark.parametrize("offset", [0, 4096], ids=["header", "page-2"])
def test_a_smashed_database_is_set_aside_and_the_exporter_starts_empty(
    make_exporter, tmp_path, offset, caplog
):
    state = tmp_path / "state"
    with_two_jobs(make_exporter, state)
    db = state / "jobs.sqlite"
    with db.open("r+b") as fh:
        fh.seek(offset)
        fh.write(b"\xde\xad\xbe\xef" * 256)
    for side in state.glob("jobs.sqlite-*"):
        side.unlink()  # what a checkpointed, closed database leaves
    exp = make_exporter("--backend", "simulated", state_dir=state)
    assert rejected(exp.url)["state"] == 1
    assert list(state.glob("jobs.sqlite.rejected-*"))
    assert "jobs.sqlite" in caplog.text and "set aside" in caplog.text
    assert http("GET", exp.url + "/api/v1/jobs/good")[0] == 404
    assert http("POST", exp.url + "/api/v1/jobs", {"job_id": "next", "epochs_planned": 2})[0] == 201


@pytest.mark.parametrize(
    ("column", "value"),
    [("energy", "'plenty'"), ("spec", "'{'"), ("gpus", "'[\"x\"]'"), ("created_at", "'yesterday'"),
     ("epochs_completed", "-4"), ("metrics", "'[]'")],
)  # fmt: skip
def test_a_job_row_that_does_not_decode_is_moved_aside_and_the_others_load(
    make_exporter, tmp_path, column, value, caplog
):
    state = tmp_path / "state"
    with_two_jobs(make_exporter, state)
    with sqlite3.connect(state / "jobs.sqlite") as db:
        try:
            db.execute(f"UPDATE jobs SET {column}={value} WHERE job_id='bad'")
        except sqlite3.IntegrityError:
            pytest.skip(f"{column} cannot hold {value}")
    exp = make_exporter("--backend", "simulated", state_dir=state)
    assert http("GET", exp.url + "/api/v1/jobs/good")[1]["epochs_completed"] == 3
    assert http("GET", exp.url + "/api/v1/jobs/bad")[0] == 404
    assert rejected(exp.url)["state_row"] == 1
    assert "'bad'" in caplog.text and column.split("_")[0] in caplog.text
    with sqlite3.connect(state / "jobs.sqlite") as db:
        ((job_id, reason, _, epochs, _),) = db.execute("SELECT * FROM rejected").fetchall()
    assert job_id == "bad" and reason and "loss" in epochs  # nothing is lost
    # the id is free again, without the old epochs in the way
    assert http("POST", exp.url + "/api/v1/jobs", {"job_id": "bad", "epochs_planned": 2})[0] == 201
    assert http("POST", exp.url + "/api/v1/jobs/bad/epochs", {"epoch": 1})[0] == 200


def test_a_spoiled_epoch_row_neither_breaks_the_job_api_nor_a_repost(make_exporter, tmp_path):
    state = tmp_path / "state"
    with_two_jobs(make_exporter, state)
    with sqlite3.connect(state / "jobs.sqlite") as db:
        db.execute("UPDATE epochs SET metrics='{' WHERE job_id='good' AND epoch=1")
        db.execute("UPDATE epochs SET energy='x' WHERE job_id='good' AND epoch=2")
    exp = make_exporter("--backend", "simulated", state_dir=state)
    status, body = http("GET", exp.url + "/api/v1/jobs/good")
    assert status == 200 and [e["epoch"] for e in body["epochs"]] == [3]
    status, _ = http(
        "POST", exp.url + "/api/v1/jobs/good/epochs", {"epoch": 1, "metrics": {"loss": 1.0}}
    )
    assert 400 <= status < 500
    assert http("POST", exp.url + "/api/v1/jobs/good/epochs", {"epoch": 4})[0] == 200


@pytest.fixture
def exp(make_exporter):
    return make_exporter("--backend", "simulated")


@pytest.mark.parametrize(
    "spec",
    [
        {"job_id": "g", "epochs_planned": 3, "gpus": "9" * 5000},
        {"job_id": "g", "epochs_planned": 3, "gpus": ["9" * 5000]},
        {"job_id": "g", "epochs_planned": 3, "gpus": ["²"]},
        {"job_id": "nl-job\n", "epochs_planned": 3},
        {"job_id": "g", "epochs_planned": 3, "features": {"model_name": "resnet\n"}},
        {"job_id": "g", "epochs_planned": 3, "gpus": ["GPU-abc\n"]},
        {"job_id": "g", "epochs_planned": 100_001},
    ],
)
def test_odd_ids_gpu_lists_and_plans_are_400(exp, spec):
    status, body = http("POST", exp.url + "/api/v1/jobs", spec)
    assert status == 400 and body["error"]


def test_epoch_lists_come_in_pages(exp):
    assert (
        http("POST", exp.url + "/api/v1/jobs", {"job_id": "long", "epochs_planned": 40})[0] == 201
    )
    for epoch in range(1, 31):
        assert http("POST", exp.url + "/api/v1/jobs/long/epochs", {"epoch": epoch})[0] == 200
    status, body = http("GET", exp.url + "/api/v1/jobs/long?epochs.offset=10&epochs.limit=10")
    assert status == 200 and [e["epoch"] for e in body["epochs"]] == list(range(11, 21))
    assert body["epochs_page"] == {"offset": 10, "limit": 10, "total": 30, "next_offset": 20}
    last = http("GET", exp.url + "/api/v1/jobs/long?epochs.offset=20")[1]
    assert len(last["epochs"]) == 10 and last["epochs_page"]["next_offset"] is None
    assert len(http("GET", exp.url + "/api/v1/jobs/long")[1]["epochs"]) == 30
    for query in (
        "epochs.limit=10001",
        "epochs.limit=-1",
        "epochs.offset=x",
        "page=2",
        "epochs.limit=1&epochs.limit=2",
        "epochs.offset=" + "9" * 40,
    ):
        status, body = http("GET", exp.url + "/api/v1/jobs/long?" + query)
        assert status == 400 and body["error"], query
