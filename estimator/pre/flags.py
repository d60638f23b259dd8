"""Flags of the PRE room: which models, and self-calibration from finished jobs."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path
from typing import Any

from joulecast.estimator.pre.calibration import (
    HistoryStore,
    Retrainer,
    startup_models_and_meta,
)
from joulecast.estimator.pre.forecast import method_ratings
from joulecast.estimator.pre.store import SEED_DIR, ModelError, read_metadata
from joulecast.serving.files import FileRejections
from joulecast.serving.flags import add_flag, positive_float

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
    args: argparse.Namespace, rejections: FileRejections | None = None
) -> tuple[dict[str, Any], Retrainer | None, dict[str, dict[str, float]]]:
    """The models to start with, the self-calibration and the methods' CV ratings (from the
    models' own metadata; a retrained directory, which stores none, keeps the ratings of
    the directory it was retrained from)."""
    if not args.pre_enabled:
        return {}, None, {}
    retrained = Path(args.pre_history_file).parent / "pre-models" if args.pre_history_file else None
    configured = Path(args.pre_model_dir) if args.pre_model_dir else SEED_DIR
    try:
        models, meta, model_dir = startup_models_and_meta(configured, retrained, rejections)
        log.info("PRE models from %s", model_dir)
    except ModelError as err:
        log.error("PRE disabled: %s", err)
        return {}, None, {}
    ratings = method_ratings(meta)
    if not any(ratings.values()) and model_dir != configured:
        ratings = method_ratings(read_metadata(configured))
    if retrained is None:
        return models, None, ratings
    history = HistoryStore(Path(args.pre_history_file), rejections)
    reference = Path(args.pre_reference_data) if args.pre_reference_data else None
    return models, Retrainer(history, reference, retrained), ratings
