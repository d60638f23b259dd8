"""The budgets room's metric families: the default budgets in force, for the rules to join."""

from __future__ import annotations

from collections.abc import Iterator

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from joulecast.estimator.budgets.file import KWH, BudgetFile


class BudgetCollector(Collector):
    def __init__(self, budgets: BudgetFile) -> None:
        self._budgets = budgets

    def collect(self) -> Iterator[Metric]:
        b = self._budgets.current()
        accounts = GaugeMetricFamily(
            "joulecast_account_energy_budget_joules",
            "Energy budget of a job of this scheduler account that declares none (J).",
            labels=["account"],
        )
        for name, kwh in sorted(b.accounts.items()):
            accounts.add_metric([name], kwh * KWH)
        yield accounts
        if b.default_kwh is not None:
            yield GaugeMetricFamily(
                "joulecast_default_energy_budget_joules",
                "Energy budget of a job that declares none and whose account has none (J).",
                value=b.default_kwh * KWH,
            )
        yield GaugeMetricFamily(
            "joulecast_budgets_last_reload_successful",
            "1 if the budgets file last read parsed, 0 if the budgets in force are older.",
            value=1.0 if self._budgets.last_reload_ok else 0.0,
        )
