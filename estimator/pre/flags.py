"""Flags of the PRE room: which models, and self-calibration from finished jobs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from joulecast.estimator.pre.calibration import HistoryStore, Retrainer, startup_models
from joulecast.estimator.pre.forecast import method_ratings
from joulecast.estimator.pre.store import SEED_DIR, ModelError, load
from joulecast.flags import add_flag, positive_float

log = logging.getLogger("joulecast.estimator")


def add_flags(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("PRE")
    f = add_flag
    f(
        g,
        "--pre.model-dir",
        default="",
        help="PRE model directory (empty: the seed model shipped with joulecast); models retrained from --pre.history-file, kept in pre-models/ beside it, take precedence",
    )
    f(
        g,
        "--pre.enabled",
        default=True,
        boolean=True,
        help="Publish PRE forecasts for running and queued jobs",
    )
    f(
        g,
        "--pre.history-file",
        default="",
        help="CSV where finished jobs become PRE training rows (empty: no self-calibration)",
    )
    f(
        g,
        "--pre.reference-data",
        default="",
        help="Reference training data retrained together with the history (e.g. reference_runs.csv)",
    )
    f(
        g,
        "--pre.retrain-interval",
        default=21600.0,
        type=positive_float,
        help="Seconds between PRE retraining rounds",
    )


def pre_setup(
    args: argparse.Namespace,
) -> tuple[dict[str, Any], Retrainer | None, dict[str, dict[str, float]]]:
    """The models to start with, the self-calibration and the methods' CV ratings."""
    models, retrainer = _models(args)
    ratings: dict[str, dict[str, float]] = {}
    if models:
        configured = Path(args.pre_model_dir) if args.pre_model_dir else SEED_DIR
        try:
            ratings = method_ratings(load(configured)[1])
        except ModelError:
            ratings = {}
    return models, retrainer, ratings


def _models(args: argparse.Namespace) -> tuple[dict[str, Any], Retrainer | None]:
    if not args.pre_enabled:
        return {}, None
    retrained = Path(args.pre_history_file).parent / "pre-models" if args.pre_history_file else None
    try:
        configured = Path(args.pre_model_dir) if args.pre_model_dir else SEED_DIR
        models, model_dir = startup_models(configured, retrained)
        log.info("PRE models from %s", model_dir)
    except ModelError as err:
        log.error("PRE disabled: %s", err)
        return {}, None
    if retrained is None:
        return models, None
    history = HistoryStore(Path(args.pre_history_file))
    reference = Path(args.pre_reference_data) if args.pre_reference_data else None
    return models, Retrainer(history, reference, retrained)
