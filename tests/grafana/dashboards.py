"""Helpers to run every dashboard panel's PromQL against a real TSDB."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from types import ModuleType

from tests.stack import prom_query, prom_query_range

DASHBOARDS = Path(__file__).resolve().parents[2] / "grafana" / "dashboards"


def panel_queries(
    variables: dict[str, str], boards: tuple[str, ...] | None = None
) -> list[tuple[str, str, bool, str]]:
    """(dashboard, panel title, instant or range query, expr with variables substituted)."""
    out = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        if boards is not None and path.name not in boards:
            continue
        board = json.loads(path.read_text())
        for panel in board["panels"]:
            for target in panel.get("targets", []):
                expr = target["expr"]
                for name, value in variables.items():
                    expr = expr.replace(f"${name}", value)
                out.append((path.name, panel["title"], bool(target.get("instant")), expr))
    return out


def check_all(
    url: str,
    start: float,
    end: float,
    variables: dict[str, str],
    boards: tuple[str, ...] | None = None,
) -> list[str]:
    """Every query of ``boards`` (default: all) must parse and return data, asked the way
    Grafana asks it (instant or over the range); returns the failures. ``$__range`` is an hour."""
    failures = []
    builtins = {"__rate_interval": "1m", "__range": "1h"}
    for board, title, instant, expr in panel_queries({**builtins, **variables}, boards):
        assert "$" not in expr, (board, title, expr)
        try:
            if instant:
                result = prom_query(url, expr)
            else:
                result = prom_query_range(url, expr, start, end, 2.0)
        except Exception as err:  # a parse error is a failure to report, with its panel
            failures.append(f"{board} / {title}: {expr}: {err}")
            continue
        if not result:
            failures.append(f"{board} / {title}: no data: {expr}")
    return failures


def load_renderer() -> ModuleType:
    """grafana/render.py, which is a script, not an installed module."""
    spec = importlib.util.spec_from_file_location("grafana_render", DASHBOARDS.parent / "render.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod
