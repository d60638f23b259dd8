"""How well an energy budget stops runs: real per-epoch traces replayed through the
client's budget watch (joulecast/budget.py), budgets at 80, 90, 110 and 120 % of each run's
true total, deciding on the central projection and on the upper end of its interval.

    python bench/budget_replay.py [--traces FILE ...]

A run is stopped at the end of the epoch after the one whose checkpoint crossed the budget
(the exporter's answer to a marker arrives while the next epoch trains; the callbacks
check at epoch ends). For budgets under the total (80, 90 %) a run should stop before it
has used its budget: "late" counts runs stopped after they overran it and runs never
stopped. For budgets above (110, 120 %) it should never stop: "wrong" counts runs stopped.
"At" is the median share of the run done when the decision came. Trace sets: 36 VGG16
runs on an RTX 3090 (GAISSA-UPC/energydl-full, ../shared/data) and 11 runs recorded on an
H200 through the exporter (bench/traces/h200). Writes bench/results/budget.json.

How many checkpoints in a row the projection must be over the budget before a stop
(``Budget.confirm``) is chosen on the first set only, by the energy it costs, in run
totals: every run stopped spends what it used until the stop, and a run stopped wrongly
(budget above its total) must also be run again in full. The second set did not take part
in the choice.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.budget import Budget, BudgetWatch  # noqa: E402
from joulecast.traces import Trace, read_traces  # noqa: E402

DEFAULT = [
    ROOT.parent / "shared" / "data" / "traces" / "eatit_vgg16_rtx3090.csv",
    ROOT / "bench" / "traces" / "h200" / "traces.csv",
]
FRACTIONS = (0.8, 0.9, 1.1, 1.2)
KWH = 3.6e6


def replay(trace: Trace, fraction: float, decide_on: str, confirm: int = 2) -> dict:
    """Where the watch decided and where the run would have stopped."""
    total = trace.total_j
    budget = Budget(fraction * total / KWH, "stop", decide_on, confirm=confirm)
    watch = BudgetWatch(budget, trace.job_id, len(trace.energies), report=lambda _msg: None)
    watch.start(0.0)
    used, decided = 0.0, None
    cumulative = []
    for i, (e, t) in enumerate(zip(trace.energies, trace.end_times, strict=True), start=1):
        used += e
        cumulative.append(used)
        watch.on_epoch(i, t, used)
        if watch.stopped:
            decided = i
            break
    n = len(trace.energies)
    if decided is None:
        return {"stopped": False, "used_j": total, "budget_j": fraction * total, "at": None}
    stop = min(decided + 1, n)
    used_at_stop = sum(trace.energies[:stop])
    return {
        "stopped": stop < n,
        "used_j": used_at_stop,
        "budget_j": fraction * total,
        "total_j": total,
        "at": decided / n,
    }


def cost(traces: list[Trace], decide_on: str, confirm: int) -> float:
    """Energy spent on stopped runs, in run totals (a wrong stop also reruns the run)."""
    out = 0.0
    for f in FRACTIONS:
        for t in traces:
            r = replay(t, f, decide_on, confirm)
            if r["stopped"]:
                out += r["used_j"] / r["total_j"] + (1.0 if f > 1 else 0.0)
            elif f < 1:
                out += 1.0  # never stopped: it overran its budget to the end
    return out


def choose_confirm(traces: list[Trace]) -> int:
    print("choosing confirm (energy spent on stopped runs, in run totals; lower is better)")
    costs = {c: cost(traces, "projection", c) for c in range(1, 6)}
    for c, v in costs.items():
        print(f"  confirm {c}: {v:.1f}")
    return min(costs, key=lambda c: (costs[c], c))


def summarise(results: list[dict], fraction: float) -> dict:
    runs = len(results)
    stopped = [r for r in results if r["stopped"]]
    if fraction < 1:
        late = [r for r in results if not r["stopped"] or r["used_j"] > r["budget_j"]]
        bad = {"late": len(late)}
    else:
        bad = {"wrong": len(stopped)}
    ats = [r["at"] for r in results if r["at"] is not None]
    used = [r["used_j"] / r["budget_j"] for r in stopped]
    return {
        "runs": runs,
        "stopped": len(stopped),
        **bad,
        "median_at": statistics.median(ats) if ats else None,
        "median_used_of_budget": statistics.median(used) if used else None,
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--traces", type=Path, nargs="+", default=DEFAULT)
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "budget.json")
    args = ap.parse_args()
    present = [p for p in args.traces if p.exists()]
    if not present:
        sys.exit("no trace set found")
    confirm = choose_confirm(read_traces(present[0]))
    print(f"chosen: confirm {confirm} (the client's default is {Budget(1.0).confirm})")
    out: dict = {"confirm": confirm, "chosen_on": present[0].name}
    for path in args.traces:
        if not path.exists():
            print(f"skipped (missing): {path}")
            continue
        traces = read_traces(path)
        name = path.parent.name if path.name == "traces.csv" else path.stem
        print(f"\n{name}: {len(traces)} runs of {len(traces[0].energies)} epochs")
        print(
            f"{'decide on':<11} {'budget':>6} {'stopped':>8} {'late/wrong':>11} {'at':>6} {'used':>6}"
        )
        for decide_on in ("projection", "upper"):
            for f in FRACTIONS:
                s = summarise([replay(t, f, decide_on, confirm) for t in traces], f)
                out.setdefault(name, {}).setdefault(decide_on, {})[f"{int(f * 100)}%"] = s
                bad = s.get("late", s.get("wrong"))
                at = f"{100 * s['median_at']:.0f}%" if s["median_at"] is not None else "-"
                used = s["median_used_of_budget"]
                used_s = f"{100 * used:.0f}%" if used is not None else "-"
                kind = "late" if f < 1 else "wrong"
                print(
                    f"{decide_on:<11} {int(f * 100):>5}% {s['stopped']:>4}/{s['runs']:<3} "
                    f"{bad:>5} {kind:<5} {at:>6} {used_s:>6}"
                )
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(out, indent=2) + "\n")
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
