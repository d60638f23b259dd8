"""Generates the provisioned Grafana dashboards in grafana/dashboards/ (run after edits).

    python grafana/generate.py

Each dashboard is a module of grafana/boards/ built with grafana-foundation-sdk, Grafana
Labs' typed builders (the release pinned in pyproject.toml matches the grafana/grafana
image of docker-compose.yml). The test suite checks that the committed JSON equals this
script's output, round-trips it through the SDK's model, checks ids, grid and variables,
and runs every panel's PromQL (variables substituted) against a real Prometheus.
"""

from __future__ import annotations

import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
OUT = HERE / "dashboards"
sys.path.insert(0, str(HERE))

from boards import BOARDS  # noqa: E402
from boards.common import to_json  # noqa: E402


def render() -> dict[str, str]:
    return {name: to_json(build().build()) for name, build in BOARDS.items()}


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    for name, text in render().items():
        (OUT / name).write_text(text)
        print(f"wrote {OUT / name}")


if __name__ == "__main__":
    main()
