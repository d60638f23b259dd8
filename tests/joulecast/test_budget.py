"""Budgets that act: the in-process decision (no decision before the window is stable, a
crossing said once, stop latched, warn follows the projection), and a plain loop against a
real exporter (simulated GPU) stopped by its budget, with the outcome and the event where
the exporter, its API and its metrics show them."""

from __future__ import annotations

import logging
import time

import pytest
from prometheus_client.parser import text_string_to_metric_families

import joulecast
from joulecast.budget import Budget, BudgetWatch
from joulecast.fields import SchemaError
from joulecast.schema import parse_budget_event, parse_finish
from tests.conftest import http, scrape

KWH = 3.6e6


def watch(limit_j: float, action: str = "stop", on: str = "projection", epochs: int = 20):
    said: list[str] = []
    w = BudgetWatch(Budget(limit_j / KWH, action, on), "j", epochs, report=said.append)
    w.start(0.0)
    return w, said


def feed(w: BudgetWatch, per_epoch: list[float]) -> list:
    total, out = 0.0, []
    for i, e in enumerate(per_epoch, start=1):
        total += e
        out.append(w.on_epoch(i, float(i), total))
    return out


def test_no_decision_before_the_window_is_stable_then_a_confirmed_stop_latches():
    w, said = watch(1500.0)
    decisions = feed(w, [100.0] * 8)
    first = next(i for i, d in enumerate(decisions, start=1) if d is not None)
    assert first > 3  # the first epoch never counts, then min_window stable epochs
    assert all(d is None for d in decisions[: first - 1])
    d = decisions[first - 1]
    assert d.over and d.central_j == pytest.approx(2000, rel=0.01) and d.limit_j == 1500
    assert w.stopped_at == first + 1  # said at the second checkpoint over it (confirm=2)
    assert w.over_budget and w.stopped and len(said) == 1 and "training stops" in said[0]
    for i in range(9, 16):  # the epochs turn cheap: a run told to stop stays told
        w.on_epoch(i, float(i), 800.0 + (i - 8) * 5.0)
    assert w.last is not None and not w.last.over
    assert w.over_budget and len(said) == 1


def test_a_budget_above_the_total_never_fires():
    w, said = watch(2600.0)
    feed(w, [100.0] * 20)
    assert not w.over_budget and said == [] and w.crossings == 0


def test_warn_follows_the_projection_both_ways_and_never_stops():
    w, said = watch(2100.0, action="warn")
    feed(w, [100.0] * 6 + [130.0] * 6 + [60.0] * 8)
    assert w.crossings >= 2 and not w.stopped
    assert "over its energy budget" in said[0] and "training goes on" in said[0]
    assert "back under" in said[1]


def test_the_upper_end_decides_sooner_than_the_projection():
    noisy = [100.0, 90, 115, 95, 110, 92, 108, 97, 104, 99, 103, 98] + [100.0] * 8
    at = {}
    for on in ("projection", "upper"):
        w, _ = watch(2050.0, on=on)
        for i, d in enumerate(feed(w, noisy), start=1):
            if d is not None and d.over and on not in at:
                at[on] = i
    assert at["upper"] <= at.get("projection", 99)


def test_a_carbon_budget_is_energy_at_the_grid_intensity():
    b = Budget(kg_co2e=1.0, grid_g_per_kwh=400.0)
    assert b.limit_j == pytest.approx(2.5 * KWH)
    assert Budget(2.0, kg_co2e=1.0, grid_g_per_kwh=400.0).limit_j == pytest.approx(2 * KWH)


@pytest.mark.parametrize(
    "kwargs, says",
    [
        ({}, "needs budget_kwh"),
        ({"kwh": 1, "action": "halt"}, "on_budget"),
        ({"kwh": 1, "decide_on": "lower"}, "budget_on"),
        ({"kwh": -1}, "positive"),
        ({"kwh": float("nan")}, "positive"),
        ({"kg_co2e": 1}, "grid_g_per_kwh"),
    ],
)
def test_a_bad_budget_raises_at_once(kwargs, says):
    with pytest.raises(SchemaError, match=says):
        Budget(**kwargs)


def test_the_budget_event_and_outcome_are_validated():
    assert parse_finish({"outcome": "budget_stopped"}).outcome == "budget_stopped"
    with pytest.raises(SchemaError):
        parse_budget_event({"over": "yes", "projected_joules": 1, "budget_joules": 1})
    with pytest.raises(SchemaError):
        parse_budget_event({"over": True, "projected_joules": -1, "budget_joules": 1})


def _run(exp, job_id: str, kwh: float, action: str, epochs: int = 30) -> tuple[joulecast.Job, int]:
    job = joulecast.job(
        job_id, epochs=epochs, url=exp.url, gpus=[0], budget_kwh=kwh, on_budget=action
    )
    ran = 0
    with job:
        for _ in range(epochs):
            time.sleep(0.15)
            job.epoch_end()
            ran += 1
            if job.over_budget and action == "stop":
                break
    return job, ran


def _metric(exp, name: str, job_id: str) -> float | None:
    for fam in text_string_to_metric_families(scrape(exp.url)):
        for s in fam.samples:
            if s.name == name and s.labels.get("job_id") == job_id:
                return s.value
    return None


def test_a_plain_loop_stops_on_its_budget_and_the_exporter_shows_it(make_exporter, caplog):
    exp = make_exporter(
        "--backend", "simulated", "--simulated.gpus", "1", "--simulated.warmup-seconds", "0.1"
    )  # fmt: skip
    caplog.set_level(logging.WARNING, "joulecast")
    # a first run measures what 30 epochs cost here; budgets are set against it
    free, ran = _run(exp, "measure", 1e6, "warn")
    total = http("GET", exp.url + "/api/v1/jobs/measure")[1]["epoch_end_energy_joules"]
    assert ran == 30 and not free.over_budget

    stopped, ran = _run(exp, "capped", 0.5 * total / KWH, "stop")
    assert ran < 30  # stopped early; the decision came once the window was stable
    body = http("GET", exp.url + "/api/v1/jobs/capped")[1]
    assert body["state"] == "budget_stopped" and body["budget_over"] is True
    assert body["budget_crossings"] == 1 and body["budget_projected_joules"] > 0.5 * total
    assert _metric(exp, "joulecast_job_over_budget", "capped") == 1.0
    assert _metric(exp, "joulecast_job_failed", "capped") == 0.0
    assert any("over its energy budget" in r.getMessage() for r in caplog.records)

    warned, ran = _run(exp, "warned", 0.5 * total / KWH, "warn")
    assert ran == 30 and warned.over_budget  # warn never stops
    assert http("GET", exp.url + "/api/v1/jobs/warned")[1]["state"] == "finished"

    roomy, ran = _run(exp, "roomy", 2.0 * total / KWH, "stop")
    assert ran == 30 and not roomy.over_budget
    assert http("GET", exp.url + "/api/v1/jobs/roomy")[1]["budget_over"] is None
    assert _metric(exp, "joulecast_job_energy_budget_joules", "roomy") == pytest.approx(
        2.0 * total, rel=1e-6
    )
