"""``joulecast``: offline tools.

joulecast step evaluate TRACES.csv --at-epoch 15 [--json] [--paper]
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import asdict
from pathlib import Path

from joulecast import __version__
from joulecast.step import StepConfig
from joulecast.traces import TraceError, read_traces, score


def positive_int(value: str) -> int:
    try:
        n = int(value)
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{value!r} is not an integer") from err
    if n < 1:
        raise argparse.ArgumentTypeError(f"{value!r} must be >= 1")
    return n


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="joulecast", description="joulecast offline tools")
    p.add_argument("--version", action="version", version=f"joulecast {__version__}")
    sub = p.add_subparsers(dest="command", required=True)
    step = sub.add_parser("step", help="STEP projections").add_subparsers(
        dest="step_command", required=True
    )
    add_step_evaluate_arguments(
        step.add_parser("evaluate", help="score STEP on per-epoch traces (MAPE, RMSE per method)")
    )
    return p


def add_step_evaluate_arguments(ev: argparse.ArgumentParser) -> None:
    ev.add_argument(
        "traces", type=Path, help="CSV: job_id, epoch, epoch_end_time_s, epoch_energy_j"
    )
    ev.add_argument(
        "--at-epoch",
        type=positive_int,
        default=15,
        help="project when this epoch ends (default 15)",
    )
    ev.add_argument(
        "--paper", action="store_true", help="the seed study's configuration (epoch 10, window 5)"
    )
    ev.add_argument(
        "--stabilizing-epoch",
        type=int,
        default=None,
        help="fix the stabilizing epoch (default: detect)",
    )
    ev.add_argument(
        "--window",
        type=positive_int,
        default=None,
        help="fix the window (default: all stable epochs)",
    )
    ev.add_argument("--json", action="store_true", help="print JSON")


def cmd_step_evaluate(args: argparse.Namespace) -> int:
    if args.paper:
        cfg = StepConfig.paper()
    else:
        cfg = StepConfig(stabilizing_epoch=args.stabilizing_epoch, window=args.window)
    try:
        traces = read_traces(args.traces)
    except TraceError as err:
        print(f"joulecast: {err}", file=sys.stderr)
        return 1
    scores, skipped = score(traces, args.at_epoch, cfg)
    if args.json:
        out = {
            "at_epoch": args.at_epoch,
            "config": asdict(cfg),
            "jobs": len(traces),
            "skipped_too_short": skipped,
            "methods": {m: asdict(s) for m, s in sorted(scores.items())},
        }
        print(json.dumps(out, indent=2))
        return 0
    print(f"{len(traces)} jobs, projected at epoch {args.at_epoch} ({skipped} too short)")
    print(
        f"{'method':<14} {'jobs':>5} {'MAPE %':>8} {'RMSE kJ':>9} {'max APE %':>10} "
        f"{'coverage':>9} {'calibrated':>11} {'+/- %':>6}"
    )
    for m, s in sorted(scores.items()):
        cov = f"{s.coverage:.2f}" if s.coverage is not None else "-"
        cal = f"{s.calibrated_coverage:.2f}" if s.calibrated_coverage is not None else "-"
        width = (
            f"{100 * s.calibrated_half_width:.1f}" if s.calibrated_half_width is not None else "-"
        )
        print(
            f"{m:<14} {s.jobs:>5} {s.mape:>8.2f} {s.rmse_j / 1000:>9.2f} {s.max_ape:>10.1f} "
            f"{cov:>9} {cal:>11} {width:>6}"
        )
    print(
        f"coverage: share of true totals inside the {cfg.level:.0%} interval; calibrated: the "
        "interval scaled on the other jobs' errors (leave-one-job-out split-conformal), as "
        "the estimator scales it on its track record"
    )
    return 0


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    if args.command == "step" and args.step_command == "evaluate":
        return cmd_step_evaluate(args)
    return 2


if __name__ == "__main__":
    sys.exit(main())
