"""Flags of the STEP room: the detector, PUE, TDP baselines and the track record."""

from __future__ import annotations

import argparse
import os

from joulecast.estimator.step.baselines import BaselineConfig
from joulecast.estimator.step.stage import StepSettings
from joulecast.serving.flags import add_flag, non_negative_int, positive_float, positive_int
from joulecast.step import StepConfig


def default_calibration_file() -> str:
    base = os.environ.get("XDG_STATE_HOME") or os.path.join(
        os.path.expanduser("~"), ".local", "state"
    )
    return os.path.join(base, "joulecast-estimator", "step-calibration.json")


def _epoch_or_auto(v: str) -> int | None:
    return None if v == "auto" else non_negative_int(v)


def _epochs_list(v: str) -> tuple[int, ...]:
    try:
        out = tuple(sorted({int(x) for x in v.split(",") if x.strip()}))
    except ValueError as err:
        raise argparse.ArgumentTypeError(f"{v!r}: comma-separated epochs expected") from err
    if not out or min(out) < 1:
        raise argparse.ArgumentTypeError(f"{v!r}: epochs must be >= 1")
    return out


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("STEP")
    f = add_flag
    f(
        g,
        "--step.stabilizing-epoch",
        default="auto",
        type=_epoch_or_auto,
        help="Stabilizing epoch, or auto (detected)",
    )
    f(
        g,
        "--step.window",
        default="auto",
        type=_epoch_or_auto,
        help="Window of stable epochs, or auto (all stable epochs so far)",
    )
    f(
        g,
        "--step.paper",
        default=False,
        boolean=True,
        help="Use the seed study's STEP configuration (epoch 10, window 5, formulas as written)",
    )
    f(
        g,
        "--step.min-window",
        default=StepConfig().min_window,
        type=non_negative_int,
        help="Stable epochs needed before projecting",
    )
    f(
        g,
        "--step.calibration-file",
        default=default_calibration_file(),
        help="JSON file keeping the interval calibration (finished jobs' errors) across restarts; empty: memory only",
    )
    f(
        g,
        "--step.calibration-min-jobs",
        default=10,
        type=positive_int,
        help="Finished jobs needed before intervals are calibrated",
    )
    f(
        g,
        "--step.interval-level",
        default=0.9,
        type=positive_float,
        help="Level of the projection interval",
    )
    _add_baseline_flags(g)


def _add_baseline_flags(g: argparse._ActionsContainer) -> None:
    f = add_flag
    f(
        g,
        "--pue",
        default=1.0,
        type=positive_float,
        help="PUE applied to STEP projections (1.0: GPU board energy)",
    )
    f(
        g,
        "--baseline.ga-pue",
        default=1.56,
        type=positive_float,
        help="PUE of the Green Algorithms baseline",
    )
    f(
        g,
        "--baseline.ga-memory-watts-per-gb",
        default=0.3725,
        type=positive_float,
        help="Green Algorithms memory power (W/GB)",
    )
    f(
        g,
        "--baseline.ga-default-memory-gb",
        default=0.0,
        type=float,
        help="Host memory for Green Algorithms when a job declares no host_ram_gb",
    )
    f(
        g,
        "--track.epochs",
        default=(10, 15, 20),
        type=_epochs_list,
        help="Epochs at which finished jobs' projections are scored",
    )
    f(
        g,
        "--jobs.finished-ttl",
        default=3600.0,
        type=positive_float,
        help="Seconds a finished job's scores stay published",
    )


def step_config(args: argparse.Namespace) -> StepConfig:
    if args.step_paper:
        return StepConfig.paper()
    return StepConfig(
        stabilizing_epoch=args.step_stabilizing_epoch,
        window=args.step_window,
        min_window=max(1, args.step_min_window),
        level=min(args.step_interval_level, 0.999),
    )


def baseline_config(args: argparse.Namespace) -> BaselineConfig:
    return BaselineConfig(
        ga_pue=args.baseline_ga_pue,
        ga_memory_watts_per_gb=args.baseline_ga_memory_watts_per_gb,
        ga_default_memory_gb=args.baseline_ga_default_memory_gb,
    )


def step_settings(args: argparse.Namespace) -> StepSettings:
    return StepSettings(
        step_config(args),
        baseline_config(args),
        args.pue,
        args.track_epochs,
        args.jobs_finished_ttl,
        args.step_calibration_min_jobs,
    )
