"""CPU package / core / uncore / DRAM energy from the Linux powercap RAPL interface.

Reads ``<sysfs>/class/powercap/intel-rapl:*`` (and ``intel-rapl-mmio``). A missing powercap
tree or unreadable ``energy_uj`` (root-only on most kernels since 2020) means "no data
here", not an error. Counters wrap at ``max_energy_range_uj``; the wrap is undone here.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from joulecast.exporter.energy import MonotonicCounter


@dataclass(frozen=True)
class RaplZone:
    path: Path
    domain: str  # package, core, uncore, dram, psys
    socket: str  # "0", "1", ...


@dataclass(frozen=True)
class RaplReading:
    domain: str
    socket: str
    joules_total: float


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text().strip()
    except OSError:
        return None


def discover(sysfs: Path) -> list[RaplZone]:
    root = sysfs / "class" / "powercap"
    if not root.is_dir():
        return []
    zones = []
    for zone in sorted(root.glob("intel-rapl*:*")):
        name = _read_text(zone / "name")
        if not name or _read_text(zone / "energy_uj") is None:
            continue
        parts = zone.name.split(":")
        socket = parts[1] if len(parts) > 1 else "0"
        domain = "package" if name.startswith("package") else name
        zones.append(RaplZone(zone, domain, socket))
    return zones


class RaplReader:
    def __init__(self, sysfs: Path) -> None:
        self.zones = discover(sysfs)
        self._counters: dict[Path, MonotonicCounter] = {}
        for z in self.zones:
            wrap = _read_text(z.path / "max_energy_range_uj")
            self._counters[z.path] = MonotonicCounter(wrap=float(wrap) / 1e6 if wrap else None)

    def read(self) -> list[RaplReading]:
        out = []
        for z in self.zones:
            raw = _read_text(z.path / "energy_uj")
            if raw is None:
                continue
            try:
                value = float(raw) / 1e6
            except ValueError:
                continue
            counter = self._counters[z.path]
            counter.update(value)
            out.append(RaplReading(z.domain, z.socket, counter.total))
        return out
