"""Cross-validation of PRE methods: the study's 5-fold protocol and leave-one-GPU-out.

Hyper-parameters of ``pre_physics`` are chosen inside each training fold only (an inner
cross-validation over the same kind of split: inner k-fold for k-fold, inner
leave-one-GPU-out for leave-one-GPU-out), so no figure is tuned on its own test fold.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pandas as pd
from sklearn.model_selection import GroupKFold, KFold

from joulecast.estimator.pre.model import METHODS, PHYSICS_GRID, TARGETS, PhysicsPRE


@dataclass(frozen=True)
class TargetScore:
    rmse: float
    mae: float
    mape: float  # percent
    coverage: float | None  # share of true values inside the interval


def score(true: pd.DataFrame, pred: pd.DataFrame) -> dict[str, TargetScore]:
    out = {}
    for t in TARGETS:
        y, p = true[t].to_numpy(float), pred[t].to_numpy(float)
        cov = None
        if f"{t}_lower" in pred:
            cov = float(
                np.mean((pred[f"{t}_lower"].to_numpy() <= y) & (y <= pred[f"{t}_upper"].to_numpy()))
            )
        out[t] = TargetScore(
            rmse=float(np.sqrt(np.mean((p - y) ** 2))),
            mae=float(np.mean(np.abs(p - y))),
            mape=float(100 * np.mean(np.abs(p - y) / y)),
            coverage=cov,
        )
    return out


SCHEMES = {
    "kfold": "5-fold",
    "logo": "leave-one-GPU-out",
    "loao": "leave-one-architecture-out",
}


def architectures(df: pd.DataFrame) -> np.ndarray:
    """An architecture is identified by its forward GFLOPs per input pixel, to two
    significant digits: the same network at several input sizes differs only in its
    classifier head (and the reference runs' GFLOPs are least-squares approximations,
    which differ in the third digit)."""
    per_pixel = df["model_gflops"] / (df["input_height"] * df["input_width"]) * 1e6
    return np.array([float(f"{v:.2g}") for v in per_pixel])


def _splits(df: pd.DataFrame, scheme: str, k: int = 5) -> list[tuple[np.ndarray, np.ndarray]]:
    if scheme == "kfold":
        return list(KFold(k, shuffle=True, random_state=42).split(df))
    if scheme == "loao":
        groups = architectures(df)
        what = "architectures"
    else:
        groups = df["gpu_model"].to_numpy()
        what = "GPU models"
    n = len(set(groups))
    if n < 2:
        raise ValueError(f"{SCHEMES[scheme]} needs at least two {what}")
    # outer: leave one group out; inner (model selection, k=3): at most k group folds
    folds = n if k >= 5 else min(n, k)
    return list(GroupKFold(folds).split(df, groups=groups))


def _select_physics(train: pd.DataFrame, scheme: str) -> dict:
    """Pick the grid point with the lowest inner-CV mean of power and epoch-energy MAPE."""
    if scheme == "logo" and train["gpu_model"].nunique() < 2:
        return PHYSICS_GRID[0]
    if scheme == "loao" and len(set(architectures(train))) < 2:
        return PHYSICS_GRID[0]
    best, best_err = PHYSICS_GRID[0], math.inf
    for params in PHYSICS_GRID:
        preds = []
        for tr, te in _splits(train, scheme, k=3):
            m = PhysicsPRE(**params, interval_folds=0).fit(train.iloc[tr])
            preds.append((train.iloc[te], m.predict(train.iloc[te])))
        true = pd.concat([p[0] for p in preds])
        pred = pd.concat([p[1] for p in preds])
        s = score(true.reset_index(drop=True), pred.reset_index(drop=True))
        err = s["power_w"].mape + s["epoch_energy_j"].mape
        if err < best_err:
            best, best_err = params, err
    return best


def make_method(name: str, train: pd.DataFrame, scheme: str, interval_folds: int = 5):
    if name == "pre_physics":
        return PhysicsPRE(**_select_physics(train, scheme), interval_folds=interval_folds)
    return METHODS[name](interval_folds=interval_folds)


def cross_validate(
    df: pd.DataFrame,
    methods: list[str],
    scheme: str,
    baselines: dict[str, Callable[[pd.DataFrame], pd.DataFrame]] | None = None,
    progress: Callable[[str, int, int], None] | None = None,
) -> dict[str, dict]:
    """method -> {"overall": {target: TargetScore}, "per_gpu": {gpu: {target: TargetScore}}}.

    ``progress(method, fold, folds)`` is called after each fold (the CLI shows it)."""
    results = {}
    all_methods = list(methods) + list(baselines or {})
    for name in all_methods:
        parts = []
        splits = _splits(df, scheme)
        for i, (tr, te) in enumerate(splits, start=1):
            train, test = df.iloc[tr], df.iloc[te]
            if baselines and name in baselines:
                pred = baselines[name](test)
            else:
                pred = make_method(name, train, scheme).fit(train).predict_interval(test)
            pred.index = test.index
            parts.append(pred)
            if progress is not None:
                progress(name, i, len(splits))
        pred = pd.concat(parts).loc[df.index]
        per_gpu = {
            g: score(df[df["gpu_model"] == g], pred[df["gpu_model"] == g])
            for g in sorted(df["gpu_model"].unique())
        }
        results[name] = {"overall": score(df, pred), "per_gpu": per_gpu}
    return results


def tdp_baselines(epochs_unused: int = 1) -> dict[str, Callable[[pd.DataFrame], pd.DataFrame]]:
    """Per-epoch TDP baselines given the *true* epoch duration (they cannot forecast time):
    ML CO2 (TDP) and Green Algorithms (PUE 1.56 x TDP, usage 1)."""
    from joulecast.estimator.pre.model import attach_gpu_specs

    def mlco2(test: pd.DataFrame) -> pd.DataFrame:
        t = attach_gpu_specs(test)
        return pd.DataFrame(
            {
                "power_w": t["gpu_tdp_w"],
                "epoch_s": t["epoch_s"],
                "epoch_energy_j": t["gpu_tdp_w"] * t["epoch_s"],
            }
        )

    def ga(test: pd.DataFrame) -> pd.DataFrame:
        t = attach_gpu_specs(test)
        p = 1.56 * (t["gpu_tdp_w"] + t["host_ram_gb"].fillna(0) * 0.3725)
        return pd.DataFrame(
            {"power_w": p, "epoch_s": t["epoch_s"], "epoch_energy_j": p * t["epoch_s"]}
        )

    return {"mlco2": mlco2, "green_algorithms": ga}
