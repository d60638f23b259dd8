"""The sampler thread: reads every source off the scrape path and keeps the latest state.

GPUs are read at ``gpu_hz`` (default 10 Hz), independent of the scrape interval; power is
integrated into joule counters here. Host and RAPL are read at ``host_hz`` (default 1 Hz).
A scrape only renders :meth:`Sampler.snapshot`, an immutable :class:`NodeSnapshot`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from joulecast.exporter.devices.base import DeviceError, GpuBackend, GpuInfo, GpuReading
from joulecast.exporter.energy import MonotonicCounter, PowerIntegrator
from joulecast.exporter.host.psutil_reader import HostReading, PsutilReader
from joulecast.exporter.host.rapl import RaplReader, RaplReading
from joulecast.exporter.jobs.registry import JobRegistry

log = logging.getLogger("joulecast.exporter")


@dataclass(frozen=True)
class GpuSnapshot:
    info: GpuInfo
    reading: GpuReading | None  # None: lost or never read successfully
    integrated_energy_joules: float  # trapezoid integration of sampled power
    counter_energy_joules: float | None  # hardware counter (monotonic), if the board has one
    idle_power_watts: float | None
    errors: dict[str, int]  # cumulative error counts by kind

    @property
    def energy_joules(self) -> float:
        """The best energy counter: hardware where available, else integrated power."""
        if self.counter_energy_joules is not None:
            return self.counter_energy_joules
        return self.integrated_energy_joules

    @property
    def energy_source(self) -> str:
        return "nvml_counter" if self.counter_energy_joules is not None else "power_integration"


@dataclass(frozen=True)
class NodeSnapshot:
    gpus: tuple[GpuSnapshot, ...] = ()
    host: HostReading | None = None
    rapl: tuple[RaplReading, ...] = ()
    samples_total: int = 0
    overruns_total: int = 0
    last_sample_duration_s: float = 0.0
    backend: str = "none"
    timestamp: float = 0.0
    errors: dict[str, int] = field(default_factory=dict)


class _GpuState:
    def __init__(self, info: GpuInfo, idle_power_watts: float | None) -> None:
        self.info = info
        self.reading: GpuReading | None = None
        self.integrator = PowerIntegrator()
        self.counter = MonotonicCounter() if info.has_energy_counter else None
        self.errors: dict[str, int] = {}
        self.fixed_idle = idle_power_watts
        self.idle_estimate: float | None = None
        self._smooth: float | None = None
        self._last_t: float | None = None

    def idle_power(self) -> float | None:
        return self.fixed_idle if self.fixed_idle is not None else self.idle_estimate

    def count(self, kind: str, n: int = 1) -> None:
        self.errors[kind] = self.errors.get(kind, 0) + n

    def update(self, r: GpuReading) -> tuple[float, float, float]:
        """Apply a reading; returns (energy delta J, idle delta J, dt s)."""
        for kind, n in r.errors.items():
            self.count(kind, n)
        dt = r.timestamp - self._last_t if self._last_t is not None else 0.0
        self._last_t = r.timestamp
        integrated = 0.0
        if r.power_watts is not None:
            integrated = self.integrator.add(r.timestamp, r.power_watts)
            # Idle estimate: lowest 1 s exponential average of power seen so far.
            a = min(1.0, dt / 1.0) if dt > 0 else 1.0
            self._smooth = (
                r.power_watts
                if self._smooth is None
                else self._smooth + a * (r.power_watts - self._smooth)
            )
            if self.idle_estimate is None or self._smooth < self.idle_estimate:
                self.idle_estimate = self._smooth
        delta = integrated
        if self.counter is not None and r.energy_joules is not None:
            delta = self.counter.update(r.energy_joules)
        self.reading = r
        idle = self.idle_power()
        idle_delta = min(delta, idle * dt) if idle is not None and dt > 0 else 0.0
        return delta, max(idle_delta, 0.0), dt

    def snapshot(self) -> GpuSnapshot:
        return GpuSnapshot(
            info=self.info,
            reading=self.reading,
            integrated_energy_joules=self.integrator.joules,
            counter_energy_joules=self.counter.total if self.counter is not None else None,
            idle_power_watts=self.idle_power(),
            errors=dict(self.errors),
        )


class Sampler:
    def __init__(
        self,
        backend: GpuBackend,
        registry: JobRegistry,
        *,
        gpu_hz: float = 10.0,
        host_hz: float = 1.0,
        host: PsutilReader | None = None,
        rapl: RaplReader | None = None,
        idle_power_watts: float | None = None,
        checkpoint_s: float = 5.0,
        liveness_s: float = 1.0,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if not 0.1 <= gpu_hz <= 1000:
            raise ValueError("GPU sampling rate must be between 0.1 and 1000 Hz")
        self.backend = backend
        self.registry = registry
        self.gpu_interval = 1.0 / gpu_hz
        self.host_interval = 1.0 / host_hz
        self._host = host
        self._rapl = rapl
        self._clock = clock
        self._checkpoint_s = checkpoint_s
        self._liveness_s = liveness_s
        self._next_liveness = 0.0
        self._gpus = [_GpuState(i, idle_power_watts) for i in backend.devices()]
        self._lock = threading.Lock()
        self._snapshot = NodeSnapshot(backend=backend.name)
        self._host_reading: HostReading | None = None
        self._rapl_readings: tuple[RaplReading, ...] = ()
        self._samples = 0
        self._overruns = 0
        self._last_duration = 0.0
        self._next_host = 0.0
        self._next_checkpoint = 0.0
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._errors: dict[str, int] = {}

    def sample_once(self) -> None:
        """Read every GPU once (and host/RAPL when due); attribute energy to jobs."""
        start = time.perf_counter()
        now = self._clock()
        for g in self._gpus:
            try:
                reading = self.backend.read(g.info.index, now)
            except DeviceError as err:
                g.count(err.kind)
                g.reading = None  # left out of the next scrape
                continue
            except Exception as err:  # a backend bug must not stop sampling
                g.count("call_error")
                g.reading = None
                log.debug("GPU %d read failed: %s", g.info.index, err)
                continue
            delta, idle, dt = g.update(reading)
            if dt > 0:
                self.registry.attribute(
                    g.info.index,
                    delta,
                    idle,
                    reading.utilization_gpu_ratio,
                    dt,
                    reading.process_pids,
                )
        self.registry.note_sample(now)
        if now >= self._next_host:
            self._next_host = now + self.host_interval
            self._read_host()
        if now >= self._next_liveness:
            self._next_liveness = now + self._liveness_s
            self._check_liveness(now)
        if now >= self._next_checkpoint:
            self._next_checkpoint = now + self._checkpoint_s
            self._housekeeping()
        self._samples += 1
        self._last_duration = time.perf_counter() - start
        snap = NodeSnapshot(
            gpus=tuple(g.snapshot() for g in self._gpus),
            host=self._host_reading,
            rapl=self._rapl_readings,
            samples_total=self._samples,
            overruns_total=self._overruns,
            last_sample_duration_s=self._last_duration,
            backend=self.backend.name,
            timestamp=now,
            errors=dict(self._errors),
        )
        with self._lock:
            self._snapshot = snap

    def _count(self, kind: str) -> None:
        self._errors[kind] = self._errors.get(kind, 0) + 1

    def _read_host(self) -> None:
        if self._host is not None:
            try:
                self._host_reading = self._host.read()
            except Exception as err:  # psutil can raise on exotic systems
                self._count("host")
                log.debug("host read failed: %s", err)
        if self._rapl is not None:
            try:
                self._rapl_readings = tuple(self._rapl.read())
            except Exception as err:
                self._count("rapl")
                log.debug("RAPL read failed: %s", err)

    def _check_liveness(self, now: float) -> None:
        try:
            for job_id in self.registry.check_liveness(now):
                log.info("job %s lost: its processes ended without a finish", job_id)
        except Exception as err:  # a process-table or store fault must not stop sampling
            self._count("liveness")
            log.warning("job liveness check failed: %s", err)

    def _housekeeping(self) -> None:
        try:
            self.registry.checkpoint()
            self.registry.expire()
        except Exception as err:  # disk full, etc.: keep sampling, count it
            self._count("state_store")
            log.warning("job state checkpoint failed: %s", err)

    def snapshot(self) -> NodeSnapshot:
        with self._lock:
            return self._snapshot

    def _run(self) -> None:
        next_t = time.monotonic()
        while not self._stop.is_set():
            self.sample_once()
            next_t += self.gpu_interval
            delay = next_t - time.monotonic()
            if delay < 0:
                self._overruns += 1
                next_t = time.monotonic()
                delay = 0
            self._stop.wait(delay)

    def start(self) -> None:
        self.sample_once()
        self._thread = threading.Thread(target=self._run, name="joulecast-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._housekeeping()
