"""Energy budgets that act: the job's total projected in the training process, against its
budget, while it runs.

The client keeps the job's checkpoints from what the exporter answers to each marker (the
job's energy at that epoch or step end), or from the embedded measurement, and projects the
total with the same STEP maths and interval the estimator publishes (``joulecast.step``):
by epochs, or by step segments for runs of few epochs with a step plan. Nothing is decided
before the STEP window is stable (``StepConfig.min_window`` stable epochs or segments). The
decision compares the central projection (default) or the upper end of its 90 % interval
(``budget_on="upper"``: stop sooner, overrun less often, stop wrongly more often) with the
budget, in kWh or in kg CO2e at a grid intensity.

``on_budget="warn"`` says so once when the projection crosses the budget, and again if it
falls back under; ``"stop"`` also sets ``Job.over_budget`` for good, which the framework
callbacks turn into the framework's own graceful stop after the current epoch or step. A
multi-node run projects this node's part times its nodes (``nodes``): the nodes of a
data-parallel run do the same work.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from dataclasses import dataclass

from joulecast.fields import SchemaError
from joulecast.schema import BudgetEvent
from joulecast.step import Checkpoint, Progress, StepConfig, StepError, project

log = logging.getLogger("joulecast")
KWH = 3.6e6
ACTIONS = ("warn", "stop")
DECIDE_ON = ("projection", "upper")
BUDGET_STOPPED = "budget_stopped"  # the outcome of a run its budget stopped


@dataclass(frozen=True)
class Budget:
    """A job's energy budget: ``kwh``, or ``kg_co2e`` at ``grid_g_per_kwh`` (the smaller
    wins when both are given), and what to do when the projection crosses it."""

    kwh: float | None = None
    action: str = "warn"
    decide_on: str = "projection"
    kg_co2e: float | None = None
    grid_g_per_kwh: float | None = None
    nodes: int = 1
    #: a stop needs the projection over the budget at this many checkpoints in a row
    confirm: int = 2

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise SchemaError(f"on_budget must be one of {', '.join(ACTIONS)}")
        if self.decide_on not in DECIDE_ON:
            raise SchemaError(f"budget_on must be one of {', '.join(DECIDE_ON)}")
        for name in ("kwh", "kg_co2e", "grid_g_per_kwh"):
            v = getattr(self, name)
            if v is not None and (isinstance(v, bool) or not math.isfinite(v) or v <= 0):
                raise SchemaError(f"budget {name} must be a positive number")
        if self.kg_co2e is not None and self.grid_g_per_kwh is None:
            raise SchemaError("budget_kg_co2e needs grid_g_per_kwh (the grid's gCO2e/kWh)")
        if self.kwh is None and self.kg_co2e is None:
            raise SchemaError("a budget needs budget_kwh or budget_kg_co2e")
        if self.nodes < 1:
            raise SchemaError("nodes must be at least 1")
        if self.confirm < 1:
            raise SchemaError("budget_confirm must be at least 1")

    @property
    def limit_j(self) -> float:
        limits = []
        if self.kwh is not None:
            limits.append(self.kwh * KWH)
        if self.kg_co2e is not None and self.grid_g_per_kwh:
            limits.append(self.kg_co2e * 1000 / self.grid_g_per_kwh * KWH)
        return min(limits)


@dataclass(frozen=True)
class BudgetDecision:
    """Where the projection stood against the budget after a checkpoint."""

    over: bool
    projected_j: float  # the value compared: the projection or its upper end, all nodes
    central_j: float
    upper_j: float
    limit_j: float
    at: int  # the epoch (or step) the checkpoint closed
    unit: str  # "epoch" or "step"


#: the (done, energy, time) fields of the exporter's answer to each kind of marker
_ANSWER_FIELDS = {
    "epoch": ("epochs_completed", "epoch_end_energy_joules", "epoch_end_timestamp"),
    "step": ("steps_completed", "step_end_energy_joules", "step_end_timestamp"),
}


def _kwh(j: float) -> str:
    return f"{j / KWH:.3f} kWh"


class BudgetWatch:
    """Checkpoints in, decisions out; says each crossing once (``report``)."""

    def __init__(
        self,
        budget: Budget,
        job_id: str,
        epochs_planned: float,
        steps_planned: int | None = None,
        *,
        config: StepConfig | None = None,
        report: Callable[[str], None] | None = None,
    ) -> None:
        self.budget = budget
        self.job_id = job_id
        self.epochs_planned = epochs_planned
        self.steps_planned = steps_planned
        self.config = config or StepConfig()
        self._report = report or log.warning
        self._epochs: list[Checkpoint] = []
        self._steps: list[Checkpoint] = []
        self.last: BudgetDecision | None = None
        self.crossings = 0
        self.stopped = False  # latched: the run is to stop (action "stop")
        self.stopped_at: int | None = None  # the epoch (or step) whose checkpoint decided it
        self._over_streak = 0  # checkpoints in a row over the budget

    @property
    def unit(self) -> str:
        return self.config.unit(self.epochs_planned, self.steps_planned)

    @property
    def over_budget(self) -> bool:
        """True once a ``stop`` budget decided the run must stop (for good); for ``warn``,
        whether the latest projection is over the budget."""
        if self.budget.action == "stop":
            return self.stopped
        return bool(self.last and self.last.over)

    def set_plan(self, epochs: float | None = None, steps: int | None = None) -> None:
        if epochs:
            self.epochs_planned = epochs
        if steps:
            self.steps_planned = steps

    def on_answer(self, what: str, body: dict) -> BudgetEvent | None:
        """Take the exporter's answer to an epoch or step marker (the job's energy at its
        end); the event to report when the projection crossed the budget, else None."""
        kind = what.split(" ", 1)[0]
        if kind not in _ANSWER_FIELDS:
            return None
        done, energy, at = (body.get(name) for name in _ANSWER_FIELDS[kind])
        if not all(
            isinstance(v, (int, float)) and not isinstance(v, bool) for v in (done, energy, at)
        ):
            return None
        before = self.crossings
        decision = (self.on_epoch if kind == "epoch" else self.on_step)(int(done), at, energy)
        if decision is None or self.crossings == before:
            return None
        return BudgetEvent(decision.over, decision.projected_j, decision.limit_j)

    @property
    def started(self) -> bool:
        return bool(self._epochs)

    def start(self, time_s: float) -> None:
        """The job's start (its energy 0); before any checkpoint, else nothing changes."""
        if len(self._epochs) > 1 or len(self._steps) > 1:
            return
        origin = Checkpoint(0, time_s, 0.0)
        self._epochs, self._steps = [origin], [origin]

    def on_epoch(self, epoch: int, time_s: float, energy_j: float) -> BudgetDecision | None:
        return self._add(self._epochs, epoch, time_s, energy_j, "epoch")

    def on_step(self, step: int, time_s: float, energy_j: float) -> BudgetDecision | None:
        return self._add(self._steps, step, time_s, energy_j, "step")

    def _add(
        self, points: list[Checkpoint], n: int, time_s: float, energy_j: float, unit: str
    ) -> BudgetDecision | None:
        if not points:
            self.start(time_s)
        last = points[-1]
        if n <= last.epoch or not (math.isfinite(time_s) and math.isfinite(energy_j)):
            return None  # a replayed or resumed marker: the checkpoints stay increasing
        points.append(Checkpoint(n, max(time_s, last.time_s), max(energy_j, last.energy_j)))
        if unit != self.unit:
            return None
        decision = self._decide()
        if decision is not None:
            self._record(decision)
        return decision

    def _progress(self) -> Progress | None:
        try:
            if self.unit == "step":
                return Progress.from_steps(self._steps, self.steps_planned or 1)
            return Progress(tuple(self._epochs), self.epochs_planned)
        except StepError:
            return None

    def _decide(self) -> BudgetDecision | None:
        progress = self._progress()
        pr = project(progress, self.config).get("step_epoch") if progress else None
        if pr is None:
            return None  # the window is not stable yet: no decision
        nodes = self.budget.nodes
        central, upper = pr.energy_j * nodes, pr.upper_j * nodes
        value = upper if self.budget.decide_on == "upper" else central
        at = (self._steps if self.unit == "step" else self._epochs)[-1].epoch
        limit = self.budget.limit_j
        return BudgetDecision(value > limit, value, central, upper, limit, at, self.unit)

    def _record(self, d: BudgetDecision) -> None:
        self._over_streak = self._over_streak + 1 if d.over else 0
        if d.over and self._over_streak < self.budget.confirm:
            return  # not yet: one checkpoint over may be early noise
        was = bool(self.last and self.last.over)
        self.last = d
        if d.over == was or self.stopped:  # a run told to stop is not told otherwise
            return
        self.crossings += 1
        where = f"{d.unit} {d.at}"
        numbers = (
            f"projected {_kwh(d.central_j)} (90 % interval up to {_kwh(d.upper_j)}) "
            f"against a budget of {_kwh(d.limit_j)}, after {where}"
        )
        if not d.over:
            self._report(f"joulecast: job {self.job_id} is back under its energy budget: {numbers}")
            return
        if self.budget.action == "stop":
            self.stopped, self.stopped_at = True, d.at
            self._report(
                f"joulecast: job {self.job_id} is over its energy budget: {numbers}; "
                "training stops after this one (on_budget='stop')"
            )
        else:
            self._report(
                f"joulecast: job {self.job_id} is over its energy budget: {numbers}; "
                "training goes on (on_budget='warn')"
            )
