"""Host RAM and CPU utilization through psutil."""

from __future__ import annotations

from dataclasses import dataclass

import psutil


@dataclass(frozen=True)
class HostReading:
    memory_used_bytes: int
    memory_total_bytes: int
    cpu_utilization_ratio: float
    cpu_count: int


class PsutilReader:
    def __init__(self) -> None:
        psutil.cpu_percent(interval=None)  # prime: the next call reports since now

    def read(self) -> HostReading:
        vm = psutil.virtual_memory()
        return HostReading(
            memory_used_bytes=int(vm.total - vm.available),
            memory_total_bytes=int(vm.total),
            cpu_utilization_ratio=psutil.cpu_percent(interval=None) / 100.0,
            cpu_count=psutil.cpu_count() or 1,
        )
