"""A fake ``pynvml`` module at the binding's boundary, with injectable faults.

Faults: ``faults[(function_name, gpu_index)] = error_code`` makes that call raise
``NVMLError(code)``; ``lost`` holds GPU indices whose every call raises GPU_IS_LOST.
"""

from __future__ import annotations

import types
from dataclasses import dataclass, field

NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_GPU_IS_LOST = 15
NVML_ERROR_UNKNOWN = 999
NVML_ERROR_UNINITIALIZED = 1
NVML_ERROR_FUNCTION_NOT_FOUND = 13


class NVMLError(Exception):
    def __init__(self, value: int) -> None:
        super().__init__(f"NVML error {value}")
        self.value = value


@dataclass
class FakeGpu:
    name: str = "NVIDIA A100-SXM4-40GB"
    uuid: str = "GPU-aaaa"
    power_mw: int = 250_000
    energy_mj: int = 1_000_000
    tdp_mw: int = 400_000
    mem_total: int = 40 * 2**30
    mem_used: int = 10 * 2**30
    util: int = 90
    pids: list[int] = field(default_factory=list)
    mig: list[str] = field(default_factory=list)  # MIG UUIDs
    mig_mem: list[int] = field(default_factory=list)  # memory of each MIG instance


def make(gpus: list[FakeGpu]) -> types.ModuleType:
    m = types.ModuleType("pynvml")
    m.NVMLError = NVMLError
    m.NVML_ERROR_NOT_SUPPORTED = NVML_ERROR_NOT_SUPPORTED
    m.NVML_ERROR_NOT_FOUND = NVML_ERROR_NOT_FOUND
    m.NVML_ERROR_GPU_IS_LOST = NVML_ERROR_GPU_IS_LOST
    m.NVML_ERROR_UNINITIALIZED = NVML_ERROR_UNINITIALIZED
    m.NVML_ERROR_FUNCTION_NOT_FOUND = NVML_ERROR_FUNCTION_NOT_FOUND
    m.NVML_ERROR_UNKNOWN = NVML_ERROR_UNKNOWN
    m.NVML_TEMPERATURE_GPU = 0
    m.NVML_CLOCK_SM = 1
    m.faults = {}
    m.lost = set()
    m.gpus = gpus
    m.calls = []

    class Handle:
        def __init__(self, index: int, mig: int | None = None) -> None:
            self.index, self.mig = index, mig

    def guard(fn_name):
        def deco(fn):
            def wrapper(h, *a):
                m.calls.append(fn_name)
                idx = h.index
                if idx in m.lost:
                    raise NVMLError(NVML_ERROR_GPU_IS_LOST)
                code = m.faults.get((fn_name, idx))
                if code is not None:
                    raise NVMLError(code)
                return fn(h, *a)

            wrapper.__name__ = fn_name
            return wrapper

        return deco

    m.nvmlInit = lambda: None
    m.nvmlShutdown = lambda: None
    m.nvmlDeviceGetCount = lambda: len(m.gpus)
    m.nvmlDeviceGetHandleByIndex = lambda i: Handle(i)

    def g(h):
        return m.gpus[h.index]

    m.nvmlDeviceGetUUID = guard("nvmlDeviceGetUUID")(
        lambda h: g(h).uuid if h.mig is None else g(h).mig[h.mig]
    )
    m.nvmlDeviceGetName = guard("nvmlDeviceGetName")(lambda h: g(h).name.encode())
    m.nvmlDeviceGetMemoryInfo = guard("nvmlDeviceGetMemoryInfo")(
        lambda h: types.SimpleNamespace(
            total=g(h).mem_total if h.mig is None else g(h).mig_mem[h.mig],
            used=g(h).mem_used,
            free=0,
        )
    )
    m.nvmlDeviceGetPowerManagementDefaultLimit = guard("nvmlDeviceGetPowerManagementDefaultLimit")(
        lambda h: g(h).tdp_mw
    )
    m.nvmlDeviceGetEnforcedPowerLimit = guard("nvmlDeviceGetEnforcedPowerLimit")(
        lambda h: g(h).tdp_mw
    )
    m.nvmlDeviceGetPowerUsage = guard("nvmlDeviceGetPowerUsage")(lambda h: g(h).power_mw)
    m.nvmlDeviceGetTotalEnergyConsumption = guard("nvmlDeviceGetTotalEnergyConsumption")(
        lambda h: g(h).energy_mj
    )
    m.nvmlDeviceGetUtilizationRates = guard("nvmlDeviceGetUtilizationRates")(
        lambda h: types.SimpleNamespace(gpu=g(h).util, memory=g(h).util // 2)
    )
    m.nvmlDeviceGetTemperature = guard("nvmlDeviceGetTemperature")(lambda h, s: 55)
    m.nvmlDeviceGetClockInfo = guard("nvmlDeviceGetClockInfo")(lambda h, c: 1410)
    m.nvmlDeviceGetComputeRunningProcesses = guard("nvmlDeviceGetComputeRunningProcesses")(
        lambda h: [types.SimpleNamespace(pid=p, usedGpuMemory=1) for p in g(h).pids]
    )
    m.nvmlDeviceGetMigMode = guard("nvmlDeviceGetMigMode")(lambda h: (1, 1) if g(h).mig else (0, 0))
    m.nvmlDeviceGetMaxMigDeviceCount = guard("nvmlDeviceGetMaxMigDeviceCount")(
        lambda h: len(g(h).mig)
    )
    m.nvmlDeviceGetMigDeviceHandleByIndex = guard("nvmlDeviceGetMigDeviceHandleByIndex")(
        lambda h, i: Handle(h.index, i)
    )
    m.nvmlDeviceGetGpuInstanceId = guard("nvmlDeviceGetGpuInstanceId")(lambda h: h.mig + 1)
    m.nvmlDeviceGetComputeInstanceId = guard("nvmlDeviceGetComputeInstanceId")(lambda h: 0)
    return m
