"""Helpers to run every dashboard panel's PromQL against a real TSDB."""

from __future__ import annotations

import json
from pathlib import Path

from tests.stack import prom_query, prom_query_range

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


def panel_queries(variables: dict[str, str]) -> list[tuple[str, str, str, str]]:
    """(dashboard, panel title, panel type, expr with variables substituted)."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in variables.items():
                    expr = expr.replace(f"${name}", value)
                out.append((path.name, panel["title"], panel["type"], expr))
    return out


def check_all(url: str, start: float, end: float, variables: dict[str, str]) -> list[str]:
    """Every query must parse and return data; returns the failures."""
    failures = []
    for board, title, kind, expr in panel_queries({"__rate_interval": "1m", **variables}):
        assert "$" not in expr, (board, title, expr)
        try:
            if kind in ("table", "stat"):
                result = prom_query(url, expr)
            else:
                result = prom_query_range(url, expr, start, end, 2.0)
        except Exception as err:  # a parse error is a failure to report, with its panel
            failures.append(f"{board} / {title}: {expr}: {err}")
            continue
        if not result:
            failures.append(f"{board} / {title}: no data: {expr}")
    return failures
