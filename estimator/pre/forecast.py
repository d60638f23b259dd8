"""Turning fitted PRE models into forecasts for a job on one or many GPU models.

Each method speaks only where it may (:meth:`covers`: the paper's Kernel Ridge for GPU
models in its training data, ``pre_physics`` everywhere), and the method the model store
rates best for each GPU is marked ``recommended``: placement compares GPUs by it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import replace
from typing import Any

import pandas as pd

from joulecast.estimator.pre.gpus import lookup
from joulecast.estimator.pre.model import JOB_COLUMNS, Forecast

#: where no rating is stored: prefer the method that extrapolates, as CV rated it so far
DEFAULT_PREFERENCE = ("pre_physics", "pre_paper")


def method_ratings(meta: Mapping[str, Any]) -> dict[str, dict[str, float]]:
    """{"seen": {method: epoch-energy MAPE}, "unseen": {...}} from a model's metadata:
    5-fold CV for GPU models in the training data, leave-one-GPU-out for the others."""
    out: dict[str, dict[str, float]] = {}
    for domain, key in (("seen", "cv_kfold"), ("unseen", "cv_logo")):
        scores = meta.get(key) or {}
        out[domain] = {
            m: float(v["epoch_energy_j"]["mape"])
            for m, v in scores.items()
            if isinstance(v, dict) and "epoch_energy_j" in v
        }
    return out


def recommended_method(
    models: Mapping[str, Any],
    gpu: str,
    ratings: Mapping[str, Mapping[str, float]],
    job: Mapping[str, Any] | None = None,
) -> str | None:
    """The covering method with the lowest CV error for this GPU's domain."""
    covering = [m for m, model in models.items() if model.covers(gpu, job)]
    if not covering:
        return None
    seen = any(
        not getattr(model, "extrapolates", True) and model.covers(gpu) for model in models.values()
    )
    rated = ratings.get("seen" if seen else "unseen", {})
    scored = [m for m in covering if m in rated]
    if scored:
        return min(scored, key=lambda m: rated[m])
    for m in DEFAULT_PREFERENCE:
        if m in covering:
            return m
    return covering[0]


def forecast_job(
    models: Mapping[str, Any],
    features: Mapping[str, Any],
    epochs: int,
    gpus: Iterable[str],
    ratings: Mapping[str, Mapping[str, float]] | None = None,
) -> list[Forecast]:
    """One forecast per (method, GPU) in the method's domain. ``features`` uses the marker
    API's feature names."""
    names = list(dict.fromkeys(lookup(g).name for g in gpus))  # UnknownGpu names the table
    rows = pd.DataFrame(
        [{"gpu_model": n, **{c: features.get(c) for c in JOB_COLUMNS}} for n in names]
    )
    rows[JOB_COLUMNS] = rows[JOB_COLUMNS].astype(float)
    job = {c: features.get(c) for c in JOB_COLUMNS}
    best = {n: recommended_method(models, n, ratings or {}, job) for n in names}
    out = []
    for method, model in models.items():
        pred = model.predict_interval(rows)
        for i, name in enumerate(names):
            if not model.covers(name, job):
                continue  # out of the method's domain: not published, never a floor value
            p = pred.iloc[i]
            fc = Forecast(
                method=method,
                gpu_model=name,
                power_w=float(p["power_w"]),
                epoch_s=float(p["epoch_s"]),
                epoch_energy_j=float(p["epoch_energy_j"]),
                energy_j=float(p["epoch_energy_j"]) * epochs,
                duration_s=float(p["epoch_s"]) * epochs,
                energy_lower_j=float(p["epoch_energy_j_lower"]) * epochs,
                energy_upper_j=float(p["epoch_energy_j_upper"]) * epochs,
            )
            out.append(replace(fc, recommended=best[name] == method))
    return out


def placement(forecasts: Iterable[Forecast]) -> Forecast | None:
    """The GPU model where the job uses least energy, each GPU judged by its recommended
    method's forecast."""
    rec = [f for f in forecasts if f.recommended]
    return min(rec, key=lambda f: f.energy_j) if rec else None
