"""Self-calibration of PRE: finished jobs become training rows; retrain; keep if not worse.

Every finished job that declared its features (GFLOPs, batch size, samples) and ran on a
GPU of the spec table becomes one row of the history file (CSV, PRE schema): its measured
average power, epoch duration and epoch energy on that GPU. On a schedule, the estimator
fits new models on the reference data plus the history, scores them on the history rows
out of fold (5-fold: each history row is predicted by a model that did not see it), scores
the current models on the same rows, and switches only if the new error is not worse.
Accepted models are saved in timestamped directories; after a restart the newest one that
loads is used again (:func:`startup_models`).
"""

from __future__ import annotations

import csv
import logging
import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import clone
from sklearn.model_selection import KFold

from joulecast.estimator.pre.dataset import load_training_table
from joulecast.estimator.pre.gpus import UnknownGpu, lookup
from joulecast.estimator.pre.model import JOB_COLUMNS, TARGETS
from joulecast.estimator.pre.store import ModelError, load, save
from joulecast.serving.files import FileRejections

log = logging.getLogger("joulecast.estimator")
COLUMNS = ["job_id", "gpu_model", *JOB_COLUMNS, *TARGETS, "finished_at"]


@dataclass(frozen=True)
class HistoryRow:
    job_id: str
    gpu_model: str
    features: dict[str, float | None]
    epochs: float
    energy_j: float
    duration_s: float
    finished_at: float

    def as_csv(self) -> dict[str, Any]:
        return {
            "job_id": self.job_id,
            "gpu_model": self.gpu_model,
            **{c: ("" if self.features.get(c) is None else self.features[c]) for c in JOB_COLUMNS},
            "power_w": self.energy_j / self.duration_s,
            "epoch_s": self.duration_s / self.epochs,
            "epoch_energy_j": self.energy_j / self.epochs,
            "finished_at": f"{self.finished_at:.0f}",
        }


class HistoryStore:
    """Append-only CSV of finished jobs (one row per job_id)."""

    def __init__(self, path: Path, rejections: FileRejections | None = None) -> None:
        self.path = path
        self.rejections = rejections or FileRejections()
        path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._seen: set[str] = set()
        if path.exists():
            try:
                self._seen = set(self._read()["job_id"].astype(str))
            except ValueError as err:
                self.rejections.set_aside(path, "history", f"{err}; a new history is started")

    def add(self, row: HistoryRow) -> bool:
        if row.duration_s <= 0 or row.energy_j <= 0 or row.epochs < 1:
            return False
        try:
            row = HistoryRow(
                row.job_id,
                lookup(row.gpu_model).name,
                row.features,
                row.epochs,
                row.energy_j,
                row.duration_s,
                row.finished_at,
            )
        except UnknownGpu:
            return False
        with self._lock:
            if row.job_id in self._seen:
                return False
            new = not self.path.exists()
            with self.path.open("a", newline="") as fh:
                w = csv.DictWriter(fh, fieldnames=COLUMNS)
                if new:
                    w.writeheader()
                w.writerow(row.as_csv())
            self._seen.add(row.job_id)
            return True

    def _read(self) -> pd.DataFrame:
        """The history as written; ValueError naming what is wrong when it is not."""
        try:
            with self.path.open("rb") as fh:
                head = fh.read(1 << 20)
            if b"\x00" in head:
                raise ValueError("NUL bytes: not a CSV text file")
            frame = pd.read_csv(self.path)
        except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as err:
            raise ValueError(f"not a readable CSV ({err.__class__.__name__}: {err})") from None
        missing = [c for c in ("job_id", "gpu_model", *TARGETS) if c not in frame.columns]
        if missing:
            raise ValueError(f"columns missing: {', '.join(missing)}")
        for c in TARGETS:
            frame[c] = pd.to_numeric(frame[c], errors="coerce")
        bad = frame[list(TARGETS)].isna().any(axis=1) | (frame[list(TARGETS)] <= 0).any(axis=1)
        if bad.any():
            log.warning(
                "%s: %d row(s) without positive numeric targets left out", self.path, int(bad.sum())
            )
        return frame[~bad]

    def frame(self) -> pd.DataFrame:
        if not self.path.exists():
            return pd.DataFrame(columns=COLUMNS)
        try:
            return self._read()
        except ValueError as err:  # spoiled since start: set aside, retrain without it
            self.rejections.set_aside(self.path, "history", f"{err}; a new history is started")
            with self._lock:
                self._seen = set()
            return pd.DataFrame(columns=COLUMNS)

    def __len__(self) -> int:
        return len(self._seen)


@dataclass
class Calibration:
    """The state published as model-quality gauges."""

    history_rows: int = 0
    retrains: dict[str, int] = field(default_factory=dict)  # outcome -> count
    last_retrain_s: float | None = None
    current_error: dict[str, float] = field(
        default_factory=dict
    )  # method -> epoch-energy MAPE on history
    candidate_error: dict[str, float] = field(default_factory=dict)
    model_rows: int = 0


def _mape(true: pd.Series, pred: pd.Series) -> float:
    t, p = true.to_numpy(float), pred.to_numpy(float)
    return float(100 * np.mean(np.abs(p - t) / t)) if len(t) else math.nan


def startup_models(configured: Path, retrained_root: Path | None) -> tuple[dict[str, Any], Path]:
    """The models to start with and the directory they came from (see
    :func:`startup_models_and_meta`)."""
    models, _, used = startup_models_and_meta(configured, retrained_root)
    return models, used


def startup_models_and_meta(
    configured: Path, retrained_root: Path | None, rejections: FileRejections | None = None
) -> tuple[dict[str, Any], dict[str, Any], Path]:
    """The models to start with, their metadata and their directory: the newest retrained
    directory under ``retrained_root`` that loads (format, hashes), else ``configured``.
    Directories that do not load are logged and skipped; raises ModelError only if
    ``configured`` does not load either."""
    candidates = []
    if retrained_root is not None and retrained_root.is_dir():
        candidates = sorted(
            (d for d in retrained_root.iterdir() if (d / "metadata.json").is_file()),
            key=lambda d: d.name,
            reverse=True,
        )
    for d in candidates:
        try:
            models, meta = load(d)
        except ModelError as err:
            (rejections or FileRejections()).set_aside(d, "model", str(err))
            continue
        return models, meta, d
    models, meta = load(configured)
    return models, meta, configured


class Retrainer:
    def __init__(
        self,
        history: HistoryStore,
        reference: Path | None,
        model_dir: Path,
        min_rows: int = 5,
    ) -> None:
        self.history = history
        self.reference = reference
        self.model_dir = model_dir
        self.min_rows = max(min_rows, 2)  # out-of-fold scoring needs two rows
        self.state = Calibration()
        self._lock = threading.Lock()

    def retrain(self, current: dict[str, Any]) -> dict[str, Any] | None:
        """One retraining round. Returns the new models if they replace ``current``."""
        hist = self.history.frame().drop(columns=["job_id", "finished_at"], errors="ignore")
        self.state.history_rows = len(hist)
        if len(hist) < self.min_rows:
            self._count("skipped_too_few_rows")
            return None
        base = load_training_table(self.reference) if self.reference else hist.iloc[:0]
        data = pd.concat([base, hist], ignore_index=True)
        new_models, cand_err, cur_err = {}, {}, {}
        folds = min(5, len(hist))
        for method, model in current.items():
            cur_err[method] = _mape(hist["epoch_energy_j"], model.predict(hist)["epoch_energy_j"])
            oof = pd.Series(np.nan, index=hist.index)
            for tr, te in KFold(folds, shuffle=True, random_state=0).split(hist):
                m = clone(model).set_params(interval_folds=0)
                m.fit(pd.concat([base, hist.iloc[tr]], ignore_index=True))
                oof.iloc[te] = m.predict(hist.iloc[te])["epoch_energy_j"].to_numpy()
            cand_err[method] = _mape(hist["epoch_energy_j"], oof)
            new_models[method] = clone(model).set_params(interval_folds=3).fit(data)
        self.state.current_error, self.state.candidate_error = cur_err, cand_err
        self.state.last_retrain_s = time.time()
        if all(cand_err[m] <= cur_err[m] for m in current):
            out = self.model_dir / time.strftime("%Y%m%dT%H%M%S", time.gmtime())
            save(
                out,
                new_models,
                {
                    "training_data": {"rows": len(data), "history_rows": len(hist)},
                    "history_error_mape": {"current": cur_err, "candidate": cand_err},
                },
            )
            self.state.model_rows = len(data)
            self._count("accepted")
            log.info(
                "PRE retrained on %d rows (%d from finished jobs): kept (%s)",
                len(data),
                len(hist),
                cand_err,
            )
            return new_models
        self._count("rejected_worse")
        log.info(
            "PRE retrained on %d rows: rejected, worse on history (%s vs %s)",
            len(data),
            cand_err,
            cur_err,
        )
        return None

    def _count(self, outcome: str) -> None:
        self.state.retrains[outcome] = self.state.retrains.get(outcome, 0) + 1
