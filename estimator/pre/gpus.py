"""The GPU spec table (``estimator/data/gpu_specs.csv``) and name matching.

Spec-sheet values of common data-centre and workstation NVIDIA GPUs: CUDA cores, memory,
TDP (default board power), FP32 and dense FP16 tensor TFLOPS, memory bandwidth. Names as
NVML reports them ("NVIDIA A100-SXM4-80GB", "Tesla V100-SXM2-16GB", "NVIDIA GeForce RTX
3090") and as people write them ("A100 80GB", "rtx 3090") resolve to one row.
"""

from __future__ import annotations

import csv
import re
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

TABLE = Path(__file__).resolve().parent / "data" / "gpu_specs.csv"


class UnknownGpu(KeyError):
    def __str__(self) -> str:
        return str(self.args[0])


@dataclass(frozen=True)
class GpuSpec:
    name: str
    architecture: str
    cuda_cores: int
    memory_gb: float
    tdp_w: float
    fp32_tflops: float
    fp16_tensor_tflops: float
    memory_bandwidth_gbs: float


def normalize(name: str) -> str:
    n = name.lower().strip()
    n = re.sub(r"^(nvidia|geforce|tesla|quadro)\s+", "", n)
    n = re.sub(r"^(nvidia|geforce|tesla|quadro)\s+", "", n)
    return re.sub(r"[\s_]+", " ", n)


@lru_cache(maxsize=1)
def _load() -> tuple[dict[str, GpuSpec], list[GpuSpec]]:
    index: dict[str, GpuSpec] = {}
    specs = []
    with TABLE.open(newline="") as fh:
        for row in csv.DictReader(fh):
            spec = GpuSpec(
                name=row["name"],
                architecture=row["architecture"],
                cuda_cores=int(row["cuda_cores"]),
                memory_gb=float(row["memory_gb"]),
                tdp_w=float(row["tdp_w"]),
                fp32_tflops=float(row["fp32_tflops"]),
                fp16_tensor_tflops=float(row["fp16_tensor_tflops"]),
                memory_bandwidth_gbs=float(row["memory_bandwidth_gbs"]),
            )
            specs.append(spec)
            for alias in [row["name"], *row["aliases"].split("|")]:
                index.setdefault(normalize(alias), spec)
    return index, specs


def lookup(name: str) -> GpuSpec:
    index, _ = _load()
    spec = index.get(normalize(name))
    if spec is None:
        raise UnknownGpu(
            f"unknown GPU {name!r}: not in the GPU spec table {TABLE} "
            f"(add a row with its spec-sheet values, or use one of: {', '.join(all_names()[:8])}, ...)"
        )
    return spec


def all_specs() -> list[GpuSpec]:
    return list(_load()[1])


def all_names() -> list[str]:
    return [s.name for s in _load()[1]]
