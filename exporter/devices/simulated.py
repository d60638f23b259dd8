"""Simulated GPUs, for machines without an NVIDIA GPU. Everything they report is labelled
``simulated="true"`` in ``joulecast_gpu_info`` and announced at start-up.

Two sources of power:

* a **load model**: idle power while no job is on the GPU; when a job arrives a warm-up
  ramp (data loading, compilation), then stable training power with an evaluation dip once
  per cycle and AR(1) noise;
* **replay** of recorded 1 Hz power traces (``t_s,power_w,utilization`` CSV files), played
  from the start while a job is on the GPU.

The simulation advances in fixed 10 ms steps with power constant inside a step, so it knows
its exact energy (the ground truth): it is served as the hardware energy counter (as NVML
does on Volta and newer) unless ``energy_counter=False``, and always through
:meth:`SimulatedBackend.true_energy`.
"""

from __future__ import annotations

import csv
import math
import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from joulecast.exporter.devices.base import DeviceLost, GpuInfo, GpuReading


@dataclass(frozen=True)
class GpuProfile:
    model: str
    tdp_watts: float
    idle_watts: float
    train_watts: float
    memory_bytes: int


PROFILES: dict[str, GpuProfile] = {
    "a100": GpuProfile("NVIDIA A100-SXM4-80GB", 400.0, 62.0, 310.0, 80 * 2**30),
    "h100": GpuProfile("NVIDIA H100 80GB HBM3", 700.0, 72.0, 560.0, 80 * 2**30),
    "l4": GpuProfile("NVIDIA L4", 72.0, 16.0, 68.0, 24 * 2**30),
    "rtx3090": GpuProfile("NVIDIA GeForce RTX 3090", 350.0, 30.0, 290.0, 24 * 2**30),
    "rtx3070": GpuProfile("NVIDIA GeForce RTX 3070", 220.0, 18.0, 160.0, 8 * 2**30),
}

STEP_S = 0.01


@dataclass(frozen=True)
class PowerTrace:
    """A recorded power trace: strictly increasing times (s) and power (W)."""

    name: str
    t: tuple[float, ...]
    power: tuple[float, ...]
    utilization: tuple[float, ...]

    @property
    def duration(self) -> float:
        return self.t[-1]

    def at(self, t: float) -> tuple[float, float]:
        """Linear interpolation of (power, utilization) at ``t`` seconds into the trace."""
        ts = self.t
        if t <= ts[0]:
            return self.power[0], self.utilization[0]
        if t >= ts[-1]:
            return self.power[-1], self.utilization[-1]
        lo, hi = 0, len(ts) - 1
        while hi - lo > 1:
            mid = (lo + hi) // 2
            if ts[mid] <= t:
                lo = mid
            else:
                hi = mid
        f = (t - ts[lo]) / (ts[hi] - ts[lo])
        return (
            self.power[lo] + f * (self.power[hi] - self.power[lo]),
            self.utilization[lo] + f * (self.utilization[hi] - self.utilization[lo]),
        )


def load_trace(path: Path) -> PowerTrace:
    """Read one trace CSV; rows without numbers are skipped; ``ValueError`` names a bad file."""
    ts: list[float] = []
    ps: list[float] = []
    us: list[float] = []
    with path.open(newline="") as fh:
        reader = csv.DictReader(fh)
        if not reader.fieldnames or not {"t_s", "power_w"} <= set(reader.fieldnames):
            raise ValueError(f"{path}: expected columns t_s,power_w[,utilization]")
        for row in reader:
            try:
                t, p = float(row["t_s"]), float(row["power_w"])
                u = float(row.get("utilization") or 0.0)
            except (TypeError, ValueError):
                continue  # a missing sample (nvidia-smi gaps): skipped, like a dropped reading
            if not (math.isfinite(t) and math.isfinite(p)) or p < 0 or (ts and t <= ts[-1]):
                continue  # drop non-increasing or invalid samples
            ts.append(t)
            ps.append(p)
            us.append(min(max(u / 100.0 if u > 1 else u, 0.0), 1.0))
    if len(ts) < 2:
        raise ValueError(f"{path}: fewer than two valid samples")
    t0 = ts[0]
    return PowerTrace(path.name, tuple(t - t0 for t in ts), tuple(ps), tuple(us))


def load_traces(folder: Path) -> list[PowerTrace]:
    files = sorted(p for p in folder.glob("*.csv") if p.name != "index.csv")
    if not files:
        raise ValueError(f"no trace CSV files in {folder}")
    return [load_trace(p) for p in files]


class SimulatedGpu:
    """One simulated board. ``advance(now)`` integrates exactly in 10 ms steps."""

    def __init__(
        self,
        index: int,
        profile: GpuProfile,
        *,
        seed: int,
        trace: PowerTrace | None = None,
        warmup_s: float = 20.0,
        cycle_s: float = 6.0,
        noise: float = 0.03,
        time_scale: float = 1.0,
    ) -> None:
        self.index = index
        self.profile = profile
        self.trace = trace
        self.warmup_s = warmup_s
        self.cycle_s = cycle_s
        self.noise = noise
        self.time_scale = time_scale
        self._rng = random.Random(seed)
        self._t: float | None = None
        self._busy_since: float | None = None
        self._ar = 0.0
        self.power = profile.idle_watts
        self.utilization = 0.0
        self.energy = 0.0

    def _target(self, t: float, busy: bool) -> tuple[float, float]:
        p = self.profile
        if not busy or self._busy_since is None:
            return p.idle_watts, 0.0
        age = t - self._busy_since
        if self.trace is not None:
            scaled = (age * self.time_scale) % self.trace.duration
            return self.trace.at(scaled)
        if age < self.warmup_s:  # data loading then ramp: lower, uneven power
            frac = age / self.warmup_s
            return p.idle_watts + (p.train_watts - p.idle_watts) * (0.35 + 0.5 * frac), 0.6
        phase = (age - self.warmup_s) % self.cycle_s / self.cycle_s
        if phase > 0.85:  # evaluation / checkpoint dip at the end of each cycle
            return p.idle_watts + 0.55 * (p.train_watts - p.idle_watts), 0.55
        return p.train_watts, 0.97

    def advance(self, now: float, busy: bool) -> None:
        if self._t is None:
            self._t = now
        if busy and self._busy_since is None:
            self._busy_since = now
        elif not busy:
            self._busy_since = None
        # Integrate whole steps; large gaps (a suspended process) are capped to one hour.
        steps = min(int((now - self._t) / STEP_S), 360_000)
        for _ in range(steps):
            self._t += STEP_S
            target, util = self._target(self._t, busy)
            self._ar = 0.9 * self._ar + self._rng.gauss(0.0, self.noise)
            noisy = target * (1.0 + self._ar) if busy else target * (1.0 + 0.1 * self._ar)
            self.power = max(0.0, min(noisy, self.profile.tdp_watts * 1.1))
            self.utilization = util
            self.energy += self.power * STEP_S
        if now - self._t > STEP_S * 360_000:
            self._t = now


class SimulatedBackend:
    """N simulated GPUs. ``busy(index)`` tells whether a job is on a GPU (the load source)."""

    name = "simulated"
    lists_processes = False  # a simulated GPU runs no processes to see

    def __init__(
        self,
        count: int,
        *,
        profile: str = "a100",
        busy: Callable[[int], bool] = lambda _i: False,
        traces: list[PowerTrace] | None = None,
        energy_counter: bool = True,
        seed: int = 0,
        warmup_s: float = 20.0,
        cycle_s: float = 6.0,
        time_scale: float = 1.0,
    ) -> None:
        if profile not in PROFILES:
            raise ValueError(
                f"unknown simulated GPU profile {profile!r}; one of {sorted(PROFILES)}"
            )
        if not 0 <= count <= 1024:
            raise ValueError("simulated GPU count must be between 0 and 1024")
        prof = PROFILES[profile]
        self._busy = busy
        self._energy_counter = energy_counter
        self._gpus = [
            SimulatedGpu(
                i,
                prof,
                seed=seed * 1000 + i,
                trace=traces[i % len(traces)] if traces else None,
                warmup_s=warmup_s,
                cycle_s=cycle_s,
                time_scale=time_scale,
            )
            for i in range(count)
        ]

    def set_busy(self, busy: Callable[[int], bool]) -> None:
        self._busy = busy

    def devices(self) -> list[GpuInfo]:
        return [
            GpuInfo(
                index=g.index,
                uuid=f"GPU-5e1a7ed0-0000-4000-8000-{g.index:012d}",
                model=g.profile.model,
                memory_total_bytes=g.profile.memory_bytes,
                default_power_limit_watts=g.profile.tdp_watts,
                has_energy_counter=self._energy_counter,
                simulated=True,
            )
            for g in self._gpus
        ]

    def read(self, index: int, now: float) -> GpuReading:
        if not 0 <= index < len(self._gpus):
            raise DeviceLost(f"no simulated GPU {index}")
        g = self._gpus[index]
        busy = bool(self._busy(index))
        g.advance(now, busy)
        load = g.utilization
        return GpuReading(
            timestamp=now,
            power_watts=g.power,
            energy_joules=g.energy if self._energy_counter else None,
            utilization_gpu_ratio=load,
            utilization_memory_ratio=0.6 * load,
            memory_used_bytes=int(g.profile.memory_bytes * (0.05 + 0.7 * (1.0 if busy else 0.0))),
            temperature_celsius=32.0 + 45.0 * g.power / g.profile.tdp_watts,
            sm_clock_hertz=(1.98e9 if busy else 0.21e9),
            enforced_power_limit_watts=g.profile.tdp_watts,
        )

    def true_energy(self, index: int) -> float:
        """Exact energy of GPU ``index`` since its first read (the ground truth)."""
        return self._gpus[index].energy

    def close(self) -> None:
        return None
