"""The sizing table of docs/scaling.md and docs/benchmarks.md, from the JSON files that
``bench/estimator_scale.py`` writes. A speed-up cell reads "ratio (the older path's median
cycle / today's median cycle in the same pass)".

    python bench/scale_table.py bench/results/estimator_scale.json bench/results/estimator_scale_100k.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

STORES = {"prometheus": "Prometheus 2.42", "victoriametrics": "VictoriaMetrics 1.79"}
HEADER = (
    "store",
    "running jobs",
    "shards",
    "first cycle",
    "cycle, median / max",
    "queries",
    "series per cycle",
    "memory (RSS)",
    "delay, median / p95",
    "speed-up vs {rev}",
    "vs whole reads",
)


def _ratio(row: dict, path: str, key: str) -> str:
    other = row.get(path)
    if not other or key not in row:
        return ""
    beside = other.get("beside_cycle_median_s", row["cycle_median_s"])
    return f"{row[key]:.1f}x ({other['cycle_median_s']:.2f} / {beside:.2f} s)"


def line(row: dict) -> str:
    cells = (
        STORES.get(row["tsdb"], row["tsdb"]),
        f"{row['jobs']:,}",
        str(row["shards"]),
        f"{row['first_cycle_s']:.2f} s",
        f"{row['cycle_median_s']:.2f} / {row['cycle_max_s']:.2f} s",
        str(row["queries_per_cycle"]),
        f"{row['series_per_cycle']:,}",
        f"{row['rss_mib']:.0f} MiB",
        f"{row['delay_median_s']:.1f} / {row['delay_p95_s']:.1f} s",
        _ratio(row, "baseline", "speedup"),
        _ratio(row, "whole_reads", "speedup_whole_reads"),
    )
    return "| " + " | ".join(cells) + " |"


def table(results: list[dict]) -> str:
    rev = next((r["baseline_rev"] for r in results if r.get("baseline_rev")), "baseline")
    head = [h.format(rev=rev) for h in HEADER]
    out = ["| " + " | ".join(head) + " |", "| " + " | ".join("---" for _ in head) + " |"]
    out += [line(row) for r in results for row in r["rows"]]
    return "\n".join(out)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("results", type=Path, nargs="+", help="JSON files of estimator_scale.py")
    args = ap.parse_args()
    print(table([json.loads(p.read_text()) for p in args.results]))


if __name__ == "__main__":
    main()
