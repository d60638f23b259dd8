"""Turning fitted PRE models into forecasts for a job on one or many GPU models."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from joulecast.estimator.pre.gpus import lookup
from joulecast.estimator.pre.model import JOB_COLUMNS, Forecast


def forecast_job(
    models: Mapping[str, Any], features: Mapping[str, Any], epochs: int, gpus: Iterable[str]
) -> list[Forecast]:
    """One forecast per (method, GPU). ``features`` uses the marker API's feature names."""
    names = [lookup(g).name for g in gpus]  # UnknownGpu names the spec table
    rows = pd.DataFrame(
        [{"gpu_model": n, **{c: features.get(c) for c in JOB_COLUMNS}} for n in names]
    )
    rows[JOB_COLUMNS] = rows[JOB_COLUMNS].astype(float)
    out = []
    for method, model in models.items():
        pred = model.predict_interval(rows)
        for i, name in enumerate(names):
            p = pred.iloc[i]
            out.append(
                Forecast(
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
            )
    return out
