"""The provisioned dashboards are what grafana/generate.py builds with grafana-foundation-sdk,
and what can be checked without a Grafana holds: the SDK's own model reads them back
unchanged, ids, refIds and uids are unique, panels do not overlap on the grid, every query
goes to the ``${datasource}`` variable, and counters are read through rate or increase.
(Every panel's query runs against a real Prometheus in the integration and Slurm tests.)"""

from __future__ import annotations

import importlib.util
import json
import re
from pathlib import Path

import pytest
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import dashboard as dm

ROOT = Path(__file__).resolve().parents[2]
DASHBOARDS = ROOT / "grafana" / "dashboards"
COUNTER = re.compile(r"\b(joulecast_[a-z0-9_]+_total)\b")
#: counters read whole on purpose, by panel title
WHOLE_COUNTERS = {
    # a job's counter is its energy since it started (resumed across exporter restarts)
    "Energy so far",
}


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "grafana_generate", ROOT / "grafana" / "generate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def boards() -> dict[str, dict]:
    return {p.name: json.loads(p.read_text()) for p in sorted(DASHBOARDS.glob("*.json"))}


def panels(board: dict) -> list[dict]:
    out = []
    for p in board["panels"]:
        out.append(p)
        out.extend(p.get("panels", []))  # a collapsed row holds its panels
    return out


def test_committed_dashboards_match_the_generator():
    rendered = load_generator().render()
    assert set(rendered) == {p.name for p in DASHBOARDS.glob("*.json")}
    for name, text in rendered.items():
        assert (DASHBOARDS / name).read_text() == text, f"run python grafana/generate.py ({name})"


@pytest.mark.parametrize("name", sorted(p.name for p in DASHBOARDS.glob("*.json")))
def test_the_sdk_model_reads_each_dashboard_back_unchanged(name):
    text = (DASHBOARDS / name).read_text()
    model = dm.Dashboard.from_json(json.loads(text))
    assert JSONEncoder(sort_keys=True, indent=2).encode(model) + "\n" == text
    assert model.schema_version == dm.Dashboard().schema_version  # the pinned Grafana's


def test_ids_refids_and_uids_are_unique():
    uids = [b["uid"] for b in boards().values()]
    assert len(uids) == len(set(uids))
    for name, board in boards().items():
        ids = [p["id"] for p in panels(board)]
        assert len(ids) == len(set(ids)) and all(i > 0 for i in ids), name
        for p in panels(board):
            refs = [t["refId"] for t in p.get("targets", [])]
            assert len(refs) == len(set(refs)), (name, p["title"])


def _cells(pos: dict) -> set[tuple[int, int]]:
    return {
        (x, y)
        for x in range(pos["x"], pos["x"] + pos["w"])
        for y in range(pos["y"], pos["y"] + pos["h"])
    }


def test_panels_stay_on_the_grid_and_never_overlap():
    for name, board in boards().items():
        taken: dict[tuple[int, int], str] = {}
        for p in board["panels"]:
            pos = p["gridPos"]
            assert pos["w"] > 0 and pos["h"] > 0 and pos["x"] >= 0 and pos["y"] >= 0
            assert pos["x"] + pos["w"] <= 24, (name, p["title"])
            for cell in _cells(pos):
                assert cell not in taken, f"{name}: {p['title']} overlaps {taken[cell]}"
                taken[cell] = p["title"]


def test_every_query_goes_to_the_datasource_variable():
    for name, board in boards().items():
        text = json.dumps(board)
        assert "${DS_" not in text, name  # an import placeholder: provisioning leaves it as is
        variables = {v["name"]: v for v in board["templating"]["list"]}
        ds = variables["datasource"]
        assert (ds["type"], ds["query"]) == ("datasource", "prometheus")
        for v in variables.values():
            if v["type"] == "query":
                assert v["datasource"]["uid"] == "${datasource}", (name, v["name"])
        for p in panels(board):
            if p["type"] == "row":
                continue
            assert p["datasource"]["uid"] == "${datasource}", (name, p["title"])
            for t in p["targets"]:
                assert t["datasource"]["uid"] == "${datasource}", (name, p["title"])
                used = set(re.findall(r"\$(\w+)", t["expr"])) - {"__rate_interval", "__range"}
                assert used <= set(variables), (name, p["title"], used)


def enclosing_function(expr: str, at: int) -> str:
    """The name of the innermost function call around position ``at`` of ``expr``."""
    depth = 0
    for i in range(at - 1, -1, -1):
        c = expr[i]
        if c == ")":
            depth += 1
        elif c == "(":
            if depth == 0:
                m = re.search(r"([a-z_]+)\s*$", expr[:i])
                return m.group(1) if m else ""
            depth -= 1
    return ""


def test_enclosing_function_finds_the_call_around_a_counter():
    expr = "sum by (a) (rate(x_total[1m])) + increase(y_total[5m]) + sum(z_total)"
    assert enclosing_function(expr, expr.index("x_total")) == "rate"
    assert enclosing_function(expr, expr.index("y_total")) == "increase"
    assert enclosing_function(expr, expr.index("z_total")) == "sum"


def test_counters_are_read_with_rate_or_increase():
    for name, board in boards().items():
        for p in panels(board):
            if p["title"] in WHOLE_COUNTERS:
                continue
            for t in p.get("targets", []):
                for m in COUNTER.finditer(t["expr"]):
                    fn = enclosing_function(t["expr"], m.start())
                    assert fn in ("rate", "irate", "increase"), (name, p["title"], m.group(1), fn)


def test_every_dashboard_is_provisioned():
    assert {b["uid"] for b in boards().values()} >= {
        "joulecast-node",
        "joulecast-jobs",
        "joulecast-queue",
        "joulecast-estimator",
    }
