"""STEP accuracy on real per-epoch traces, side by side with the paper's configuration,
carbontracker's first-epoch extrapolation and the TDP baselines.

    python bench/step_bench.py [--traces ../shared/data/traces/eatit_vgg16_rtx3090.csv]

Trace set: 36 VGG16 runs on an RTX 3090 (GAISSA-UPC/energydl-full; see the data README).
Baselines need a TDP and usage the traces do not carry: TDP 350 W (RTX 3090), usage 1.0,
no memory term; they use the duration projected from the epochs seen so far.
Prints tables and writes bench/results/step.json.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from joulecast.estimator.step.baselines import BaselineConfig, green_algorithms, mlco2  # noqa: E402
from joulecast.step import StepConfig  # noqa: E402
from joulecast.traces import Trace, read_traces, score  # noqa: E402

DEFAULT = ROOT.parent / "shared" / "data" / "traces" / "eatit_vgg16_rtx3090.csv"
SIMULATED = ROOT / "bench" / "traces" / "simulated_load_model.csv"  # SIMULATED (see its card)
H200 = ROOT / "bench" / "traces" / "h200" / "traces.csv"  # real, recorded through the exporter
TDP_W = 350.0


def baseline_scores(traces: list[Trace], at: int) -> dict[str, dict]:
    out: dict[str, list[float]] = {"mlco2": [], "green_algorithms": []}
    for tr in traces:
        if len(tr.energies) <= at:
            continue
        duration = tr.end_times[at - 1] / at * len(tr.energies)
        truth = tr.total_j
        out["mlco2"].append((mlco2(TDP_W, duration) - truth) / truth)
        out["green_algorithms"].append(
            (green_algorithms(TDP_W, duration, 1.0, 0.0, BaselineConfig()) - truth) / truth
        )
    return {
        m: {
            "jobs": len(v),
            "mape": 100 * sum(abs(x) for x in v) / len(v),
            "max_ape": 100 * max(abs(x) for x in v),
        }
        for m, v in out.items()
        if v
    }


def main() -> None:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--traces", type=Path, nargs="+", default=[DEFAULT, H200, SIMULATED])
    ap.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "step.json")
    args = ap.parse_args()
    result_all = {}
    for path in args.traces:
        kind = "SIMULATED" if "simulated" in path.name else "real"
        print(f"\n######## {path.name} ({kind})")
        result_all[path.name] = run_file(path)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result_all, indent=2, default=str))
    print(f"\nwrote {args.out}")


def run_file(path: Path) -> dict:
    traces = read_traces(path)
    configs = {"joulecast (auto)": StepConfig(), "paper (10, w=5)": StepConfig.paper()}
    result: dict = {
        "traces": path.name,
        "jobs": len(traces),
        "at_epoch": {},
        "window": {},
    }
    print(
        f"{len(traces)} runs from {path.name}; mean absolute percentage error of the projected total\n"
    )
    print(
        f"{'at epoch':>8}  {'configuration':<18} {'method':<17} {'runs':>4} {'MAPE %':>7} {'max %':>7} {'RMSE kJ':>8} {'90% cov.':>8} {'calibr.':>8} {'+/- %':>6}"
    )
    for at in (10, 15, 20, 30):
        rows = {}
        for name, cfg in configs.items():
            scores, _ = score(traces, at, cfg)
            for m, s in sorted(scores.items()):
                if m == "first_epoch" and name != "joulecast (auto)":
                    continue
                label = "carbontracker (1st epoch)" if m == "first_epoch" else name
                rows[(label, m)] = {
                    "jobs": s.jobs,
                    "mape": s.mape,
                    "max_ape": s.max_ape,
                    "rmse_kj": s.rmse_j / 1000,
                    "coverage": s.coverage,
                    "calibrated_coverage": s.calibrated_coverage,
                    "calibrated_half_width": s.calibrated_half_width,
                }
        for m, b in baseline_scores(traces, at).items():
            rows[("TDP baseline", m)] = {
                **b,
                "rmse_kj": None,
                "coverage": None,
                "calibrated_coverage": None,
                "calibrated_half_width": None,
            }
        for (label, m), r in rows.items():
            cov = f"{r['coverage']:.2f}" if r["coverage"] is not None else "-"
            cal = f"{r['calibrated_coverage']:.2f}" if r["calibrated_coverage"] is not None else "-"
            rmse = f"{r['rmse_kj']:.2f}" if r["rmse_kj"] is not None else "-"
            hw = r["calibrated_half_width"]
            width = f"{100 * hw:.1f}" if hw is not None else "-"
            print(
                f"{at:>8}  {label[:18]:<18} {m:<17} {r['jobs']:>4} {r['mape']:>7.2f} {r['max_ape']:>7.1f} {rmse:>8} {cov:>8} {cal:>8} {width:>6}"
            )
        print()
        result["at_epoch"][at] = {f"{label}/{m}": r for (label, m), r in rows.items()}
    print("window size (stabilizing epoch 10 fixed, projecting at 10 + w):")
    for w in (1, 2, 3, 5, 8, 10, 15):
        cfg = StepConfig(stabilizing_epoch=10, window=w, keep_measured=False, min_window=1)
        scores, _ = score(traces, 10 + w, cfg)
        s = scores.get("step_epoch")
        p = scores.get("step_power")
        if s and p and not math.isnan(s.mape):
            print(f"  w={w:>2}: step_power {p.mape:5.2f} %   step_epoch {s.mape:5.2f} %")
            result["window"][w] = {"step_power": p.mape, "step_epoch": s.mape}
    return result


if __name__ == "__main__":
    main()
