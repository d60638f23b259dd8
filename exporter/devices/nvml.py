"""Real NVIDIA GPUs through NVML (``nvidia-ml-py``, imported as ``pynvml``).

NVML is kept behind this one module: ``NVMLError`` codes become
:class:`~joulecast.exporter.devices.base.DeviceError` kinds here, and units are converted once here
(mW -> W, mJ -> J, MHz -> Hz, percent -> ratio).

Only physical boards are read for power and energy. MIG instances are listed as
:class:`~joulecast.exporter.devices.base.MigInstance` of their parent and never carry energy of their
own, so a board's energy is never counted twice.
"""

from __future__ import annotations

import contextlib
import importlib
from collections.abc import Callable
from types import ModuleType
from typing import Any, TypeVar

from joulecast.exporter.devices.base import (
    DeviceError,
    DeviceLost,
    GpuInfo,
    GpuReading,
    MigInstance,
    NotSupported,
)

T = TypeVar("T")

# NVML return codes (nvml.h); looked up on the module when it defines them.
_LOST_CODES = ("NVML_ERROR_GPU_IS_LOST", "NVML_ERROR_NOT_FOUND", "NVML_ERROR_UNINITIALIZED")
_UNSUPPORTED_CODES = ("NVML_ERROR_NOT_SUPPORTED", "NVML_ERROR_FUNCTION_NOT_FOUND")


def load_pynvml() -> ModuleType:
    return importlib.import_module("pynvml")


class NvmlBackend:
    name = "nvml"
    lists_processes = True

    def __init__(self, nvml: ModuleType | None = None) -> None:
        self._nvml = nvml if nvml is not None else load_pynvml()
        self._lost = {getattr(self._nvml, c) for c in _LOST_CODES if hasattr(self._nvml, c)}
        self._unsupported = {
            getattr(self._nvml, c) for c in _UNSUPPORTED_CODES if hasattr(self._nvml, c)
        }
        try:
            self._nvml.nvmlInit()
        except Exception as err:
            raise DeviceError(f"NVML could not be initialised: {err}") from err
        self._handles: dict[int, Any] = {}
        self._infos: list[GpuInfo] = []
        count = self._call(self._nvml.nvmlDeviceGetCount)
        for index in range(count):
            try:
                handle = self._call(self._nvml.nvmlDeviceGetHandleByIndex, index)
                self._infos.append(self._describe(index, handle))
                self._handles[index] = handle
            except DeviceError:
                continue  # a board that cannot even be described is left out

    # -- error mapping -----------------------------------------------------------------
    def _map(self, err: Exception) -> DeviceError:
        code = getattr(err, "value", None)
        if code in self._lost:
            return DeviceLost(str(err))
        if code in self._unsupported:
            return NotSupported(str(err))
        return DeviceError(str(err))

    def _call(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            return fn(*args)
        except DeviceError:
            raise
        except Exception as err:  # NVMLError and anything the binding raises
            raise self._map(err) from err

    def _optional(self, errors: dict[str, int], fn: Callable[..., T], *args: Any) -> T | None:
        try:
            return self._call(fn, *args)
        except DeviceLost:
            raise
        except DeviceError as err:
            errors[err.kind] = errors.get(err.kind, 0) + 1
            return None

    # -- description -------------------------------------------------------------------
    @staticmethod
    def _text(value: Any) -> str:
        return value.decode() if isinstance(value, bytes) else str(value)

    def _describe(self, index: int, handle: Any) -> GpuInfo:
        n = self._nvml
        errors: dict[str, int] = {}
        uuid = self._text(self._call(n.nvmlDeviceGetUUID, handle))
        name = self._text(self._call(n.nvmlDeviceGetName, handle))
        mem = self._optional(errors, n.nvmlDeviceGetMemoryInfo, handle)
        tdp = self._optional(errors, n.nvmlDeviceGetPowerManagementDefaultLimit, handle)
        energy = self._optional(errors, n.nvmlDeviceGetTotalEnergyConsumption, handle)
        return GpuInfo(
            index=index,
            uuid=uuid,
            model=name,
            memory_total_bytes=int(mem.total) if mem is not None else None,
            default_power_limit_watts=tdp / 1000.0 if tdp is not None else None,
            has_energy_counter=energy is not None,
            mig=tuple(self._mig_instances(handle)),
        )

    def _mig_instances(self, handle: Any) -> list[MigInstance]:
        n = self._nvml
        if not hasattr(n, "nvmlDeviceGetMigMode"):
            return []
        errors: dict[str, int] = {}
        mode = self._optional(errors, n.nvmlDeviceGetMigMode, handle)
        if not mode or not mode[0]:
            return []
        out = []
        count = self._optional(errors, n.nvmlDeviceGetMaxMigDeviceCount, handle) or 0
        for i in range(count):
            mig = self._optional(errors, n.nvmlDeviceGetMigDeviceHandleByIndex, handle, i)
            if mig is None:
                continue
            mem = self._optional(errors, n.nvmlDeviceGetMemoryInfo, mig)
            out.append(
                MigInstance(
                    uuid=self._text(self._call(n.nvmlDeviceGetUUID, mig)),
                    gi_id=int(self._optional(errors, n.nvmlDeviceGetGpuInstanceId, mig) or 0),
                    ci_id=int(self._optional(errors, n.nvmlDeviceGetComputeInstanceId, mig) or 0),
                    memory_total_bytes=int(mem.total) if mem is not None else None,
                )
            )
        return out

    # -- backend interface -------------------------------------------------------------
    def devices(self) -> list[GpuInfo]:
        return list(self._infos)

    def read(self, index: int, now: float) -> GpuReading:
        n = self._nvml
        handle = self._handles.get(index)
        if handle is None:
            raise DeviceLost(f"no GPU with index {index}")
        errors: dict[str, int] = {}
        power = self._optional(errors, n.nvmlDeviceGetPowerUsage, handle)
        energy = self._optional(errors, n.nvmlDeviceGetTotalEnergyConsumption, handle)
        util = self._optional(errors, n.nvmlDeviceGetUtilizationRates, handle)
        mem = self._optional(errors, n.nvmlDeviceGetMemoryInfo, handle)
        temp = self._optional(
            errors, n.nvmlDeviceGetTemperature, handle, getattr(n, "NVML_TEMPERATURE_GPU", 0)
        )
        clock = self._optional(
            errors, n.nvmlDeviceGetClockInfo, handle, getattr(n, "NVML_CLOCK_SM", 1)
        )
        limit = self._optional(errors, n.nvmlDeviceGetEnforcedPowerLimit, handle)
        procs = self._optional(errors, n.nvmlDeviceGetComputeRunningProcesses, handle) or []
        return GpuReading(
            timestamp=now,
            power_watts=power / 1000.0 if power is not None else None,
            energy_joules=energy / 1000.0 if energy is not None else None,
            utilization_gpu_ratio=util.gpu / 100.0 if util is not None else None,
            utilization_memory_ratio=util.memory / 100.0 if util is not None else None,
            memory_used_bytes=int(mem.used) if mem is not None else None,
            temperature_celsius=float(temp) if temp is not None else None,
            sm_clock_hertz=clock * 1e6 if clock is not None else None,
            enforced_power_limit_watts=limit / 1000.0 if limit is not None else None,
            process_pids=tuple(int(p.pid) for p in procs if getattr(p, "pid", None) is not None),
            errors=errors,
        )

    def close(self) -> None:
        with contextlib.suppress(Exception):  # shutting down; nothing left to report to
            self._nvml.nvmlShutdown()


def nvml_available(nvml: ModuleType | None = None) -> bool:
    """True when NVML loads and reports at least one GPU (used by ``--backend auto``)."""
    try:
        n = nvml if nvml is not None else load_pynvml()
        n.nvmlInit()
        try:
            return int(n.nvmlDeviceGetCount()) > 0
        finally:
            n.nvmlShutdown()
    except Exception:
        return False
