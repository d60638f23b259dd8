"""Embedded mode: STEP in the training process, no exporter or Prometheus needed.

For a single workstation: the job measures its own GPU energy (NVML through ``pynvml``,
imported only here and only when used, or any ``energy()`` callable returning cumulative
joules) and prints the projected total once the STEP window is complete, then whenever
the projection moves by more than ``report_change`` (default 5 %).

    with joulecast.job("run-1", epochs=50, embedded=True) as job: ...
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence

from joulecast.step import Checkpoint, Progress, Projection, StepConfig, project

log = logging.getLogger("joulecast")


class NvmlEnergy:
    """Cumulative energy (J) of some GPUs: the NVML counter, else 10 Hz power integration."""

    def __init__(self, gpus: Sequence[int] | None = None, hz: float = 10.0) -> None:
        import pynvml  # optional: only embedded mode on a GPU machine needs it

        self._nvml = pynvml
        pynvml.nvmlInit()
        count = pynvml.nvmlDeviceGetCount()
        indices = list(gpus) if gpus else list(range(count))
        self._handles = [pynvml.nvmlDeviceGetHandleByIndex(i) for i in indices]
        self._use_counter = True
        try:
            for h in self._handles:
                pynvml.nvmlDeviceGetTotalEnergyConsumption(h)
        except pynvml.NVMLError:
            self._use_counter = False
        self._start = self._counter() if self._use_counter else 0.0
        self._joules = 0.0
        self._lock = threading.Lock()
        if not self._use_counter:
            self._stop = threading.Event()
            threading.Thread(target=self._sample, args=(1.0 / hz,), daemon=True).start()

    def _counter(self) -> float:
        return (
            sum(self._nvml.nvmlDeviceGetTotalEnergyConsumption(h) for h in self._handles) / 1000.0
        )

    def _power(self) -> float:
        return sum(self._nvml.nvmlDeviceGetPowerUsage(h) for h in self._handles) / 1000.0

    def _sample(self, interval: float) -> None:
        last_t, last_p = time.monotonic(), self._power()
        while not self._stop.wait(interval):
            t, p = time.monotonic(), self._power()
            with self._lock:
                self._joules += 0.5 * (p + last_p) * (t - last_t)
            last_t, last_p = t, p

    def __call__(self) -> float:
        if self._use_counter:
            return self._counter() - self._start
        with self._lock:
            return self._joules


def nvml_energy(gpus: Sequence[int] | None = None) -> Callable[[], float] | None:
    """NVML energy of ``gpus``, or None (said once) where NVML cannot be used: training
    goes on without a projection."""
    try:
        return NvmlEnergy(gpus)
    except Exception as err:  # no pynvml, no driver (NVMLError_LibraryNotFound), no GPU
        log.warning(
            "joulecast embedded mode cannot measure GPU energy here (%s: %s); "
            "training goes on without a projection",
            type(err).__name__,
            err,
        )
        return None


def format_energy(joules: float) -> str:
    """Joules in the unit that reads best: J, kJ, MJ or kWh."""
    if abs(joules) >= 3.6e6:
        return f"{joules / 3.6e6:.3f} kWh"
    if abs(joules) >= 1e5:
        return f"{joules / 1e6:.2f} MJ"
    if abs(joules) >= 1e3:
        return f"{joules / 1e3:.2f} kJ"
    return f"{joules:.1f} J"


class EmbeddedStep:
    def __init__(
        self,
        epochs_planned: int,
        energy: Callable[[], float],
        *,
        config: StepConfig | None = None,
        clock: Callable[[], float] = time.time,
        report: Callable[[str], None] | None = None,
        report_change: float = 0.05,
    ) -> None:
        self.epochs_planned = epochs_planned
        self._energy = energy
        self._config = config or StepConfig()
        self._clock = clock
        self._report = report or (lambda msg: log.warning(msg))
        self._report_change = report_change
        self._checkpoints: list[Checkpoint] = []
        self._origin = 0.0
        self.last: dict[str, Projection] = {}
        self._reported: float | None = None
        self.first: tuple[int, float] | None = None  # (epoch, energy) of the first projection

    @property
    def checkpoint(self) -> Checkpoint | None:
        """The latest checkpoint (epoch 0: the start), or None before the start."""
        return self._checkpoints[-1] if self._checkpoints else None

    def start(self) -> None:
        self._origin = self._energy()
        self._checkpoints = [Checkpoint(0, self._clock(), 0.0)]

    def on_epoch(self, epoch: int, epochs_planned: int | None = None) -> dict[str, Projection]:
        if not self._checkpoints:
            self.start()
        if epochs_planned:
            self.epochs_planned = epochs_planned
        try:
            measured = self._energy() - self._origin
        except Exception as err:  # a failing meter must not stop training
            log.warning("joulecast: energy reading failed (%s); epoch %d not projected", err, epoch)
            return self.last
        energy = max(measured, self._checkpoints[-1].energy_j)
        self._checkpoints.append(Checkpoint(epoch, self._clock(), energy))
        self.last = project(Progress(tuple(self._checkpoints), self.epochs_planned), self._config)
        pr = self.last.get("step_epoch")
        if pr is not None and (
            self._reported is None
            or abs(pr.energy_j - self._reported) > self._report_change * self._reported
        ):
            self._reported = pr.energy_j
            if self.first is None:
                self.first = (epoch, pr.energy_j)
            self._report(
                f"joulecast: projected total {format_energy(pr.energy_j)} "
                f"[{format_energy(pr.lower_j)}, {format_energy(pr.upper_j)}] after epoch "
                f"{epoch}/{self.epochs_planned} (stable from epoch {pr.stabilizing_epoch}; "
                f"{pr.remaining_s / 60:.1f} min left)"
            )
        return self.last

    def finish(self) -> str | None:
        """The final line: measured total, and how far the first projection was from it."""
        if len(self._checkpoints) < 2:
            return None
        last = self._checkpoints[-1]
        line = f"joulecast: measured total {format_energy(last.energy_j)} over {last.epoch} epochs"
        if self.first is not None and last.energy_j > 0:
            epoch, projected = self.first
            err = (projected - last.energy_j) / last.energy_j
            line += f"; the first projection (epoch {epoch}) was {err:+.1%} off"
        self._report(line)
        return line
