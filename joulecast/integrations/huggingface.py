"""Hugging Face ``Trainer`` callback::

    from joulecast.integrations import huggingface as jc_hf
    trainer = Trainer(model, args, callbacks=[jc_hf.callback(job)])

An epoch's marker carries that epoch's metrics: the Trainer evaluates and logs after
``on_epoch_end``, so the marker is taken (with its end time) at the epoch end and posted
once that epoch's evaluation and logs are in, or when the next epoch starts, or when
training ends. Planned epochs come from ``num_train_epochs``, or from ``max_steps`` as
fractional epochs (12.5 when the step budget ends half-way through epoch 13), and
planned steps from ``max_steps`` as the Trainer computed it; both are registered when
training begins. Every optimizer step is counted (``job.progress``), so a run of one
epoch or less is projected from its steps. ``resume_from_checkpoint`` resumes the job at
the restored epoch. The Trainer's end-of-run summary (``train_runtime``, the mean
``train_loss``) goes onto the job's final record, not onto an epoch. Under DDP the first
process of each node posts that node's markers. A job over its ``on_budget="stop"``
energy budget sets ``control.should_training_stop`` at an epoch end (or a step segment's
end), agreed over the ranks with one ``torch.distributed`` all-reduce there; the Trainer
stops after that step and saves and logs as for any early stop.
"""

from __future__ import annotations

import functools
import math
import time
from typing import Any

from joulecast.client import Job
from joulecast.integrations._lazy import first_importable
from joulecast.integrations._stop import any_rank, step_check_due


@functools.cache
def _callback_class() -> type:
    base = first_importable([("transformers", "TrainerCallback")], "transformers")

    class JoulecastTrainerCallback(base):  # type: ignore[misc, valid-type]
        def __init__(self, job: Job) -> None:
            super().__init__()
            self.job = job
            self._pending: tuple[int, float, dict[str, Any]] | None = None

        def _post(self) -> None:
            if self._pending is not None:
                epoch, at, metrics = self._pending
                self._pending = None
                self.job.epoch_end(metrics, epoch=epoch, at=at)

        @staticmethod
        def _planned(args: Any, state: Any, loader: Any) -> float | None:
            """Epochs as the Trainer will run them: ``max_steps`` over the optimizer steps of
            an epoch (fractional when the budget ends mid-epoch), else ``num_train_epochs``."""
            max_steps = getattr(args, "max_steps", -1) or -1
            if max_steps > 0 and loader is not None:
                try:
                    batches = len(loader)
                except TypeError:  # an iterable dataset has no length
                    batches = 0
                accum = max(1, int(getattr(args, "gradient_accumulation_steps", 1) or 1))
                per_epoch = max(1, batches // accum)
                if batches:
                    return round(max_steps / per_epoch, 3)
            epochs = getattr(args, "num_train_epochs", None) or getattr(
                state, "num_train_epochs", None
            )
            if isinstance(epochs, (int, float)) and epochs > 0:
                return float(epochs)
            return None

        def on_train_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            if not getattr(state, "is_world_process_zero", True):
                self.job.rank = max(self.job.rank, 1)
            if not getattr(state, "is_local_process_zero", True):
                self.job.local_rank = max(self.job.local_rank, 1)
            planned = self._planned(args, state, kw.get("train_dataloader"))
            steps = getattr(state, "max_steps", None)
            self.job.begin(planned, steps if isinstance(steps, int) and steps > 0 else None)

        def on_step_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            step = getattr(state, "global_step", 0) or 0
            self.job.progress(step)
            if step_check_due(self.job, step):
                self._stop_if_over_budget(control)

        def on_epoch_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._post()
            epoch = max(1, math.ceil((getattr(state, "epoch", 0) or 0) - 1e-6))
            self._pending = (epoch, time.time(), {})
            if self.job.budget is not None and self.job.budget.budget.action == "stop":
                self._stop_if_over_budget(control)

        def _stop_if_over_budget(self, control: Any) -> None:
            """Every rank calls this at the same point: the decision is agreed there."""
            if any_rank(self.job.should_stop):
                control.should_training_stop = True

        def on_log(self, args: Any, state: Any, control: Any, logs: Any = None, **kw: Any) -> None:
            if logs and "train_runtime" in logs:  # the run's summary, not an epoch's
                self.job.set_summary({k: v for k, v in logs.items() if k not in ("epoch", "step")})
                return
            if self._pending is not None and logs:
                self._pending[2].update(
                    {k: v for k, v in logs.items() if k not in ("epoch", "step")}
                )

        def on_evaluate(
            self, args: Any, state: Any, control: Any, metrics: Any = None, **kw: Any
        ) -> None:
            if self._pending is not None:
                self._pending[2].update({k: v for k, v in (metrics or {}).items() if k != "epoch"})
                self._post()

        def on_step_begin(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._post()

        def on_train_end(self, args: Any, state: Any, control: Any, **kw: Any) -> None:
            self._post()
            self.job.train_end()

    JoulecastTrainerCallback.__module__ = __name__
    JoulecastTrainerCallback.__qualname__ = "JoulecastTrainerCallback"
    return JoulecastTrainerCallback


def __getattr__(name: str) -> Any:
    if name == "JoulecastTrainerCallback":
        return _callback_class()
    raise AttributeError(name)


def callback(job: Job) -> Any:
    """A ``transformers.TrainerCallback`` that marks every epoch of ``job``."""
    return _callback_class()(job)
