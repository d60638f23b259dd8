"""Default budgets from --budgets.file: what parses, what the estimator serves, and a file
edited while it runs (taken when it parses, the budgets in force kept when it does not)."""

from __future__ import annotations

import os
import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from joulecast.estimator.budgets.file import BudgetError, load_budgets, parse_budgets
from joulecast.estimator.cli import build, build_parser, main
from tests.estimator.prometheus.test_client import FakeTSDB


def test_a_budgets_file_parses_into_kwh_per_account_and_a_default():
    b = parse_budgets({"default_kwh": 50, "accounts": {"physics": 20, "ml-research": 2.5}})
    assert b.default_kwh == 50 and b.accounts == {"physics": 20.0, "ml-research": 2.5}
    assert parse_budgets(None).accounts == {} and parse_budgets({}).default_kwh is None


@pytest.mark.parametrize(
    "raw, says",
    [
        ([1], "mapping"),
        ({"default": 5}, "unknown key"),
        ({"default_kwh": 0}, "default_kwh"),
        ({"default_kwh": float("nan")}, "default_kwh"),
        ({"default_kwh": True}, "default_kwh"),
        ({"default_kwh": "5"}, "default_kwh"),
        ({"accounts": [1]}, "accounts"),
        ({"accounts": {"a": -1}}, "accounts.a"),
        ({"accounts": {"a": 1e10}}, "accounts.a"),
        ({"accounts": {"": 1}}, "account name"),
        ({"accounts": {"a\nb": 1}}, "account name"),
        ({"accounts": {7: 1}}, "account name"),
    ],
)
def test_a_bad_budget_is_refused_with_the_key_named(raw, says):
    with pytest.raises(BudgetError, match=says):
        parse_budgets(raw)


def test_a_file_that_is_not_yaml_is_refused_with_its_path(tmp_path):
    path = tmp_path / "budgets.yml"
    path.write_text("accounts: {a: [")
    with pytest.raises(BudgetError, match=str(path)):
        load_budgets(path)


def _families(url: str) -> dict:
    with urllib.request.urlopen(url + "/metrics", timeout=5) as resp:
        text = resp.read().decode()
    return {f.name: f for f in text_string_to_metric_families(text)}


def _budgets(url: str) -> tuple[dict, float | None, float]:
    fams = _families(url)
    accounts = {
        s.labels["account"]: s.value for s in fams["joulecast_account_energy_budget_joules"].samples
    }
    default = fams.get("joulecast_default_energy_budget_joules")
    ok = fams["joulecast_budgets_last_reload_successful"].samples[0].value
    return accounts, default.samples[0].value if default else None, ok


def test_the_estimator_serves_the_budgets_and_follows_edits_of_the_file(tmp_path):
    path = tmp_path / "budgets.yml"
    path.write_text("default_kwh: 50\naccounts:\n  physics: 20\n")
    tsdb = FakeTSDB()
    args = build_parser().parse_args(
        ["--prometheus.url", tsdb.url, "--web.listen-address", "127.0.0.1:0",
         "--budgets.file", str(path)]
    )  # fmt: skip
    svc = build(args)
    svc.server.serve_in_thread()
    try:
        assert _budgets(svc.url) == ({"physics": 20 * 3.6e6}, 50 * 3.6e6, 1.0)
        path.write_text("accounts:\n  physics: 10\n  bio: 1\n")
        os.utime(path, ns=(1, 1))  # a new stamp even within the clock's resolution
        assert _budgets(svc.url) == ({"physics": 3.6e7, "bio": 3.6e6}, None, 1.0)
        path.write_text("accounts:\n  physics: -3\n")
        os.utime(path, ns=(2, 2))
        assert _budgets(svc.url) == ({"physics": 3.6e7, "bio": 3.6e6}, None, 0.0)  # kept
    finally:
        svc.server.shutdown()
        svc.server.server_close()
        tsdb.close()


def test_a_bad_budgets_file_at_start_up_stops_the_estimator_with_a_message(tmp_path, capsys):
    path = tmp_path / "budgets.yml"
    path.write_text("accounts: {physics: lots}\n")
    assert main(["--budgets.file", str(path), "--web.listen-address", "127.0.0.1:0"]) == 1
    assert "accounts.physics" in capsys.readouterr().err
