"""Renders a provisioned dashboard to a PNG from the same queries Grafana would run.

    python grafana/render.py --prometheus.url http://127.0.0.1:9090 --out docs/img \\
        --board jobs.json --var job_id=demo-1 --from 1700000000 --to 1700000600

Grafana cannot run everywhere joulecast is developed, so the pictures in the docs come from
here: each panel's PromQL (dashboard variables substituted, ``$__rate_interval`` 1m,
``$__range`` the window) is sent to Prometheus as Grafana sends it (instant for tables,
over the range otherwise) and drawn with matplotlib at its place on the 24-column grid:
time series as lines, stats as a number, bar gauges as bars, tables as their first rows.
It is a picture of the data, not of Grafana's styling. ``scripts/demo.py --dashboards DIR``
renders every dashboard at the end of the demo.
"""

from __future__ import annotations

import argparse
import json
import re
import time
import urllib.parse
import urllib.request
from collections.abc import Mapping
from pathlib import Path

DASHBOARDS = Path(__file__).resolve().parent / "dashboards"
UNITS = {
    "watt": (1, "W"),
    "kwatth": (1, "kWh"),
    "joule": (1, "J"),
    "percentunit": (100, "%"),
    "s": (1, "s"),
    "bytes": (1, "B"),
    "celsius": (1, "°C"),
    "hertz": (1, "Hz"),
    "massg": (1, "g"),
    "x": (1, "x"),
    "ops": (1, "/s"),
}


def query(url: str, expr: str, instant: bool, start: float, end: float) -> list[dict]:
    params = {"query": expr}
    if instant:
        params["time"] = str(end)
        path = "/api/v1/query"
    else:
        step = max((end - start) / 200, 1.0)
        params.update(start=str(start), end=str(end), step=str(step))
        path = "/api/v1/query_range"
    data = urllib.parse.urlencode(params).encode()
    with urllib.request.urlopen(url + path, data=data, timeout=30) as resp:
        body = json.loads(resp.read())
    return body.get("data", {}).get("result", []) if body.get("status") == "success" else []


def substitute(expr: str, variables: Mapping[str, str], start: float, end: float) -> str:
    values = {"__rate_interval": "1m", "__range": f"{max(int(end - start), 60)}s", **variables}
    for name in sorted(values, key=len, reverse=True):  # $job_id before $job
        expr = expr.replace(f"${name}", values[name])
    return re.sub(r"\$\w+", ".*", expr)  # a variable not given: All


def legend(fmt: str, labels: Mapping[str, str]) -> str:
    text = re.sub(r"\{\{\s*(\w+)\s*\}\}", lambda m: labels.get(m.group(1), ""), fmt or "")
    return text.strip() or ",".join(f"{k}={v}" for k, v in labels.items() if k != "__name__")


def fmt_value(value: float, unit: str) -> str:
    if unit == "dateTimeFromNow":
        if value <= 0:
            return "-"
        delta = value / 1000 - time.time()
        return f"in {delta:.0f} s" if delta >= 0 else f"{-delta:.0f} s ago"
    scale, suffix = UNITS.get(unit, (1, ""))
    v = value * scale
    if suffix in ("J", "W", "B", "Hz") and abs(v) >= 1000:
        for prefix in ("k", "M", "G", "T"):
            v /= 1000
            if abs(v) < 1000:
                return f"{v:.3g} {prefix}{suffix}"
    return f"{v:.3g} {suffix}".strip()


def draw_panel(ax, panel: dict, results: list[tuple[str, list[dict]]], start: float) -> None:
    unit = panel.get("fieldConfig", {}).get("defaults", {}).get("unit", "short")
    kind = panel["type"]
    ax.set_title(panel["title"], fontsize=8, loc="left")
    ax.tick_params(labelsize=6)
    series = [(legend(fmt, r["metric"]), r) for fmt, rs in results for r in rs]
    if kind == "timeseries":
        scale = UNITS.get(unit, (1, ""))[0]
        for name, r in series[:12]:
            pts = [(float(t), float(v)) for t, v in r.get("values", [])]
            if pts:
                minutes = [(t - start) / 60 for t, _ in pts]
                ax.plot(minutes, [v * scale for _, v in pts], lw=1, label=name[:40])
        ax.set_xlabel("minutes", fontsize=6)
        ax.set_ylabel(UNITS.get(unit, (1, ""))[1], fontsize=6)
        if series:
            ax.legend(fontsize=5, loc="best")
        return
    ax.set_xticks([])
    ax.set_yticks([])
    last = [(name, _last(r)) for name, r in series]
    if kind == "stat":
        text = "\n".join(fmt_value(v, unit) for _, v in last[:3]) or "No data"
        ax.text(0.5, 0.45, text, ha="center", va="center", fontsize=14, transform=ax.transAxes)
    elif kind == "bargauge":
        names, values = [n[:30] for n, _ in last[:10]], [v for _, v in last[:10]]
        ax.barh(range(len(values)), values)
        ax.set_yticks(range(len(values)), names, fontsize=5)
        ax.invert_yaxis()
    else:  # table: the first rows, labels then value
        rows = [f"{name[:90]}  {v:.4g}" for name, v in last[:8]] or ["No data"]
        ax.text(
            0.01,
            0.95,
            "\n".join(rows),
            va="top",
            fontsize=5,
            family="monospace",
            transform=ax.transAxes,
        )


def _last(r: dict) -> float:
    if "value" in r:
        return float(r["value"][1])
    values = r.get("values") or [[0, "nan"]]
    return float(values[-1][1])


def render(
    board: dict, url: str, start: float, end: float, variables: Mapping[str, str], out: Path
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = board["panels"]
    rows = max(p["gridPos"]["y"] + p["gridPos"]["h"] for p in panels)
    fig = plt.figure(figsize=(16, rows * 0.5))
    grid = fig.add_gridspec(rows, 24, hspace=3.0, wspace=0.8, top=0.97, bottom=0.02)
    for p in panels:
        g = p["gridPos"]
        ax = fig.add_subplot(grid[g["y"] : g["y"] + g["h"], g["x"] : g["x"] + g["w"]])
        if p["type"] == "row":
            ax.axis("off")
            ax.text(0, 0.5, p["title"], fontsize=10, weight="bold", va="center")
            continue
        results = [
            (
                t.get("legendFormat", ""),
                query(
                    url,
                    substitute(t["expr"], variables, start, end),
                    bool(t.get("instant")),
                    start,
                    end,
                ),
            )
            for t in p.get("targets", [])
        ]
        draw_panel(ax, p, results, start)
    fig.suptitle(
        f"{board['title']} (rendered from Prometheus by grafana/render.py)", fontsize=11, y=0.995
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=90, bbox_inches="tight")
    plt.close(fig)
    return out


def render_all(
    url: str,
    start: float,
    end: float,
    variables: Mapping[str, str],
    out_dir: Path,
    boards: list[str] | None = None,
) -> list[Path]:
    done = []
    for path in sorted(DASHBOARDS.glob("*.json")):
        if boards is None or path.name in boards:
            board = json.loads(path.read_text())
            done.append(
                render(board, url, start, end, variables, out_dir / f"dashboard-{path.stem}.png")
            )
    return done


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--prometheus.url", dest="url", required=True)
    ap.add_argument("--out", type=Path, default=Path("docs/img"))
    ap.add_argument("--board", action="append", help="dashboard file (default: all)")
    ap.add_argument("--var", action="append", default=[], help="NAME=VALUE of a dashboard variable")
    ap.add_argument("--from", dest="start", type=float, help="unix time (default: an hour ago)")
    ap.add_argument("--to", dest="end", type=float, help="unix time (default: now)")
    args = ap.parse_args()
    end = args.end or time.time()
    start = args.start or end - 3600
    variables = dict(v.split("=", 1) for v in args.var)
    for path in render_all(args.url, start, end, variables, args.out, args.board):
        print(f"wrote {path}")


if __name__ == "__main__":
    main()
