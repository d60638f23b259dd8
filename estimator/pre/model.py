"""PRE: Pre-training Regression-based Estimation of a queued job's energy (no I/O here).

Two methods with the scikit-learn estimator API (``fit`` returns ``self``, learned
attributes end in ``_``, ``predict`` checks it is fitted):

* :class:`PaperPRE` (``pre_paper``): the seed study's configuration (del Rey et al., RQ 3.2):
  two Kernel Ridge regressors (rbf, alpha 0.000664468, gamma 0.0441886, standardized
  inputs) on GPU CUDA cores, memory and TDP, host RAM, model GFLOPs, train and eval samples,
  batch size and input height/width; one predicts average power, one epoch energy.
* :class:`PhysicsPRE` (``pre_physics``): physically normalized targets so that a model
  carries over to a GPU it has not seen. Epoch time is learned as the inverse of the
  achieved share of the GPU's peak FP32 throughput, ``t * TFLOPS / work`` with
  ``work = GFLOPs/sample x (3 x train + eval samples)`` (forward + backward on training
  samples); power as the log of its fraction of the power cap (TDP, or the power limit
  when one is set), in a second stage that also sees the predicted throughput share. Gradient boosting on
  log-scaled job and GPU features.

Both return average power (W), epoch duration (s) and epoch energy (J), with an interval
from out-of-fold residuals of the training data.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import GradientBoostingRegressor
from sklearn.kernel_ridge import KernelRidge
from sklearn.model_selection import GroupKFold, KFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.validation import check_is_fitted

from joulecast.estimator.pre.gpus import lookup

JOB_COLUMNS = [
    "model_gflops",
    "batch_size",
    "input_height",
    "input_width",
    "train_samples",
    "eval_samples",
    "host_ram_gb",
]
GPU_COLUMNS = [
    "gpu_cuda_cores",
    "gpu_memory_gb",
    "gpu_tdp_w",
    "gpu_fp32_tflops",
    "gpu_memory_bandwidth_gbs",
]
TARGETS = ["power_w", "epoch_s", "epoch_energy_j"]
PAPER_FEATURES = [
    "gpu_cuda_cores",
    "gpu_memory_gb",
    "gpu_tdp_w",
    "host_ram_gb",
    "model_gflops",
    "train_samples",
    "eval_samples",
    "batch_size",
    "input_height",
    "input_width",
]
MISSING = -1.0  # sentinel for optional inputs in log space (trees split it off)
#: Version of what a fitted model's attributes mean; bumped when a method's targets or
#: inputs change, so that a model directory written before is refused, not misread.
#: 2: pre_physics learns the log of the power fraction.
MODEL_FORMAT = 3


def attach_gpu_specs(df: pd.DataFrame) -> pd.DataFrame:
    """Add the spec-table columns for ``gpu_model``; raises UnknownGpu naming the table."""
    out = df.copy()
    specs = {name: lookup(name) for name in out["gpu_model"].unique()}
    out["gpu_cuda_cores"] = out["gpu_model"].map(lambda g: specs[g].cuda_cores)
    out["gpu_memory_gb"] = out["gpu_model"].map(lambda g: specs[g].memory_gb)
    out["gpu_tdp_w"] = out["gpu_model"].map(lambda g: specs[g].tdp_w)
    out["gpu_fp32_tflops"] = out["gpu_model"].map(lambda g: specs[g].fp32_tflops)
    out["gpu_memory_bandwidth_gbs"] = out["gpu_model"].map(lambda g: specs[g].memory_bandwidth_gbs)
    if "power_limit_w" not in out:
        out["power_limit_w"] = np.nan
    for c in JOB_COLUMNS:
        if c not in out:
            out[c] = np.nan
    return out


def work_gflop(df: pd.DataFrame) -> pd.Series:
    """GFLOP of one epoch: forward + backward (3x forward) on training samples, forward on eval."""
    return df["model_gflops"] * (3.0 * df["train_samples"] + df["eval_samples"].fillna(0.0))


def power_cap(df: pd.DataFrame) -> pd.Series:
    return df["power_limit_w"].fillna(df["gpu_tdp_w"])


def _log(s: pd.Series) -> np.ndarray:
    v = np.log(s.astype(float).clip(lower=1e-9))
    return np.where(s.isna(), MISSING, v)


def physics_features(df: pd.DataFrame) -> np.ndarray:
    work = work_gflop(df)
    pixels = df["input_height"] * df["input_width"]
    return np.column_stack(
        [
            _log(df["model_gflops"]),
            _log(df["batch_size"]),
            _log(pixels),
            _log(df["train_samples"]),
            _log(df["eval_samples"]),
            _log(df["host_ram_gb"]),
            np.log(df["gpu_fp32_tflops"]),
            np.log(df["gpu_memory_bandwidth_gbs"]),
            np.log(df["gpu_tdp_w"]),
            np.log(df["gpu_memory_gb"]),
            np.log(work / df["gpu_fp32_tflops"]),  # ideal seconds of compute at peak
            _log(df["model_gflops"] * df["batch_size"] / df["gpu_memory_gb"]),  # memory pressure
            np.log(power_cap(df) / df["gpu_tdp_w"]),  # power limit below TDP
        ]
    )


def _targets(df: pd.DataFrame) -> pd.DataFrame:
    for c in TARGETS:
        if c not in df:
            raise ValueError(f"training data needs column {c!r}")
    return df


def _predictions(power: np.ndarray, epoch_s: np.ndarray) -> pd.DataFrame:
    power = np.clip(power, 1.0, None)
    epoch_s = np.clip(epoch_s, 1e-3, None)
    return pd.DataFrame({"power_w": power, "epoch_s": epoch_s, "epoch_energy_j": power * epoch_s})


class _IntervalMixin:
    """Out-of-fold log-ratio quantiles of the training data -> prediction intervals."""

    level: float
    interval_folds: int

    def _oof_quantiles(self, df: pd.DataFrame, splits: list) -> dict[str, tuple[float, float]]:
        oof = pd.DataFrame(index=df.index, columns=TARGETS, dtype=float)
        for tr, te in splits:
            m = clone(self)
            m.interval_folds = 0
            m.fit(df.iloc[tr])
            oof.iloc[te] = m.predict(df.iloc[te]).to_numpy()
        a = (1 - self.level) / 2
        out = {}
        for t in TARGETS:
            r = np.log(df[t].to_numpy(float) / oof[t].to_numpy(float))
            out[t] = (float(np.quantile(r, a)), float(np.quantile(r, 1 - a)))
        return out

    def _fit_intervals(self, df: pd.DataFrame) -> None:
        """Residual quantiles for GPUs in the training data (k-fold) and for unseen GPUs
        (leave-one-GPU-out), so that an extrapolation gets the wider interval it needs."""
        self.seen_gpus_ = sorted(df["gpu_model"].unique())
        folds = min(self.interval_folds, len(df))
        if folds < 2:
            self.log_ratio_quantiles_ = {t: (0.0, 0.0) for t in TARGETS}
            self.unseen_log_ratio_quantiles_ = dict(self.log_ratio_quantiles_)
            return
        self.log_ratio_quantiles_ = self._oof_quantiles(
            df, list(KFold(folds, shuffle=True, random_state=0).split(df))
        )
        groups = df["gpu_model"].to_numpy()
        if len(self.seen_gpus_) >= 2:
            splits = list(GroupKFold(len(self.seen_gpus_)).split(df, groups=groups))
            self.unseen_log_ratio_quantiles_ = self._oof_quantiles(df, splits)
        else:
            self.unseen_log_ratio_quantiles_ = {
                t: (lo - 1.0, hi + 1.0) for t, (lo, hi) in self.log_ratio_quantiles_.items()
            }

    #: whether the method may speak for GPU models absent from its training data
    extrapolates: bool = True

    def covers(self, gpu_model: str, job: Mapping[str, Any] | None = None) -> bool:
        """Whether this method's forecast for ``job`` on ``gpu_model`` is in its domain:
        always for a method that extrapolates (unseen GPUs get the leave-one-GPU-out
        interval), else only for GPU models in its training data and job features inside
        the range it was trained on."""
        if self.extrapolates:
            return True
        seen = {lookup(g).name for g in getattr(self, "seen_gpus_", [])}
        if lookup(gpu_model).name not in seen:
            return False
        ranges = getattr(self, "feature_ranges_", {})
        for name, value in (job or {}).items():
            if name in ranges and value is not None and value == value:
                lo, hi = ranges[name]
                if not lo - 1e-9 <= float(value) <= hi + 1e-9:
                    return False
        return True

    def predict_interval(self, df: pd.DataFrame) -> pd.DataFrame:
        """Columns ``<target>``, ``<target>_lower``, ``<target>_upper``."""
        pred = self.predict(df)  # type: ignore[attr-defined]
        names = (
            attach_gpu_specs(df[["gpu_model"]])["gpu_model"]
            .map(lambda g: lookup(g).name)
            .to_numpy()
        )
        seen = {lookup(g).name for g in getattr(self, "seen_gpus_", [])}
        known = np.array([n in seen for n in names])
        for t in TARGETS:
            lo_s, hi_s = self.log_ratio_quantiles_[t]
            lo_u, hi_u = self.unseen_log_ratio_quantiles_[t]
            lo = np.where(known, lo_s, lo_u)
            hi = np.where(known, hi_s, hi_u)
            pred[f"{t}_lower"] = pred[t].to_numpy() * np.exp(lo)
            pred[f"{t}_upper"] = pred[t].to_numpy() * np.exp(hi)
        return pred


class PaperPRE(_IntervalMixin, BaseEstimator):
    """The seed study's Kernel Ridge configuration (``pre_paper``).

    An RBF kernel model of raw GPU specs: far from its training GPUs it falls back to its
    mean and below (power clipped at 1 W), so it speaks only for GPU models it was trained on.
    """

    extrapolates = False

    def __init__(
        self,
        alpha: float = 0.000664468,
        gamma: float = 0.0441886,
        level: float = 0.9,
        interval_folds: int = 5,
    ) -> None:
        self.alpha = alpha
        self.gamma = gamma
        self.level = level
        self.interval_folds = interval_folds

    def _krr(self) -> Pipeline:
        return make_pipeline(
            StandardScaler(), KernelRidge(kernel="rbf", alpha=self.alpha, gamma=self.gamma)
        )

    def fit(self, df: pd.DataFrame, y: object = None) -> PaperPRE:
        df = _targets(attach_gpu_specs(df))
        X = df[PAPER_FEATURES].fillna(0.0).to_numpy(float)
        self.power_ = self._krr().fit(X, df["power_w"])
        self.energy_ = self._krr().fit(X, df["epoch_energy_j"] / 1000.0)  # kJ, as the study
        # an RBF kernel model knows only the box of job features it was trained in
        self.feature_ranges_ = {
            c: (float(df[c].min()), float(df[c].max()))
            for c in JOB_COLUMNS
            if c in df and df[c].notna().any()
        }
        if self.interval_folds:
            self._fit_intervals(df)
        return self

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "power_")
        df = attach_gpu_specs(df)
        X = df[PAPER_FEATURES].fillna(0.0).to_numpy(float)
        power = np.clip(self.power_.predict(X), 1.0, None)
        energy = np.clip(self.energy_.predict(X) * 1000.0, 1e-3, None)
        return pd.DataFrame({"power_w": power, "epoch_s": energy / power, "epoch_energy_j": energy})


class PhysicsPRE(_IntervalMixin, BaseEstimator):
    """Throughput-share and power-fraction targets (``pre_physics``)."""

    def __init__(
        self,
        max_depth: int = 2,
        n_estimators: int = 300,
        learning_rate: float = 0.1,
        loss: str = "huber",
        level: float = 0.9,
        interval_folds: int = 5,
    ) -> None:
        self.max_depth = max_depth
        self.n_estimators = n_estimators
        self.learning_rate = learning_rate
        self.loss = loss
        self.level = level
        self.interval_folds = interval_folds

    def _gbr(self) -> GradientBoostingRegressor:
        return GradientBoostingRegressor(
            max_depth=self.max_depth,
            n_estimators=self.n_estimators,
            learning_rate=self.learning_rate,
            loss=self.loss,
            random_state=0,
        )

    def fit(self, df: pd.DataFrame, y: object = None) -> PhysicsPRE:
        df = _targets(attach_gpu_specs(df))
        X = physics_features(df)
        share = np.log(df["epoch_s"] * df["gpu_fp32_tflops"] / work_gflop(df))
        self.time_ = self._gbr().fit(X, share)
        X2 = np.column_stack([X, self.time_.predict(X)])
        # log of the fraction, like the time stage: errors are relative, as they are scored
        self.power_ = self._gbr().fit(X2, np.log(df["power_w"] / power_cap(df)))
        if self.interval_folds:
            self._fit_intervals(df)
        return self

    def predict(self, df: pd.DataFrame) -> pd.DataFrame:
        check_is_fitted(self, "power_")
        df = attach_gpu_specs(df)
        X = physics_features(df)
        share = self.time_.predict(X)
        epoch_s = (
            np.exp(share) * work_gflop(df).to_numpy(float) / df["gpu_fp32_tflops"].to_numpy(float)
        )
        frac = np.clip(np.exp(self.power_.predict(np.column_stack([X, share]))), 0.02, 1.2)
        return _predictions(frac * power_cap(df).to_numpy(float), epoch_s)


METHODS = {"pre_paper": PaperPRE, "pre_physics": PhysicsPRE}

#: The grid ``pre_physics`` is tuned over, inside the training folds only (nested CV).
PHYSICS_GRID = [
    {"max_depth": 2, "n_estimators": 300, "loss": "huber"},
    {"max_depth": 2, "n_estimators": 300, "loss": "squared_error"},
    {"max_depth": 3, "n_estimators": 150, "loss": "huber"},
    {"max_depth": 3, "n_estimators": 150, "loss": "squared_error"},
]


@dataclass(frozen=True)
class Forecast:
    method: str
    gpu_model: str
    power_w: float
    epoch_s: float
    epoch_energy_j: float
    energy_j: float  # epochs x epoch energy
    duration_s: float
    energy_lower_j: float
    energy_upper_j: float
    #: the method the model store rates best for this GPU (placement uses it)
    recommended: bool = field(default=False, compare=False)
