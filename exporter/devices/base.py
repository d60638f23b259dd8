"""Types at the boundary between GPU backends and the rest of the exporter."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol


class DeviceError(Exception):
    """A call to a GPU backend failed. ``kind`` is a bounded label value."""

    kind = "call_error"


class DeviceLost(DeviceError):
    kind = "device_lost"


class NotSupported(DeviceError):
    kind = "not_supported"


#: Every ``kind`` above: error counters start at 0 for each, so the first error is a rate.
ERROR_KINDS = (DeviceError.kind, DeviceLost.kind, NotSupported.kind)


@dataclass(frozen=True)
class MigInstance:
    uuid: str
    gi_id: int
    ci_id: int
    memory_total_bytes: int | None = None


@dataclass(frozen=True)
class GpuInfo:
    """What does not change while the exporter runs."""

    index: int
    uuid: str
    model: str
    memory_total_bytes: int | None = None
    default_power_limit_watts: float | None = None  # the board's TDP
    has_energy_counter: bool = False
    simulated: bool = False
    mig: tuple[MigInstance, ...] = ()


@dataclass(frozen=True)
class GpuReading:
    """One sample of one physical GPU. ``None`` means the field is not available."""

    timestamp: float
    power_watts: float | None = None
    energy_joules: float | None = None  # hardware counter (NVML total energy), board level
    utilization_gpu_ratio: float | None = None
    utilization_memory_ratio: float | None = None
    memory_used_bytes: int | None = None
    temperature_celsius: float | None = None
    sm_clock_hertz: float | None = None
    enforced_power_limit_watts: float | None = None
    process_pids: tuple[int, ...] = ()
    errors: dict[str, int] = field(default_factory=dict)  # field -> error kind counts


class GpuBackend(Protocol):
    """A source of GPUs. ``read`` must not raise for per-field faults: it reports them."""

    name: str
    #: whether readings list the compute processes (pid attribution depends on it)
    lists_processes: bool

    def devices(self) -> list[GpuInfo]: ...

    def read(self, index: int, now: float) -> GpuReading: ...

    def close(self) -> None: ...


class NoGpus:
    """The backend of a node without GPUs: a null object instead of ``None`` checks."""

    name = "none"
    lists_processes = False

    def devices(self) -> list[GpuInfo]:
        return []

    def read(self, index: int, now: float) -> GpuReading:
        raise DeviceLost(f"no GPU {index}")

    def close(self) -> None:
        return None
