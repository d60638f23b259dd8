"""The provisioned dashboards are what grafana/generate.py makes, and well formed."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def load_generator():
    spec = importlib.util.spec_from_file_location(
        "grafana_generate", ROOT / "grafana" / "generate.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_committed_dashboards_match_the_generator():
    gen = load_generator()
    for name, text in gen.render().items():
        assert (ROOT / "grafana" / "dashboards" / name).read_text() == text, (
            f"run python grafana/generate.py ({name})"
        )


def test_dashboards_are_well_formed():
    uids = set()
    for path in (ROOT / "grafana" / "dashboards").glob("*.json"):
        board = json.loads(path.read_text())
        assert board["uid"] not in uids
        uids.add(board["uid"])
        ids = [p["id"] for p in board["panels"]]
        assert len(ids) == len(set(ids))
        for p in board["panels"]:
            g = p["gridPos"]
            assert g["x"] >= 0 and g["x"] + g["w"] <= 24
            for t in p.get("targets", []):
                assert t["expr"].count("(") == t["expr"].count(")"), t["expr"]
    assert {"joulecast-node", "joulecast-jobs", "joulecast-queue", "joulecast-estimator"} <= uids
