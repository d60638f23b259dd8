"""The TDP baselines STEP is compared with (pure).

* ``mlco2``: the ML CO2 Impact calculator (Lacoste et al., 2019): GPU TDP x hours. The
  calculator applies no PUE.
* ``green_algorithms``: Green Algorithms (Lannelongue et al., 2021):
  hours x PUE x (GPU TDP x usage + memory GB x 0.3725 W/GB), default PUE 1.56.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class BaselineConfig:
    ga_pue: float = 1.56
    ga_memory_watts_per_gb: float = 0.3725
    ga_default_usage: float = 1.0  # GPU usage factor when the job's utilization is unknown
    ga_default_memory_gb: float = 0.0  # host memory when the job declares no host_ram_gb


def mlco2(tdp_w: float, duration_s: float) -> float:
    """Joules: TDP x duration."""
    return tdp_w * duration_s


def green_algorithms(
    tdp_w: float,
    duration_s: float,
    usage: float | None,
    memory_gb: float | None,
    cfg: BaselineConfig,
) -> float:
    """Joules: duration x PUE x (TDP x usage + memory x 0.3725 W/GB)."""
    u = cfg.ga_default_usage if usage is None else min(max(usage, 0.0), 1.0)
    mem = cfg.ga_default_memory_gb if memory_gb is None else memory_gb
    return duration_s * cfg.ga_pue * (tdp_w * u + mem * cfg.ga_memory_watts_per_gb)
