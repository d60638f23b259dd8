"""Training data for PRE: loaders that turn published measurements into the PRE schema.

Schema: ``gpu_model`` plus the job columns of :data:`joulecast.estimator.pre.model.JOB_COLUMNS`, optional
``power_limit_w``, and the targets ``power_w`` (W), ``epoch_s`` (s), ``epoch_energy_j`` (J).
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import pandas as pd

from joulecast.estimator.pre.model import JOB_COLUMNS, TARGETS


class DataError(ValueError):
    """A training file cannot be used; the message names the file and the problem."""


def file_hash(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _read(path: Path) -> pd.DataFrame:
    try:
        return pd.read_csv(path)
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
        raise DataError(f"{path}: not a readable CSV ({err})") from None


def load_reference_runs(path: Path) -> pd.DataFrame:
    """``reference_runs.csv`` of the seed study (del Rey et al.; CC BY 4.0)."""
    raw = _read(path)
    need = {"gpu_model", "avg_gpu_power_w", "avg_epoch_energy_kj", *JOB_COLUMNS}
    missing = sorted(need - set(raw.columns))
    if missing:
        raise DataError(f"{path}: missing column(s) {', '.join(missing)}")
    df = raw[["gpu_model", *JOB_COLUMNS]].copy()
    df["power_w"] = raw["avg_gpu_power_w"].astype(float)
    df["epoch_energy_j"] = raw["avg_epoch_energy_kj"].astype(float) * 1000.0
    df["epoch_s"] = df["epoch_energy_j"] / df["power_w"]
    return validate(df, path)


def load_training_table(path: Path) -> pd.DataFrame:
    """A CSV already in the PRE schema (e.g. the estimator's history of finished jobs), or
    the seed study's reference_runs layout."""
    raw = _read(path)
    if "avg_gpu_power_w" in raw.columns:
        return load_reference_runs(path)
    missing = sorted({"gpu_model", *TARGETS} - set(raw.columns))
    if missing:
        raise DataError(
            f"{path}: missing column(s) {', '.join(missing)} (PRE schema or reference_runs layout)"
        )
    return validate(raw, path)


def validate(df: pd.DataFrame, path: Path | str) -> pd.DataFrame:
    for c in TARGETS:
        bad = ~(pd.to_numeric(df[c], errors="coerce") > 0)
        if bad.any():
            raise DataError(f"{path}: {int(bad.sum())} row(s) with {c} missing or <= 0")
    if (
        "model_gflops" not in df
        or not (pd.to_numeric(df["model_gflops"], errors="coerce") > 0).all()
    ):
        raise DataError(f"{path}: model_gflops (work per sample) is required and > 0 on every row")
    for c in JOB_COLUMNS:
        if c not in df:
            df[c] = float("nan")
    return df.reset_index(drop=True)
