"""Parsing Slurm's squeue JSON and a job's comment: pure, no Slurm needed."""

from __future__ import annotations

import json

import pytest

from joulecast.environment import job_id_from_environment
from joulecast.slurmjobs import SlurmFormatError, parse_comment, parse_squeue


def _doc(**job):
    base = {
        "job_id": 12,
        "job_state": "RUNNING",
        "array_job_id": 0,
        "array_task_id": None,
        "user_name": "ada",
        "account": "ml",
        "partition": "gpu",
        "name": "train",
        "gres_detail": ["gpu:a100:3(IDX:0,2-3)", "gpu:1(IDX:5)"],
        "job_resources": {"allocated_nodes": [{"nodename": "n1"}, {"nodename": "n2"}]},
        "start_time": 1000,
        "end_time": 2000,
        "time_limit": 90,
        "tres_per_node": "gres:gpu:3",
        "comment": "",
    }
    base.update(job)
    return json.dumps({"jobs": [base]})


def test_gpus_per_node_labels_and_limits():
    (job,) = parse_squeue(_doc())
    assert job.job_id == "12" and job.running and job.outcome is None
    assert job.gpus_by_node == {"n1": (0, 2, 3), "n2": (5,)}
    assert (
        job.labels.user == "ada" and job.labels.account == "ml" and job.labels.job_name == "train"
    )
    assert job.time_limit_s == 5400 and job.gpus_requested == 3 and job.start_time == 1000


def test_array_tasks_are_named_as_slurm_prints_them():
    (job,) = parse_squeue(_doc(job_id=15, array_job_id=10, array_task_id=5, job_state="TIMEOUT"))
    assert job.job_id == "10_5" and job.outcome == "timeout"
    assert job.labels.array_job_id == "10" and job.labels.array_task_id == "5"


@pytest.mark.parametrize("text", ["", "nope", "[]", '{"jobs": 3}'])
def test_what_is_not_squeue_json_is_an_error(text):
    with pytest.raises(SlurmFormatError):
        parse_squeue(text)


def test_odd_jobs_are_skipped_and_odd_text_cleaned():
    doc = json.loads(_doc(name="t\u00e9st\x07", user_name=7))
    doc["jobs"].append({"job_id": "not-a-number"})
    doc["jobs"].append("junk")
    (job,) = parse_squeue(json.dumps(doc))
    assert job.labels.job_name == "tst" and job.labels.user == ""


def test_the_comment_gives_plan_and_features_or_nothing():
    plan = parse_comment('{"joulecast": {"epochs": 30, "batch_size": 64, "budget_kwh": 2}}')
    assert plan.epochs == 30 and plan.features.batch_size == 64 and plan.features.budget_kwh == 2
    assert parse_comment("free text").epochs is None
    assert parse_comment('{"joulecast": {"epochs": -1, "batch_size": "x"}}').epochs is None
    assert parse_comment('{"joulecast": {"batch_size": "x"}}').features.batch_size is None


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SLURM_JOB_ID": "77"}, "77"),
        ({"SLURM_JOB_ID": "78", "SLURM_ARRAY_JOB_ID": "70", "SLURM_ARRAY_TASK_ID": "8"}, "70_8"),
        ({"SLURM_JOB_ID": "77", "JOULECAST_JOB_ID": "mine"}, "mine"),
        ({"JOULECAST_JOB_ID": "bad id!", "SLURM_JOB_ID": "9"}, "9"),
        ({}, None),
    ],
)
def test_the_job_id_under_slurm(env, expected):
    assert job_id_from_environment(env) == expected
