"""PyTorch Lightning callback::

    from joulecast.integrations import lightning as jc_lightning
    trainer = L.Trainer(max_epochs=15, callbacks=[jc_lightning.callback(job)])

Planned epochs come from ``max_epochs`` (or ``max_steps`` over the optimizer steps of an
epoch), planned steps from ``estimated_stepping_batches``, both registered when training
starts; every optimizer step is counted (``job.progress``), so a ``max_steps`` run of one
epoch or less is projected from its steps. ``fit(ckpt_path=...)`` resumes the job at the
restored epoch. Under DDP (``ddp``, ``ddp_spawn``, torchrun, across nodes) the first rank
of each node (``local_rank`` 0) posts that node's markers and every rank attaches its
process to the job. The callback pickles. A job over its ``on_budget="stop"`` energy
budget sets ``trainer.should_stop`` at an epoch end (or a step segment's end), agreed over
the ranks with the strategy's ``reduce_boolean_decision``: every rank stops at that step,
after which checkpoints and loggers finish as for any early stop.
"""

from __future__ import annotations

import functools
import math
from typing import Any

from joulecast.client import Job
from joulecast.integrations._lazy import first_importable
from joulecast.integrations._stop import step_check_due


def _metrics(trainer: Any) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in dict(getattr(trainer, "callback_metrics", {}) or {}).items():
        out[str(k)] = v  # tensors: the client reads .item(); names are made safe there
    return out


@functools.cache
def _callback_class() -> type:
    base = first_importable(
        [("lightning.pytorch", "Callback"), ("pytorch_lightning", "Callback")], "lightning"
    )

    class JoulecastLightningCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job

        @staticmethod
        def _steps(trainer: Any) -> int | None:
            total = getattr(trainer, "estimated_stepping_batches", None)
            if isinstance(total, (int, float)) and math.isfinite(total) and total > 0:
                return int(total)
            return None

        def _planned(self, trainer: Any) -> float | None:
            """``max_epochs``; with ``max_steps`` and no epoch limit, the steps over the
            optimizer steps of an epoch (fractional when the budget ends mid-epoch)."""
            epochs = getattr(trainer, "max_epochs", None)
            max_steps = getattr(trainer, "max_steps", -1)
            batches = getattr(trainer, "num_training_batches", 0)
            accum = max(1, int(getattr(trainer, "accumulate_grad_batches", 1) or 1))
            by_steps = None
            if isinstance(max_steps, int) and max_steps > 0 and isinstance(batches, int):
                per_epoch = max(1, batches // accum) if batches > 0 else 0
                by_steps = round(max_steps / per_epoch, 3) if per_epoch else None
            if isinstance(epochs, int) and epochs > 0:
                return min(epochs, by_steps) if by_steps else epochs
            return by_steps

        def setup(self, trainer: Any, pl_module: Any, stage: str) -> None:
            self.job.rank = int(getattr(trainer, "global_rank", 0) or 0)
            self.job.local_rank = int(getattr(trainer, "local_rank", 0) or 0)
            self.job.attach()  # every rank's process and GPUs belong to the job

        def on_train_start(self, trainer: Any, pl_module: Any) -> None:
            self.job.begin(self._planned(trainer), self._steps(trainer))

        def on_train_batch_end(self, trainer: Any, *args: Any, **kwargs: Any) -> None:
            step = int(getattr(trainer, "global_step", 0) or 0)
            self.job.progress(step)
            if step_check_due(self.job, step):
                self._stop_if_over_budget(trainer)

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            if getattr(trainer, "sanity_checking", False):
                return
            self.job.epoch_end(_metrics(trainer), epoch=int(trainer.current_epoch) + 1)
            if self.job.budget is not None and self.job.budget.budget.action == "stop":
                self._stop_if_over_budget(trainer)

        def _stop_if_over_budget(self, trainer: Any) -> None:
            """Every rank calls this at the same point: the decision is agreed there."""
            decision = self.job.should_stop
            strategy = getattr(trainer, "strategy", None)
            if strategy is not None and hasattr(strategy, "reduce_boolean_decision"):
                decision = strategy.reduce_boolean_decision(decision, all=False)
            if decision:
                trainer.should_stop = True

        def on_train_end(self, trainer: Any, pl_module: Any) -> None:
            self.job.train_end()

    JoulecastLightningCallback.__module__ = __name__
    JoulecastLightningCallback.__qualname__ = "JoulecastLightningCallback"
    return JoulecastLightningCallback


def __getattr__(name: str) -> Any:
    if name == "JoulecastLightningCallback":
        return _callback_class()
    raise AttributeError(name)


def callback(job: Job) -> Any:
    """A ``lightning.pytorch.Callback`` that marks every epoch of ``job``."""
    return _callback_class()(job)
